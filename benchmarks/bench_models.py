"""Model benchmark: training-step and inference time of each zoo host with each of the 15 IndexNet variants.

Each host is rewritten by ``indexnas.surgery.rewrite.insert_indexnet`` with one variant at every pair
that allows it; every figure is a ratio against the plain host timed in the same run, the 16
models interleaved round by round. Usage::

    python benchmarks/bench_models.py                        # width 0.25 hosts, 2 x C x 128 x 128, CPU
    python benchmarks/bench_models.py --hosts segnet --size 224 --width 1.0
    python benchmarks/bench_models.py --device cuda --hosts dncnn_segnet --width 1 --size 40 --batch 128 \
        --json models.json                                   # bf16 autocast (the search's default on CUDA)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn


from bench_ops import clock, machine
from indexnas.errors import UserError
from indexnas.tasks.train import AMP_MODES, resolve_amp
from indexnas.spec import paper_variants
from indexnas.surgery.rewrite import insert_indexnet
from indexnas.zoo import create_model, example_input, list_models

MODES = ("pool", "stride")  # tried in this order: the first that rewrites at least one pair
SMALL_FAMILIES = ("o2o-shared", "o2o-modelwise")  # the paper's "negligible" extra cost
GOAL_SMALL_X_HOST = 1.10  # their training step on CUDA as a multiple of the host's (BENCHMARKS.md)


def _loss(output: Tensor | tuple | list | dict) -> Tensor:
    """A task-agnostic scalar: the mean square of every output tensor."""
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        return sum(_loss(o) for o in output)
    return output.float().square().mean()


def autocast(x: Tensor, amp: str) -> contextlib.AbstractContextManager:
    """Mixed precision on ``x``'s device as the search's training loop runs it ("off": none)."""
    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(x.device.type, dtype={"bf16": torch.bfloat16, "fp16": torch.float16}[amp])


def train_step(model: nn.Module, x: Tensor, amp: str = "off") -> Callable[[], None]:
    """One SGD step (forward, loss, backward, update) on ``x``."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-6)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(x, amp):
            loss = _loss(model(x))
        loss.backward()
        optimizer.step()

    return step


def inference(model: nn.Module, x: Tensor, amp: str = "off") -> Callable[[], None]:
    """One eval-mode forward without autograd."""

    def run() -> None:
        with torch.inference_mode(), autocast(x, amp):
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


def best_times(runs: dict[str, Callable[[], None]], reps: int, device: str = "cpu") -> dict[str, float]:
    """Best seconds per run, the runs interleaved round by round (after one warm-up each)."""
    now = clock(device)
    sync = torch.cuda.synchronize if device == "cuda" else lambda: None
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(reps):
        for name, run in runs.items():
            sync()
            start = now()
            run()
            sync()
            times[name].append(now() - start)
    return {name: min(t) for name, t in times.items()}


def report_host(name: str, width: float, size: int, batch: int, reps: int, device: str = "cpu",
                amp: str = "off", variants: list[str] | None = None, surgery_size: int | None = None) -> dict:
    """Print one host's table (the plain host, then each variant's time as a multiple of the host's); return it."""
    torch.manual_seed(0)
    host = create_model(name, width=width)
    x = example_input(name, size=size, batch=batch)
    # The surgery analyses on the CPU, at most 2 images (at `surgery_size`); the rewritten graph runs at any size.
    example = example_input(name, size=surgery_size or size, batch=min(batch, 2))
    models: dict[str, nn.Module] = {"host": host}
    notes: dict[str, str] = {"host": ""}
    for spec in variants or [str(v) for v in paper_variants()]:
        try:
            models[spec], mode, pairs = rewrite(host, example, spec)
            notes[spec] = f"{mode}, {pairs} pairs"
        except UserError as error:
            notes[spec] = f"not inserted: {error.problem}"
    summary = {"host": name, "width": width, "input": list(x.shape), "device": device, "amp": amp, "reps": reps}
    if len(models) == 1:
        why = next(note for variant, note in notes.items() if variant != "host")
        print(f"\n### {name}: no variant could be inserted ({why})")
        return {**summary, "rows": [], "note": why}
    start = time.perf_counter()
    models = {n: m.to(device) for n, m in models.items()}
    x = x.to(device)
    train = best_times({n: train_step(m.train(), x, amp) for n, m in models.items()}, reps, device)
    infer = best_times({n: inference(m.eval(), x, amp) for n, m in models.items()}, reps, device)
    params = {n: sum(p.numel() for p in m.parameters()) for n, m in models.items()}
    precision = "" if amp == "off" else f", {amp} autocast"
    print(f"\n### {name} (width {width}, input {tuple(x.shape)}, {device}{precision})\n")
    print("| variant | params | train step ms | x host | inference ms | x host | rewrite |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for variant in [*models, *[v for v in notes if v not in models]]:
        if variant not in models:
            print(f"| {variant} | - | - | - | - | - | {notes[variant]} |")
            rows.append({"variant": variant, "rewrite": notes[variant]})
            continue
        rows.append({"variant": variant, "params": params[variant], "train_ms": train[variant] * 1e3,
                     "train_x_host": train[variant] / train["host"], "infer_ms": infer[variant] * 1e3,
                     "infer_x_host": infer[variant] / infer["host"], "rewrite": notes[variant]})
        row = [variant, f"{params[variant] / 1e6:.3f}M", f"{train[variant] * 1e3:.2f}"]
        row += [f"{train[variant] / train['host']:.2f}", f"{infer[variant] * 1e3:.2f}"]
        row += [f"{infer[variant] / infer['host']:.2f}", notes[variant]]
        print("| " + " | ".join(row) + " |")
    summary.update(rows=rows, timing_seconds=time.perf_counter() - start)
    small = [v for v in models if v.startswith(SMALL_FAMILIES)]
    if small:
        summary["small_families_train_x_host"] = max(train[v] / train["host"] for v in small)
        summary["small_families_infer_x_host"] = max(infer[v] / infer["host"] for v in small)
        print(f"\nO2O shared/modelwise: at most {summary['small_families_train_x_host']:.2f}x the host's training step,",
              end=" ")
        print(f"{summary['small_families_infer_x_host']:.2f}x its inference (goal on CUDA: <= {GOAL_SMALL_X_HOST}x)")
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", nargs="+", default=None, help=f"zoo models (default: all of {list_models()})")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=2, help="2: train-mode BN needs more than one value per channel")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1: timed in process CPU time)")
    parser.add_argument("--variants", nargs="+", help="variants to insert (default: the paper's 15)")
    parser.add_argument("--surgery-size", type=int, help="input size the surgery analyses at (default: --size)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--amp", choices=AMP_MODES, default="auto",
                        help="mixed precision as the search trains: auto = bf16 on CUDA, off on CPU")
    parser.add_argument("--json", type=Path, help="also write every host's rows here (written after each host)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available here")
    torch.set_num_threads(args.threads)
    amp = resolve_amp(args.amp, torch.device(args.device))
    print(f"{' '.join(sys.argv)}\n\n{machine(args.device)}")
    hosts = []
    for name in args.hosts or list_models():
        hosts.append(report_host(name, args.width, args.size, args.batch, args.reps, args.device, amp, args.variants,
                                 args.surgery_size))
        if args.json:  # after each host, so that a run cut short keeps what it measured
            document = {"machine": machine(args.device), "goal_small_families_train_x_host": GOAL_SMALL_X_HOST,
                        "hosts": hosts}
            args.json.write_text(json.dumps(document, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
