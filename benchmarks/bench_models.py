"""Model benchmark: training-step and inference time of each zoo host with each of the 15 IndexNet variants.

Each host is rewritten by ``indexnas.surgery.rewrite.insert_indexnet`` with one variant at every pair
that allows it; every figure is a ratio against the plain host timed in the same run, the 16
models interleaved round by round. Usage::

    python benchmarks/bench_models.py                        # width 0.25 hosts, 2 x C x 128 x 128, CPU
    python benchmarks/bench_models.py --hosts segnet --size 224 --width 1.0
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without install

from bench_ops import clock, machine  # noqa: E402
from indexnas.errors import UserError  # noqa: E402
from indexnas.spec import paper_variants  # noqa: E402
from indexnas.surgery.rewrite import insert_indexnet  # noqa: E402
from indexnas.zoo import create_model, example_input, list_models  # noqa: E402

MODES = ("pool", "stride")  # tried in this order: the first that rewrites at least one pair
SMALL_FAMILIES = ("o2o-shared", "o2o-modelwise")  # the paper's "negligible" extra cost


def _loss(output: Tensor | tuple | list | dict) -> Tensor:
    """A task-agnostic scalar: the mean square of every output tensor."""
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        return sum(_loss(o) for o in output)
    return output.float().square().mean()


def train_step(model: nn.Module, x: Tensor) -> Callable[[], None]:
    """One SGD step (forward, loss, backward, update) on ``x``."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-6)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        _loss(model(x)).backward()
        optimizer.step()

    return step


def inference(model: nn.Module, x: Tensor) -> Callable[[], None]:
    """One eval-mode forward without autograd."""

    def run() -> None:
        with torch.inference_mode():
            model(x)

    return run


def rewrite(model: nn.Module, x: Tensor, spec: str) -> tuple[nn.Module, str, str]:
    """(rewritten model, mode, pairs rewritten/total) for the first mode that takes ``spec`` somewhere."""
    problems = []
    for mode in MODES:
        try:
            gm, report = insert_indexnet(model, x, spec, mode=mode, channel_fit="group", flops=False)
        except UserError as error:
            problems.append(f"{mode}: {error.problem}")
            continue
        done = sum(1 for row in report.rows if not row.action.startswith("kept"))
        return gm, mode, f"{done}/{len(report.rows)}"
    raise UserError(f"no mode rewrites any pair with {spec}: " + "; ".join(problems))


def best_times(runs: dict[str, Callable[[], None]], reps: int) -> dict[str, float]:
    """Best seconds per run, the runs interleaved round by round (after one warm-up each)."""
    now = clock("cpu")
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(reps):
        for name, run in runs.items():
            start = now()
            run()
            times[name].append(now() - start)
    return {name: min(t) for name, t in times.items()}


def report_host(name: str, width: float, size: int, batch: int, reps: int) -> None:
    """Print one host's table: the plain host, then each variant's time as a multiple of the host's."""
    torch.manual_seed(0)
    host = create_model(name, width=width)
    x = example_input(name, size=size, batch=batch)
    models: dict[str, nn.Module] = {"host": host}
    notes: dict[str, str] = {"host": ""}
    for spec in paper_variants():
        try:
            models[str(spec)], mode, pairs = rewrite(host, x, str(spec))
            notes[str(spec)] = f"{mode}, {pairs} pairs"
        except UserError as error:
            notes[str(spec)] = f"not inserted: {error.problem}"
    if len(models) == 1:
        print(f"\n### {name}: no variant could be inserted ({notes[str(paper_variants()[0])]})")
        return
    train = best_times({n: train_step(m.train(), x) for n, m in models.items()}, reps)
    infer = best_times({n: inference(m.eval(), x) for n, m in models.items()}, reps)
    params = {n: sum(p.numel() for p in m.parameters()) for n, m in models.items()}
    print(f"\n### {name} (width {width}, input {tuple(x.shape)})\n")
    print("| variant | params | train step ms | x host | inference ms | x host | rewrite |")
    print("|---|---|---|---|---|---|---|")
    for variant in [*models, *[v for v in notes if v not in models]]:
        if variant not in models:
            print(f"| {variant} | - | - | - | - | - | {notes[variant]} |")
            continue
        row = [variant, f"{params[variant] / 1e6:.3f}M", f"{train[variant] * 1e3:.1f}"]
        row += [f"{train[variant] / train['host']:.2f}", f"{infer[variant] * 1e3:.1f}"]
        row += [f"{infer[variant] / infer['host']:.2f}", notes[variant]]
        print("| " + " | ".join(row) + " |")
    small = [v for v in models if v.startswith(SMALL_FAMILIES)]
    if small:
        worst_train = max(train[v] / train["host"] for v in small)
        worst_infer = max(infer[v] / infer["host"] for v in small)
        print(f"\nO2O shared/modelwise: at most {worst_train:.2f}x the host's training step,", end=" ")
        print(f"{worst_infer:.2f}x its inference")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", nargs="+", default=None, help=f"zoo models (default: all of {list_models()})")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=2, help="2: train-mode BN needs more than one value per channel")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1: timed in process CPU time)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{' '.join(sys.argv)}\n\n{machine('cpu')}")
    for name in args.hosts or list_models():
        report_host(name, args.width, args.size, args.batch, args.reps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
