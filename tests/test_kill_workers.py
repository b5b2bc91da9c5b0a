"""Two workers share a study; one is killed with SIGKILL in the middle of a trial.

The other worker notices the dead trial by its heartbeat, fails it (failure kind worker_lost) and runs
it again, and the study ends with exactly the requested completed trials: none lost, none twice. Once
on the embedded journal storage, once on a real PostgreSQL server (tests/conftest.py starts one).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import PG_PASSWORD, tiny_settings
from optuna.trial import TrialState

from indexnas.search.storage import LOST_WORKER, open_storage

REPO = Path(__file__).resolve().parents[1]
TRIALS = 3
WORKER = "import json, sys, torch; torch.set_num_threads(1); from indexnas.search.settings import SearchSettings; " \
         "from indexnas.search.study import run_search; run_search(SearchSettings(**json.loads(sys.argv[1])))"


def start_worker(settings: dict, log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(settings)], cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT)


def trials_of(storage, study: str) -> list:
    try:
        return storage.get_all_trials(storage.get_study_id_from_name(study), deepcopy=False)
    except KeyError:  # not created yet
        return []


def kill_mid_trial(storage, study: str, workers: list[subprocess.Popen], timeout: float = 90) -> tuple[int, int]:
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
            pytest.fail("a worker exited before any trial could be killed")
        time.sleep(0.1)
    pytest.fail("no worker started a trial in time")


def kill_one_of_two(url: str, tmp_path: Path, study: str) -> dict[str, int]:
    settings = tiny_settings(tmp_path, storage=url, study=study, trials=TRIALS, budget_steps=100_000,
                             budget_seconds=1.5, paper_grid=False, warm_start=False, heartbeat_interval=0.5,
                             grace_period=3.0)
    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    workers = [start_worker(settings, log) for log in logs]
    try:
        storage = open_storage(url, heartbeat_interval=0.5, grace_period=3.0)
        killed, killed_pid = kill_mid_trial(storage, study, workers)
        survivor = next(p for p in workers if p.pid != killed_pid)
        assert survivor.wait(timeout=120) == 0, (logs[0].read_text(errors="replace") + logs[1].read_text(errors="replace"))
    finally:
        for process in workers:
            if process.poll() is None:
                process.kill()
    trials = trials_of(storage, study)
    by_number = {t.number: t for t in trials}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    retries = [t for t in trials if "failed_trial" in t.system_attrs]
    retried_complete = [t.system_attrs["failed_trial"] for t in complete if "failed_trial" in t.system_attrs]

    assert by_number[killed].state == TrialState.FAIL
    assert by_number[killed].user_attrs["failure"]["kind"] == LOST_WORKER
    assert str(killed_pid) in by_number[killed].user_attrs["failure"]["message"]
    assert [t.system_attrs["failed_trial"] for t in retries] == [killed]  # queued again exactly once
    assert retries[0].state == TrialState.COMPLETE and "failure" not in retries[0].user_attrs
    assert retries[0].params == by_number[killed].params  # the same configuration, run again
    assert len(complete) == TRIALS  # none lost, no overshoot
    assert len(retried_complete) == len(set(retried_complete))  # none completed twice
    assert not [t for t in trials if t.state in (TrialState.WAITING, TrialState.RUNNING)]
    counts = {"requested": TRIALS, "completed": len(complete),
              "failed": sum(t.state == TrialState.FAIL for t in trials), "retried": len(retries),
              "duplicated": len(retried_complete) - len(set(retried_complete))}
    print(f"\nkill test ({type(storage).__name__}): {counts}")
    for log in logs:
        assert PG_PASSWORD not in log.read_text(errors="replace")
    return counts


def test_killed_worker_on_the_journal_storage_is_retried_and_nothing_is_lost(tmp_path):
    counts = kill_one_of_two(str(tmp_path / "studies.log"), tmp_path, "killed-journal")
    assert counts == {"requested": 3, "completed": 3, "failed": 1, "retried": 1, "duplicated": 0}


def test_killed_worker_on_postgresql_is_retried_and_nothing_is_lost(tmp_path, postgres_url):
    counts = kill_one_of_two(postgres_url, tmp_path, f"killed-pg-{os.getpid()}")
    assert counts == {"requested": 3, "completed": 3, "failed": 1, "retried": 1, "duplicated": 0}
