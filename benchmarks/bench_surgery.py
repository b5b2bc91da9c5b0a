"""Surgery benchmark: trace + check + pair time per model against one forward pass of that model.

Phases (each the median over the repeats, interleaved with the forward timings so that load
from other processes hits both alike):
  trace  - torch.fx trace in eval and in train mode (the second finds mode-dependent code)
  check  - shape propagation at the example size + eager comparison there and at a second size
           (about four forward passes: the price of trusting the graph)
  pair   - resolution-change detection and pairing
  rewrite (with --rewrite SPEC) - surgery.insert_indexnet(..., flops=False) end to end
Ratios are against the eager forward (eval, no_grad) measured in the same run. Usage::

    python benchmarks/bench_surgery.py                       # default corpus at 224x224
    python benchmarks/bench_surgery.py --size 128 --models segnet smp:fpn:mobilenet_v2
    python benchmarks/bench_surgery.py --rewrite m2o-nl-c --mode decoder
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import torch

from indexnas.surgery.detect import detect
from indexnas.surgery.loading import load_model
from indexnas.surgery.pairing import pair_ups
from indexnas.surgery.trace import eval_mode, propagate_and_check, trace

DEFAULT_MODELS = (
    "segnet", "dncnn_segnet", "fastdepth", "fastdepth_p", "matting", "timm:resnet18", "timm:convnext_atto",
    "smp:unet:resnet18", "smp:fpn:mobilenet_v2", "smp:deeplabv3plus:resnet18", "smp:linknet:resnet18",
    "smp:pan:efficientnet-b0", "smp:unetplusplus:resnet18", "smp:pspnet:resnet18", "smp:manet:tu-regnetx_002",
)


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench(descriptor: str, size: int, repeats: int, rewrite: str | None, mode: str) -> dict[str, float]:
    """Median seconds of one forward and of each surgery phase for one model."""
    model, example = load_model(descriptor, size=size)
    inputs = (example,)
    times: dict[str, list[float]] = {"forward": [], "trace": [], "check": [], "pair": [], "rewrite": []}
    with eval_mode(model):
        model(example)  # warm-up: first-call allocations
    for _ in range(repeats):
        with eval_mode(model):
            times["forward"].append(_seconds(lambda: model(example)))
        start = time.perf_counter()
        gm = trace(model, inputs)
        times["trace"].append(time.perf_counter() - start)
        times["check"].append(_seconds(lambda: propagate_and_check(model, gm, inputs)))
        times["pair"].append(_seconds(lambda: pair_ups(gm, detect(gm))))
        if rewrite:
            from indexnas.surgery.rewrite import insert_indexnet

            times["rewrite"].append(_seconds(lambda: insert_indexnet(model, example, rewrite, mode=mode, flops=False)))
    return {k: statistics.median(v) for k, v in times.items() if v}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), metavar="MODEL")
    parser.add_argument("--size", type=int, default=224, help="example input side (default 224)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rewrite", metavar="SPEC", help="also time insert_indexnet with this choice")
    parser.add_argument("--mode", default="pool", help="rewrite mode for --rewrite (default pool)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, input {args.size}x{args.size}, "
          f"median of {args.repeats}; times in ms, ratios against one eager forward of the same model")
    header = f"{'model':30s} {'forward':>8s} {'trace':>7s} {'check':>7s} {'pair':>6s} {'total':>7s} {'x fwd':>6s}"
    header += f" {'rewrite':>8s} {'x fwd':>6s}" if args.rewrite else ""
    header += f" {'total-check':>11s}"
    print(header)
    totals = []
    for descriptor in args.models:
        t = bench(descriptor, args.size, args.repeats, args.rewrite, args.mode)
        total = t["trace"] + t["check"] + t["pair"]
        totals.append(total)
        row = (f"{descriptor:30s} {t['forward'] * 1e3:8.1f} {t['trace'] * 1e3:7.1f} {t['check'] * 1e3:7.1f} "
               f"{t['pair'] * 1e3:6.1f} {total * 1e3:7.1f} {total / t['forward']:6.1f}")
        if args.rewrite:
            row += f" {t['rewrite'] * 1e3:8.1f} {t['rewrite'] / t['forward']:6.1f}"
        row += f" {(total - t['check']) * 1e3:11.1f}"
        print(row, flush=True)
    print(f"analysis (trace+check+pair) under 1 s for {sum(x < 1.0 for x in totals)} of {len(totals)} models; "
          f"median {statistics.median(totals) * 1e3:.0f} ms, max {max(totals) * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
