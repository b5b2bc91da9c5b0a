"""Kill test, repeated: two workers share a study, one is killed with SIGKILL mid-trial, a replacement starts.

Each repetition checks: exactly N of N trials completed; the killed trial failed as worker_lost and was
run again once, with the same configuration, in its place in the queue; no configuration completed
twice; the storage loads afresh. On the journal file and on a real PostgreSQL server that this script
starts (tests/pgserver.py; skipped when PostgreSQL is not installed).

    python benchmarks/bench_kill.py --reps 20            # both storages
    python benchmarks/bench_kill.py --reps 5 --storage journal
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the throw-away PostgreSQL server and the tiny model of the tests

import optuna  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from indexnas.search.heartbeat import LOST_WORKER  # noqa: E402
from indexnas.search.storage import open_storage  # noqa: E402

TRIALS = 3
PASSWORD = "bench kill pw"
WORKER = ("import json, sys, torch; torch.set_num_threads(1); from indexnas.search.settings import SearchSettings; "
          "from indexnas.search.run import run_search; from indexnas.tasks.problem import TaskProblem; "
          "run_search(SearchSettings(**json.loads(sys.argv[1])), TaskProblem)")


class KillFailed(Exception):
    """A repetition that could not kill a worker mid-trial (it proves nothing either way)."""


def start_worker(settings: dict, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(settings)], cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})


def trials_of(storage, study: str) -> list:
    try:
        return storage.get_all_trials(storage.get_study_id_from_name(study), deepcopy=False)
    except KeyError:  # not created yet
        return []


def kill_mid_trial(storage, study: str, workers: list[subprocess.Popen], timeout: float = 300) -> tuple[int, int]:
    """SIGKILL the first worker seen training a trial (its recipe is stored: surgery done, training on)."""
    deadline = time.monotonic() + timeout
    pids = {f"-{p.pid}": p for p in workers}
    while time.monotonic() < deadline:
        for trial in trials_of(storage, study):
            owner = next((p for suffix, p in pids.items() if trial.user_attrs.get("worker", "").endswith(suffix)), None)
            if trial.state == TrialState.RUNNING and "recipe" in trial.user_attrs and owner is not None:
                os.kill(owner.pid, signal.SIGKILL)
                owner.wait(timeout=30)
                return trial.number, owner.pid
        if any(p.poll() is not None for p in workers):
            raise KillFailed("a worker exited before any trial could be killed")
        time.sleep(0.1)
    raise KillFailed("no worker started a trial in time")


def kill_one_of_two(url: str, folder: Path, study: str, trials: int = TRIALS) -> dict[str, int]:
    """One repetition; returns its counts (``problems`` lists what was wrong, empty when all is right)."""
    from conftest import tiny_settings

    settings = tiny_settings(folder, storage=url, study=study, trials=trials, budget_steps=100_000,
                             budget_seconds=1.5, paper_grid=True, warm_start=False, heartbeat_interval=0.5,
                             grace_period=3.0)
    log = folder / "workers.log"
    workers = [start_worker(settings, log), start_worker(settings, log)]
    try:
        storage = open_storage(url, heartbeat_interval=0.5, grace_period=3.0)
        killed, killed_pid = kill_mid_trial(storage, study, workers)
        workers.append(start_worker(settings, log))  # the replacement
        exits = [p.wait(timeout=300) for p in workers if p.pid != killed_pid]
    finally:
        for process in workers:
            if process.poll() is None:
                process.kill()
    fresh = optuna.load_study(study_name=study, storage=open_storage(url))  # the storage loads afresh
    trials_now = fresh.get_trials(deepcopy=False)
    by_number = {t.number: t for t in trials_now}
    complete = [t for t in trials_now if t.state == TrialState.COMPLETE]
    retries = [t for t in trials_now if t.system_attrs.get("failed_trial") == killed]
    configurations = Counter(json.dumps(t.params, sort_keys=True) for t in complete)
    failure = by_number[killed].user_attrs.get("failure", {})
    problems = []
    if any(exits):
        problems.append(f"a worker exited with status {exits}")
    if len(complete) != trials:
        problems.append(f"{len(complete)} of {trials} completed")
    if by_number[killed].state != TrialState.FAIL or failure.get("kind") != LOST_WORKER or str(killed_pid) not in failure.get("message", ""):
        problems.append(f"killed trial {killed}: {by_number[killed].state.name} {failure}")
    if len(retries) != 1 or retries[0].state != TrialState.COMPLETE or retries[0].params != by_number[killed].params:
        problems.append(f"killed trial {killed} retried as {[(t.number, t.state.name) for t in retries]}")
    if max(configurations.values(), default=0) > 1:
        problems.append("a configuration completed twice")
    if [t for t in trials_now if t.state == TrialState.RUNNING]:
        problems.append("a trial left RUNNING")
    if PASSWORD in log.read_text(errors="replace"):
        problems.append("the password reached a worker's output")
    return {"requested": trials, "completed": len(complete),
            "failed": sum(t.state == TrialState.FAIL for t in trials_now), "retried": len(retries),
            "duplicated": sum(n - 1 for n in configurations.values()), "problems": problems}


def repeat(backend: str, url: str, reps: int, root: Path) -> list[dict]:
    results = []
    for rep in range(reps):
        folder = root / f"{backend}-{rep}"
        folder.mkdir()
        target = url or str(folder / "studies.log")
        started = time.perf_counter()
        try:
            counts = kill_one_of_two(target, folder, f"kill-{backend}-{rep}")
        except KillFailed as reason:
            counts = {"problems": [f"no kill: {reason}"]}
        counts["seconds"] = round(time.perf_counter() - started, 1)
        results.append(counts)
        print(f"{backend} rep {rep + 1}/{reps}: {counts}", flush=True)
    return results


def summary(backend: str, results: list[dict]) -> str:
    exact = sum(r.get("completed") == r.get("requested") for r in results)
    retried = sum(r.get("retried") == 1 for r in results)
    clean = sum(not r["problems"] for r in results)
    duplicated = sum(r.get("duplicated", 0) for r in results)
    overshoot = sum((r.get("completed") or 0) > (r.get("requested") or 0) for r in results)
    seconds = sum(r["seconds"] for r in results) / max(1, len(results))
    return (f"{backend}: {clean}/{len(results)} repetitions with every check passed; exact {TRIALS}/{TRIALS} completed "
            f"in {exact}, overshoot in {overshoot}, killed trial failed and retried once in {retried}, duplicated "
            f"configurations {duplicated}; {seconds:.0f} s a repetition")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--storage", choices=("journal", "postgresql", "both"), default="both")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="indexnas-bench-kill-"))
    lines, all_clean = [], True
    if args.storage in ("journal", "both"):
        results = repeat("journal", "", args.reps, root)
        lines.append(summary("journal", results))
        all_clean &= all(not r["problems"] for r in results)
    if args.storage in ("postgresql", "both"):
        from pgserver import PostgresServer, Unavailable

        try:
            server = PostgresServer(PASSWORD)
        except Unavailable as reason:
            lines.append(f"postgresql: skipped ({reason})")
        else:
            try:
                server.start()
                results = repeat("postgresql", server.url, args.reps, root)
                lines.append(summary("postgresql", results))
                all_clean &= all(not r["problems"] for r in results)
            finally:
                server.remove()
    print("\n".join(lines))
    return 0 if all_clean else 1


if __name__ == "__main__":
    sys.exit(main())
