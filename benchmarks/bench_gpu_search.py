"""Search throughput: `indexnas search` trials per hour, GPU utilisation, and where a trial's time goes.

The command line runs as a user runs it, once per ``--workers`` value, each run in its own process
group and cut after ``--seconds`` (its completed trials are what counts); the trials' times come back
from the study. Meanwhile ``nvidia-smi`` (when present) is sampled every half second. The two suspects
for an idle GPU are timed on their own in the same run: drawing one training batch of the built-in
data (the training loop's DataLoader, in the training process) and one rewrite of the host with its
cost count (what every trial does before training). Usage::

    python benchmarks/bench_gpu_search.py --out runs/gpu-search --json search.json          # the paper's batch
    python benchmarks/bench_gpu_search.py --width 0.25 --batch-size 4 --budget-steps 2 --trials 2  # CPU smoke
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from indexnas.search import pair_space
from indexnas.tasks.problem import build_datasets, load_host
from indexnas.search.settings import SearchSettings
from indexnas.search.storage import open_storage
from indexnas.search.space import SearchSpace

SAMPLE_S = 0.5  # nvidia-smi sampling period
STOP_GRACE_S = 15  # after SIGINT at the time limit, how long the run may take to stop before SIGKILL
LOG_TAIL_LINES = 30  # of each run's output, kept in the figures (the run directory may be temporary)
PROBE_CHOICE = "o2o-shared"  # the configuration whose rewrite is timed (every pair allows it in pool mode)


class GpuSampler:
    """Samples GPU utilisation (%) and memory (MiB) with nvidia-smi in a thread; nothing without nvidia-smi."""

    def __init__(self) -> None:
        self.samples: list[tuple[dt.datetime, float, float]] = []
        self.available = shutil.which("nvidia-smi") is not None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> GpuSampler:
        if self.available:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.available:
            self._thread.join()

    def _run(self) -> None:
        query = ["nvidia-smi", "--id=0", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"]
        while not self._stop.wait(SAMPLE_S):
            try:
                line = subprocess.run(query, capture_output=True, text=True, timeout=5, check=True).stdout
                util, memory = (float(v) for v in line.strip().splitlines()[0].split(","))
            except (OSError, subprocess.SubprocessError, ValueError, IndexError):
                continue
            self.samples.append((dt.datetime.now(), util, memory))

    def summary(self, start: dt.datetime | None = None, end: dt.datetime | None = None) -> dict | None:
        """Mean and median utilisation and the peak memory of the samples between ``start`` and ``end``."""
        chosen = [s for s in self.samples if (start is None or s[0] >= start) and (end is None or s[0] <= end)]
        if not chosen:
            return None
        utils = [s[1] for s in chosen]
        return {"samples": len(chosen), "util_mean_pct": statistics.fmean(utils),
                "util_median_pct": statistics.median(utils), "memory_peak_mib": max(s[2] for s in chosen)}


def probe(settings: SearchSettings, batches: int) -> dict:
    """Time one training batch of the task's data, the host's analysis (once per worker) and one rewrite + cost
    count (once per trial), each on its own."""
    train_set, _ = build_datasets(settings)
    loader = iter(DataLoader(train_set, batch_size=settings.batch_size, shuffle=True, drop_last=True,
                             generator=torch.Generator().manual_seed(0)))
    next(loader)  # the first batch pays for the loader's start
    start = time.perf_counter()
    for _ in range(batches):
        next(loader)
    data_ms = (time.perf_counter() - start) / batches * 1e3
    host, example, _ = load_host(settings, train_set)
    start = time.perf_counter()
    space = SearchSpace(host, example, settings.mode, name=settings.model)  # once per worker: trace, check, pair
    analysis_s = time.perf_counter() - start
    start = time.perf_counter()
    space.rewrite(pair_space.uniform(space.spaces, PROBE_CHOICE))  # once per trial: rewrite a copy, count costs
    return {"data_ms_per_batch": data_ms, "data_batches_timed": batches, "surgery_s": time.perf_counter() - start,
            "analysis_s_per_worker": analysis_s, "surgery_choice": PROBE_CHOICE, "pairs": len(space.spaces)}


def search_command(args: argparse.Namespace, workers: int, out: Path) -> list[str]:
    """`indexnas search` with this benchmark's settings, its own study, storage and run directory."""
    return [sys.executable, "-m", "indexnas.cli", "search", "--task", "denoise", "--model", args.model,
            "--width", str(args.width), "--batch-size", str(args.batch_size), "--patch", str(args.patch),
            "--budget-steps", str(args.budget_steps), "--trials", str(args.trials), "--workers", str(workers),
            "--study", f"gpu-check-w{workers}", "--storage", str(out / "studies.log"), "--out", str(out),
            "--no-report", "--quiet"]


def run_limited(command: list[str], seconds: float, log: Path) -> tuple[int | None, float]:
    """Run ``command`` in its own process group; at ``seconds`` interrupt the group (workers too).

    Returns (exit status, or None when it was cut at the limit; wall seconds).
    """
    start = time.perf_counter()
    with log.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            return process.wait(timeout=seconds), time.perf_counter() - start
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        finally:
            try:  # spawned workers outlive an interrupted parent: end the whole group
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return None, time.perf_counter() - start


def trial_figures(out: Path, study: str) -> dict:
    """Completed trials, trials per hour over the trials' own window, and the split of a trial's time."""
    import optuna
    from optuna.trial import TrialState

    storage_path = out / "studies.log"
    if not storage_path.exists():
        return {"completed": 0}
    trials = [t for t in optuna.load_study(study_name=study, storage=open_storage(str(storage_path))).get_trials()
              if t.state == TrialState.COMPLETE]
    if not trials:
        return {"completed": 0}
    first, last = min(t.datetime_start for t in trials), max(t.datetime_complete for t in trials)
    window = (last - first).total_seconds()
    durations = [(t.datetime_complete - t.datetime_start).total_seconds() for t in trials]
    train = [t.user_attrs["train_seconds"] for t in trials]
    steps = [t.user_attrs["steps"] for t in trials]
    return {
        "completed": len(trials), "window_s": window, "first_start": first.isoformat(), "last_end": last.isoformat(),
        "trials_per_hour": len(trials) / window * 3600 if window > 0 else None,
        "trial_s_mean": statistics.fmean(durations), "train_s_mean": statistics.fmean(train),
        "step_ms_mean": sum(train) / sum(steps) * 1e3,
        "other_s_mean": statistics.fmean(d - s for d, s in zip(durations, train)),  # surgery, eval, latency, save
        "devices": sorted({t.user_attrs.get("device", "?") for t in trials}),
    }


def run_search(args: argparse.Namespace, workers: int, host_from: Path | None) -> dict:
    """One limited `indexnas search` run with GPU sampling; the warm host is reused from an earlier run."""
    out = args.out / f"search-w{workers}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    if host_from is not None and (host_from / "host.pt").exists():  # same settings: the same warm-start host
        shutil.copy2(host_from / "host.pt", out / "host.pt")
    command = search_command(args, workers, out)
    with GpuSampler() as sampler:
        status, wall = run_limited(command, args.seconds, out / "log.txt")
    figures = trial_figures(out, f"gpu-check-w{workers}")
    window = None
    if figures.get("first_start"):
        window = (dt.datetime.fromisoformat(figures["first_start"]), dt.datetime.fromisoformat(figures["last_end"]))
    tail = (out / "log.txt").read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
    return {"workers": workers, "command": " ".join(command[1:]), "exit_status": status, "cut_at_limit": status is None,
            "wall_s": wall, "limit_s": args.seconds, "warm_host_reused": (out / "host.pt").exists() and host_from is not None,
            **figures, "gpu_during_trials": sampler.summary(*window) if window else None,
            "gpu_whole_run": sampler.summary(), "nvidia_smi": sampler.available, "log_tail": tail}


def verdict(result: dict) -> str:
    """Which of data generation, surgery or the GPU step bounds a trial, from the figures measured."""
    runs = [r for r in result["runs"] if r.get("completed")]
    if not runs or "probe" not in result:
        return "no completed trial: nothing to attribute"
    one = runs[0]
    data_share = result["probe"]["data_ms_per_batch"] / one["step_ms_mean"]
    other_share = one["other_s_mean"] / one["trial_s_mean"]
    surgery_share = result["probe"]["surgery_s"] / one["trial_s_mean"]
    text = (f"drawing a batch takes {data_share:.0%} of a training step ({result['probe']['data_ms_per_batch']:.1f} of "
            f"{one['step_ms_mean']:.1f} ms); outside training a trial spends {other_share:.0%} of its time "
            f"(the rewrite + cost count alone {surgery_share:.0%})")
    gpu = one.get("gpu_during_trials")
    if gpu:
        text += f"; GPU busy {gpu['util_mean_pct']:.0f}% of the time during trials (mean of nvidia-smi samples)"
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="dncnn_segnet")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=128, help="default: the paper's DnCNN batch")
    parser.add_argument("--patch", type=int, default=40, help="default: the paper's DnCNN patch")
    parser.add_argument("--budget-steps", type=int, default=100)
    parser.add_argument("--trials", type=int, default=1000, help="large: each run ends at --seconds")
    parser.add_argument("--seconds", type=float, default=90, help="time limit of each run")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--probe-batches", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("runs/gpu-search"))
    parser.add_argument("--json", type=Path, help="write the figures here (after each part)")
    args = parser.parse_args()
    settings = SearchSettings(task="denoise", model=args.model, study="probe", storage=str(args.out / "probe.log"),
                              out=str(args.out / "probe"), width=args.width, batch_size=args.batch_size,
                              patch=args.patch, budget_steps=args.budget_steps)
    result: dict = {"settings": {k: getattr(args, k) for k in ("model", "width", "batch_size", "patch",
                                                                 "budget_steps", "seconds")}, "runs": []}

    def save() -> None:
        result["verdict"] = verdict(result)
        if args.json:
            args.json.write_text(json.dumps(result, indent=1, default=str))

    result["probe"] = probe(settings, args.probe_batches)
    save()
    print(f"probe: {json.dumps(result['probe'])}", flush=True)
    for workers in args.workers:
        host_from = args.out / f"search-w{args.workers[0]}" if workers != args.workers[0] else None
        run = run_search(args, workers, host_from)
        result["runs"].append(run)
        save()
        shown = {k: v for k, v in run.items() if k not in ("log_tail", "command")}
        print(f"workers {workers}: {json.dumps(shown, default=str)}", flush=True)
    print(f"verdict: {result['verdict']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
