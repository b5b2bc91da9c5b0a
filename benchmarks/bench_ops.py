"""Operator benchmark: IP + IU against max pool/unpool, avg pool + nearest and avg pool + bilinear.

Every ratio is against baselines timed in the same run, case by case in round-robin so that load
from other processes hits all of them alike; that includes a plain copy moving as many bytes as the
busiest case, whose bandwidth every case's is compared with. Activation memory is the bytes saved
for backward (``saved_tensors_hooks``), and on CUDA also the peak allocated above the inputs. Usage::

    python benchmarks/bench_ops.py                  # CPU, fp32, small and large shapes
    python benchmarks/bench_ops.py --device cuda    # fp32 and bf16, with bandwidth vs copy and vs peak
    python benchmarks/bench_ops.py --json ops.json  # also write every row as JSON
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from indexnas.indexnet import IndexNet, MaxIndex, UniformIndex
from indexnas.ops import indexed_pool, indexed_upsample, normalize_regions, regions_to_map

SHAPES = {"small": (8, 64, 160, 160), "large": (16, 256, 80, 80), "tiny": (2, 8, 32, 32)}  # tiny: smoke runs
PAPER_SHAPES = ["small", "large"]
GOAL_BASELINE = "max pool + unpool"
COPY = "device copy (same bytes)"
# The goals each device's figures are read against (BENCHMARKS.md): IP+IU's time as a multiple of
# max pool + unpool, and on CUDA its bandwidth as a fraction of the copy's.
GOAL_RATIO = {"cpu": 1.3, "cuda": 1.0}
GOAL_OF_COPY = 0.6
BASELINES = ("max pool + unpool", "avg pool + nearest", "avg pool + bilinear")
MB = 2**20


@dataclass
class Case:
    """One timed computation: ``forward()``'s outputs take ``grad_out`` back to the tensors ``wrt``."""

    name: str
    forward: Callable[[], Tensor | tuple[Tensor, ...]]
    wrt: tuple[Tensor, ...]
    grad_out: Tensor | tuple[Tensor, ...]
    traffic: int = 0  # IP+IU and baselines: bytes each of the 4 ops (2 forward, 2 backward) reads and writes once
    family: str = ""  # IP+IU rows: which index maps (the goals are read on these rows)


def _reference_pool(x: Tensor, enc: Tensor) -> Tensor:
    """The spec's formula in plain eager autograd (what ops.py did before its custom kernels)."""
    return F.avg_pool2d(x * enc, 2) * 4.0


def _reference_upsample(d: Tensor, dec: Tensor) -> Tensor:
    return F.interpolate(d, scale_factor=2.0, mode="nearest") * dec


def _nbytes(*tensors: Tensor) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def build_cases(shape: tuple[int, ...], dtype: torch.dtype, device: str, compiled: bool) -> list[Case]:
    """Baselines, then IP+IU with each family's index maps (learned maps require grad, fixed ones do not)."""
    gen = torch.Generator(device).manual_seed(0)
    b, c, h, w = shape
    x = torch.randn(shape, generator=gen, device=device, dtype=dtype).requires_grad_()
    pooled = torch.empty(b, c, h // 2, w // 2, device=device, dtype=dtype)  # for byte counts only
    x_b, p_b = _nbytes(x), _nbytes(pooled)
    idx_b = pooled.numel() * 8
    grad_out = torch.randn(shape, generator=gen, device=device, dtype=dtype)
    with torch.no_grad():
        one_hot, _ = MaxIndex()(x)
        uniform_enc, uniform_dec = UniformIndex()(x)

    def learned(channels: int) -> tuple[Tensor, Tensor]:  # the default normalisation of random logits
        logits = torch.randn(b, channels * 4, h // 2, w // 2, generator=gen, device=device, dtype=dtype)
        enc = regions_to_map(normalize_regions(logits, "sigmoid_softmax"), x)
        return enc.requires_grad_(), regions_to_map(logits.sigmoid(), x).requires_grad_()

    depth_enc, depth_dec = learned(c)
    holo_enc, holo_dec = learned(1)

    def ip_iu(x: Tensor, enc: Tensor, dec: Tensor) -> Tensor:
        return indexed_upsample(indexed_pool(x, enc), dec)

    # under torch.compile the operators take their plain formula and inductor fuses the pair
    ip_iu_run = torch.compile(ip_iu, dynamic=False) if compiled else ip_iu

    def ip_iu_traffic(enc: Tensor, dec: Tensor, map_grads: bool) -> int:
        e_b, d_b = _nbytes(enc), _nbytes(dec)
        forward = (x_b + e_b + p_b) + (p_b + d_b + x_b)
        backward_iu = x_b + d_b + p_b + (p_b + d_b if map_grads else 0)
        backward_ip = p_b + e_b + x_b + (x_b + e_b if map_grads else 0)
        return forward + backward_iu + backward_ip

    def max_baseline() -> Tensor:
        p, idx = F.max_pool2d(x, 2, return_indices=True)
        return F.max_unpool2d(p, idx, 2, output_size=shape[-2:])

    pool_up_traffic = 4 * (x_b + p_b)  # each op reads one size and writes the other
    cases = [
        Case("max pool + unpool", max_baseline, (x,), grad_out, pool_up_traffic + 4 * idx_b),
    ]
    for mode in ("nearest", "bilinear"):
        up = functools.partial(F.interpolate, scale_factor=2.0, mode=mode)
        cases.append(Case(f"avg pool + {mode}", lambda up=up: up(F.avg_pool2d(x, 2)), (x,), grad_out, pool_up_traffic))
    suffix = " (compiled)" if compiled else ""
    for label, enc, dec, grads in [
        ("max maps (one-hot)", one_hot, one_hot, False),
        ("avg maps (uniform)", uniform_enc, uniform_dec, False),
        ("depthwise maps (M2O/O2O)", depth_enc, depth_dec, True),
        ("holistic maps (1 channel)", holo_enc, holo_dec, True),
    ]:
        wrt = (x, enc, dec) if grads else (x,)
        run = functools.partial(ip_iu_run, x, enc, dec)
        cases.append(Case(f"IP+IU, {label}{suffix}", run, wrt, grad_out, ip_iu_traffic(enc, dec, grads), label))

    def reference() -> Tensor:
        return _reference_upsample(_reference_pool(x, depth_enc), depth_dec)

    cases.append(Case("reference formula, depthwise maps", reference, (x, depth_enc, depth_dec), grad_out))
    cases.append(copy_case(max(c.traffic for c in cases), device))
    return cases


def copy_case(traffic: int, device: str) -> Case:
    """A device-to-device copy reading and writing ``traffic`` bytes in all: the bandwidth baseline."""
    src = torch.ones(traffic // 2, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    return Case(COPY, lambda: dst.copy_(src), (), (), 2 * src.numel())


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _step(case: Case) -> None:
    """Forward and, for cases with inputs to differentiate (all but the copy), backward."""
    out = case.forward()
    if case.wrt:
        torch.autograd.grad(out, case.wrt, case.grad_out)


def clock(device: str) -> Callable[[], float]:
    """Process CPU time for one CPU thread (other processes' load does not count), else wall time."""
    return time.process_time if device == "cpu" and torch.get_num_threads() == 1 else time.perf_counter


def time_cases(cases: list[Case], device: str, reps: int) -> dict[str, tuple[float, float]]:
    """Best seconds of (forward, forward+backward) per case, the cases interleaved round by round."""
    now = clock(device)
    for case in cases:  # warm-up (and compilation)
        _step(case)
    forward: dict[str, list[float]] = {c.name: [] for c in cases}
    both: dict[str, list[float]] = {c.name: [] for c in cases}
    for _ in range(reps):
        for case in cases:
            _sync(device)
            start = now()
            out = case.forward()
            _sync(device)
            forward[case.name].append(now() - start)
            del out
            _sync(device)
            start = now()
            _step(case)
            _sync(device)
            both[case.name].append(now() - start)
    return {n: (min(forward[n]), min(both[n])) for n in forward}


def saved_bytes(case: Case) -> int:
    """Bytes of the distinct storages autograd saves for backward in one forward."""
    storages: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = case.forward()
    del out
    return sum(storages.values())


def cuda_peak_bytes(case: Case) -> int:
    """Peak CUDA memory allocated during one forward+backward, above what was allocated before it."""
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    _step(case)
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before


def cuda_peak_bandwidth() -> float:
    """The device's theoretical memory bandwidth in bytes/s (double data rate x bus width)."""
    props = torch.cuda.get_device_properties(0)
    return 2 * props.memory_clock_rate * 1e3 * props.memory_bus_width / 8


def machine(device: str) -> str:
    """CPU model, cores, torch version and (on CUDA) the GPU: the context every figure needs."""
    model = platform.processor() or "unknown CPU"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    timing = "process CPU time" if clock(device) is time.process_time else "wall time"
    threads = torch.get_num_threads()
    text = f"CPU: {model}, {os.cpu_count()} cores, torch using {threads}; {timing}; torch {torch.__version__}"
    if device == "cuda":
        text += f"; GPU: {torch.cuda.get_device_name(0)} (peak {cuda_peak_bandwidth() / 1e9:.0f} GB/s)"
    return text


def measure(shape_name: str, dtype: torch.dtype, device: str, reps: int, compiled: bool) -> list[dict]:
    """One record per case of one shape and dtype: times, ratios, memory and bandwidth."""
    shape = SHAPES[shape_name]
    cases = build_cases(shape, dtype, device, compiled)
    times = time_cases(cases, device, reps)
    saved = {c.name: saved_bytes(c) for c in cases}
    peaks = {c.name: cuda_peak_bytes(c) for c in cases} if device == "cuda" else {}
    copy_bandwidth = next(c.traffic / times[c.name][1] for c in cases if c.name == COPY)
    records = []
    for case in cases:
        fwd, fb = times[case.name]
        bandwidth = case.traffic / fb if case.traffic else None
        record = {
            "shape_name": shape_name, "shape": list(shape), "dtype": str(dtype).removeprefix("torch."),
            "device": device, "case": case.name, "family": case.family, "compiled": compiled,
            "fwd_ms": fwd * 1e3, "fwd_bwd_ms": fb * 1e3,
            **{f"x {b}": fb / times[b][1] for b in BASELINES},
            "saved_mb": saved[case.name] / MB, "saved_x_max": saved[case.name] / saved[GOAL_BASELINE],
            "gb_per_s": bandwidth / 1e9 if bandwidth else None,
            "of_copy": bandwidth / copy_bandwidth if bandwidth else None,
        }
        if device == "cuda":
            record["peak_mb"] = peaks[case.name] / MB
            record["peak_x_max"] = peaks[case.name] / peaks[GOAL_BASELINE]
            record["of_peak"] = bandwidth / cuda_peak_bandwidth() if bandwidth else None
        records.append(record)
    return records


def print_table(records: list[dict], reps: int) -> None:
    """One markdown table for the records of one shape and dtype."""
    first = records[0]
    device = first["device"]
    print(f"\n### {first['shape_name']} {tuple(first['shape'])}, {first['dtype']}, {device}\n")
    header = ["case", "fwd ms", "fwd+bwd ms"] + [f"x {b}" for b in BASELINES] + ["saved MB", "saved x max"]
    header += ["GB/s", "of copy"] + (["peak MB", "peak x max", "of peak"] if device == "cuda" else [])
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in records:
        row = [r["case"], f"{r['fwd_ms']:.2f}", f"{r['fwd_bwd_ms']:.2f}"] + [f"{r[f'x {b}']:.2f}" for b in BASELINES]
        row += [f"{r['saved_mb']:.1f}", f"{r['saved_x_max']:.2f}"]
        row += [f"{r['gb_per_s']:.0f}", f"{r['of_copy']:.0%}"] if r["gb_per_s"] else ["-", "-"]
        if device == "cuda":
            row += [f"{r['peak_mb']:.0f}", f"{r['peak_x_max']:.2f}", f"{r['of_peak']:.0%}" if r["of_peak"] else "-"]
        print("| " + " | ".join(row) + " |")
    goal = f"goal: IP+IU <= {GOAL_RATIO[device]} x {GOAL_BASELINE}"
    if device == "cuda":
        goal += f" and >= {GOAL_OF_COPY:.0%} of the copy's bandwidth"
    print(f"\n(best of {reps}, interleaved; fwd+bwd ratio against each baseline; {goal})")


NORMALISATION_FAMILIES = ("o2o-shared", "o2o-shared-nl", "o2o-shared-nl-c", "o2o-unshared", "holistic")


def index_branch_cases(spec: str, shape: tuple[int, ...], device: str) -> list[Case]:
    """An IndexNet's body alone, the body with normalisation (its full forward), and IP+IU with its maps."""
    gen = torch.Generator(device).manual_seed(0)
    x = torch.randn(shape, generator=gen, device=device).requires_grad_()
    net = IndexNet(spec, shape[1]).to(device)
    params = tuple(net.parameters())

    def grads_like(*outputs: Tensor) -> tuple[Tensor, ...]:
        return tuple(torch.randn(o.shape, generator=gen, device=device) for o in outputs)

    logits = net.region_logits(x)
    enc, dec = (m.detach().requires_grad_() for m in net(x))
    return [
        Case("body", lambda: net.region_logits(x), (x, *params), grads_like(logits)),
        Case("body + normalisation", lambda: net(x), (x, *params), grads_like(enc, dec)),
        Case("IP+IU", lambda: indexed_upsample(indexed_pool(x, enc), dec), (x, enc, dec), grads_like(x)),
    ]


def report_normalisation(shape_name: str, device: str, reps: int) -> None:
    """Print how much of each small family's IndexNet time its index-map normalisation takes."""
    shape = SHAPES[shape_name]
    print(f"\n### index-map normalisation, {shape_name} {tuple(shape)}, float32, {device}\n")
    print("| family | body ms | body + normalisation ms | normalisation share | IP+IU ms | share of IndexNet + IP+IU |")
    print("|---|---|---|---|---|---|")
    for spec in NORMALISATION_FAMILIES:
        times = time_cases(index_branch_cases(spec, shape, device), device, reps)
        body, full, ip_iu = (times[n][1] for n in ("body", "body + normalisation", "IP+IU"))
        norm = full - body
        row = [spec, f"{body * 1e3:.1f}", f"{full * 1e3:.1f}", f"{norm / full:.0%}", f"{ip_iu * 1e3:.1f}"]
        print("| " + " | ".join(row + [f"{norm / (full + ip_iu):.0%}"]) + " |")
    print(f"\n(forward+backward, best of {reps}, interleaved; normalisation = sigmoid, region softmax and the")
    print("rearrangement of region logits to maps; o2o-modelwise runs the o2o-shared module at every stage)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--shapes", nargs="+", choices=tuple(SHAPES), default=PAPER_SHAPES)
    parser.add_argument("--dtypes", nargs="+", choices=("float32", "bfloat16"), help="default: fp32 (+bf16 on cuda)")
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--no-normalisation", action="store_true", help="skip the index-map normalisation table")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1: timed in process CPU time)")
    parser.add_argument("--compile", action="store_true", help="time IP+IU under torch.compile instead of eager")
    parser.add_argument("--json", type=Path, help="also write every operator row here (written after each table)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available here")
    torch.set_num_threads(args.threads)
    dtypes = args.dtypes or (["float32", "bfloat16"] if args.device == "cuda" else ["float32"])
    print(f"{' '.join(sys.argv)}\n\n{machine(args.device)}")
    records: list[dict] = []
    for dtype in dtypes:
        for shape_name in args.shapes:
            table = measure(shape_name, getattr(torch, dtype), args.device, args.reps, args.compile)
            print_table(table, args.reps)
            records += table
            if args.json:  # after each table, so that a run cut short keeps what it measured
                goals = {"x_max_pool_unpool_at_most": GOAL_RATIO[args.device]}
                if args.device == "cuda":
                    goals["of_copy_at_least"] = GOAL_OF_COPY
                document = {"machine": machine(args.device), "reps": args.reps, "goals": goals, "rows": records}
                args.json.write_text(json.dumps(document, indent=1))
    if not args.no_normalisation:
        report_normalisation(args.shapes[0], args.device, args.reps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
