"""Collect what `benchmarks/gpu_check.sh` measured into one JSON file and one BENCHMARKS.md section.

Reads the steps' files in the check's parts folder (each optional: a step that failed or ran out of
time leaves the others' figures), with the machine (GPU model, driver, torch, CUDA) recorded once at
the start, and compares every figure with the goal its benchmark script wrote beside it. Usage::

    python benchmarks/bench_gpu_report.py env PARTS                # PARTS/env.json: the machine
    python benchmarks/bench_gpu_report.py report PARTS OUT         # OUT/gpu_check.json and OUT/gpu_check.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def environment() -> dict:
    """GPU model, driver, torch, CUDA and cuDNN versions, CPU and Python: the context of every figure."""
    import torch

    env = {"python": platform.python_version(), "torch": torch.__version__, "cuda_build": torch.version.cuda,
           "cuda_available": torch.cuda.is_available(), "cpu_count": os.cpu_count(),
           "cpu": platform.processor() or platform.machine()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                   compute_capability=f"{props.major}.{props.minor}", cudnn=torch.backends.cudnn.version(),
                   bf16_supported=torch.cuda.is_bf16_supported())
    if shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--id=0", "--query-gpu=driver_version,name", "--format=csv,noheader"]
        result = subprocess.run(query, capture_output=True, text=True)
        if result.returncode == 0:
            env["driver"] = result.stdout.strip().split(",")[0]
    return env


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def read_steps(path: Path) -> list[dict]:
    """The shell script's step log: name, exit status (124: cut at its time limit), seconds, limit."""
    steps = []
    if path.exists():
        for line in path.read_text().splitlines():
            name, status, seconds, limit = line.split("\t")
            steps.append({"step": name, "exit_status": int(status), "seconds": float(seconds), "limit_s": float(limit),
                          "timed_out": int(status) in (124, 137)})
    return steps


def read_pytest(path: Path) -> dict | None:
    """Counts of the gpu-marked tests from pytest's JUnit XML, and the failures' names."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    cases = list(root.iter("testcase"))
    failed = [f"{c.get('classname')}::{c.get('name')}" for c in cases if c.find("failure") is not None or c.find("error") is not None]
    skipped = sum(1 for c in cases if c.find("skipped") is not None)
    return {"tests": len(cases), "failed": len(failed), "skipped": skipped,
            "passed": len(cases) - len(failed) - skipped, "failures": failed}


def ops_summary(ops: dict | None) -> list[dict]:
    """Per shape and dtype: the worst IP+IU row against max pool+unpool and against the copy's bandwidth."""
    if not ops:
        return []
    max_ratio, min_of_copy = ops["goals"]["x_max_pool_unpool_at_most"], ops["goals"].get("of_copy_at_least")
    tables: dict[tuple, list[dict]] = {}
    for row in ops["rows"]:
        tables.setdefault((row["shape_name"], row["dtype"]), []).append(row)
    summary = []
    for (shape, dtype), rows in tables.items():
        ours = [r for r in rows if r["family"]]
        copy = next(r for r in rows if r["case"].startswith("device copy"))
        worst_ratio = max(r["x max pool + unpool"] for r in ours)
        worst_of_copy = min(r["of_copy"] for r in ours)
        summary.append({"shape": shape, "dims": rows[0]["shape"], "dtype": dtype, "device": rows[0]["device"],
                        "copy_gb_per_s": copy["gb_per_s"], "worst_x_max_pool_unpool": worst_ratio,
                        "worst_of_copy": worst_of_copy,
                        "goal_x_max_pool_unpool": max_ratio, "meets_ratio_goal": worst_ratio <= max_ratio,
                        "goal_of_copy": min_of_copy,
                        "meets_bandwidth_goal": None if min_of_copy is None else worst_of_copy >= min_of_copy,
                        "rows": {r["family"]: {"x_max": r["x max pool + unpool"], "of_copy": r["of_copy"],
                                               "gb_per_s": r["gb_per_s"], "fwd_bwd_ms": r["fwd_bwd_ms"]} for r in ours}})
    return summary


def models_summary(documents: list[dict]) -> list[dict]:
    """Per host: the host's step and every variant's as a multiple of it; the small families against the goal."""
    summary = []
    for document in documents:
        goal = document["goal_small_families_train_x_host"]
        for host in document["hosts"]:
            timed = [r for r in host["rows"] if "train_x_host" in r]
            if not timed:
                continue
            worst = host.get("small_families_train_x_host")
            summary.append({"host": host["host"], "input": host["input"], "width": host["width"],
                            "device": host["device"], "amp": host["amp"],
                            "host_train_ms": next(r["train_ms"] for r in timed if r["variant"] == "host"),
                            "train_x_host": {r["variant"]: r["train_x_host"] for r in timed if r["variant"] != "host"},
                            "small_families_worst": worst, "goal": goal,
                            "meets_goal": worst is not None and worst <= goal})
    return summary


def collect(parts: Path) -> dict:
    """Everything the parts folder holds, summarised against the goals, with the raw figures kept beside."""
    models = [d for d in (read_json(p) for p in sorted(parts.glob("models-*.json"))) if d]
    ops = read_json(parts / "ops.json")
    search = read_json(parts / "search.json")
    result = {"environment": read_json(parts / "env.json") or {}, "steps": read_steps(parts / "steps.tsv"),
              "pytest_gpu": read_pytest(parts / "pytest-gpu.xml"), "operators": ops_summary(ops),
              "models": models_summary(models), "search": search, "raw": {"ops": ops, "models": models}}
    runs = {r["workers"]: r for r in (search or {}).get("runs", []) if r.get("trials_per_hour")}
    if 1 in runs and 2 in runs:
        result["search_workers2_over_workers1"] = runs[2]["trials_per_hour"] / runs[1]["trials_per_hour"]
    return result


def _yes(flag: bool | None) -> str:
    return "-" if flag is None else "yes" if flag else "**no**"


def markdown(result: dict, command: str) -> str:
    """The BENCHMARKS.md section for one run of the check."""
    env = result["environment"]
    gpu = env.get("gpu", "no GPU")
    lines = [f"### GPU figures: {gpu}", "",
             f"Command: `{command}`. Machine: {gpu}" + (f", driver {env['driver']}" if "driver" in env else "")
             + f"; torch {env.get('torch', '?')}, CUDA {env.get('cuda_build', '?')}, cuDNN {env.get('cudnn', '-')}; "
             f"{env.get('cpu_count', '?')} CPU cores; Python {env.get('python', '?')}.", "",
             "| step | exit | seconds | limit |", "|---|---|---|---|"]
    for step in result["steps"]:
        status = "timed out" if step["timed_out"] else str(step["exit_status"])
        lines.append(f"| {step['step']} | {status} | {step['seconds']:.0f} | {step['limit_s']:.0f} |")
    tests = result["pytest_gpu"]
    if tests:
        lines += ["", f"`pytest -m gpu`: {tests['passed']} passed, {tests['failed']} failed, {tests['skipped']} skipped"
                  + (f" (failed: {', '.join(tests['failures'])})" if tests["failures"] else "") + "."]
    if result["operators"]:
        lines += ["", "Operators, forward+backward: the worst IP+IU row (of the four index-map kinds) of each table, "
                  "against max pool+unpool and as a fraction of a device copy's bandwidth in the same run:", "",
                  "| shape | dtype | copy GB/s | worst x max pool+unpool (goal) | worst of copy (goal) |",
                  "|---|---|---|---|---|"]
        for t in result["operators"]:
            of_copy_goal = f">= {t['goal_of_copy']:.0%}" if t["goal_of_copy"] is not None else "none"
            lines.append(f"| {t['shape']} {tuple(t['dims'])} | {t['dtype']} | {t['copy_gb_per_s']:.0f} | "
                         f"{t['worst_x_max_pool_unpool']:.2f} (<= {t['goal_x_max_pool_unpool']}: "
                         f"{_yes(t['meets_ratio_goal'])}) | {t['worst_of_copy']:.0%} ({of_copy_goal}: "
                         f"{_yes(t['meets_bandwidth_goal'])}) |")
    if result["models"]:
        lines += ["", "Training step per variant as a multiple of the plain host's (goal: O2O shared/modelwise <= "
                  f"{result['models'][0]['goal']}x):", "",
                  "| host | input | amp | host step ms | O2O shared/modelwise worst | all variants | goal met |",
                  "|---|---|---|---|---|---|---|"]
        for m in result["models"]:
            ratios = m["train_x_host"].values()
            spread = f"{min(ratios):.2f} to {max(ratios):.2f}x"
            worst = f"{m['small_families_worst']:.2f}x" if m["small_families_worst"] is not None else "-"
            lines.append(f"| {m['host']} w{m['width']} | {tuple(m['input'])} | {m['amp']} | {m['host_train_ms']:.1f} | "
                         f"{worst} | {spread} | {_yes(m['meets_goal'])} |")
    search = result["search"]
    if search:
        s = search["settings"]
        lines += ["", f"Search (`indexnas search` on {s['model']} width {s['width']}, batch {s['batch_size']} x "
                  f"{s['patch']}x{s['patch']}, {s['budget_steps']} steps per trial, each run cut at {s['seconds']:.0f} s):",
                  "", "| workers | completed | trials/hour | trial s | train s | step ms | other s | GPU util (trials) |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in search["runs"]:
            if not r.get("completed"):
                lines.append(f"| {r['workers']} | 0 | - | - | - | - | - | - |")
                continue
            gpu_util = r.get("gpu_during_trials")
            util = f"{gpu_util['util_mean_pct']:.0f}% mean" if gpu_util else "-"
            lines.append(f"| {r['workers']} | {r['completed']} | {r['trials_per_hour']:.0f} | {r['trial_s_mean']:.1f} | "
                         f"{r['train_s_mean']:.1f} | {r['step_ms_mean']:.1f} | {r['other_s_mean']:.1f} | {util} |")
        if "search_workers2_over_workers1" in result:
            lines += ["", f"`--workers 2` on one GPU: {result['search_workers2_over_workers1']:.2f}x the trials per "
                      "hour of `--workers 1`."]
        lines += ["", f"Where the time goes: {search.get('verdict', '-')}."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="what", required=True)
    env = commands.add_parser("env", help="record the machine in PARTS/env.json")
    env.add_argument("parts", type=Path)
    report = commands.add_parser("report", help="write OUT/gpu_check.json and OUT/gpu_check.md from PARTS")
    report.add_argument("parts", type=Path)
    report.add_argument("out", type=Path)
    report.add_argument("--command", default="benchmarks/gpu_check.sh", help="the command line, for the section")
    args = parser.parse_args()
    if args.what == "env":
        (args.parts / "env.json").write_text(json.dumps(environment(), indent=1))
        return 0
    result = collect(args.parts)
    text = markdown(result, args.command)
    (args.out / "gpu_check.json").write_text(json.dumps(result, indent=1, default=str))
    (args.out / "gpu_check.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
