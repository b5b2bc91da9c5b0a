"""A worker that dies mid-trial loses nothing: its trial is failed as worker_lost once its heartbeat is
old, run again in its place in the queue, and the study ends with exactly the requested trials.

The fast test plays the dead worker in-process; the slow ones SIGKILL a real worker process (and start
a replacement) on the journal and on a real PostgreSQL server, as benchmarks/bench_kill.py repeats.
"""

from __future__ import annotations

import os
import sys

import pytest
from conftest import PG_PASSWORD, tiny_settings
from optuna.trial import TrialState

from indexnas.search.settings import SearchSettings
from indexnas.search.context import prepare
from indexnas.search.heartbeat import LOST_WORKER
from indexnas.search.optuna_private import storage_of, trial_id_of
from indexnas.search.schedule import work
from indexnas.search.storage import open_storage
from indexnas.search.study import open_study
from indexnas.tasks.problem import TaskProblem
from paths import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import bench_kill  # noqa: E402

EXPECTED = {"requested": 3, "completed": 3, "failed": 1, "retried": 1, "duplicated": 0, "problems": []}


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_dead_workers_trial_is_failed_as_lost_and_run_again_in_its_place(tmp_path):
    settings = SearchSettings(**tiny_settings(tmp_path, trials=2, warm_start=False, heartbeat_interval=0.2,
                                              grace_period=1.0))
    context = prepare(settings, TaskProblem)
    study = open_study(open_storage(settings.storage, 0.2, 1.0), settings, context)  # the paper grid, host first
    dead = study.ask()  # another worker takes the host's trial, and dies
    dead.set_user_attr("worker", "node7-4242")
    storage_of(study).record_heartbeat(trial_id_of(dead))
    work(study, context)
    trials = study.get_trials()
    host = trials[0]
    assert host.state == TrialState.FAIL and host.user_attrs["failure"]["kind"] == LOST_WORKER
    assert "node7-4242" in host.user_attrs["failure"]["message"]
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == 0]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE and retry[0].user_attrs["uniform"] == "host"
    complete = sorted(t.user_attrs["uniform"] for t in trials if t.state == TrialState.COMPLETE)
    assert complete == ["holistic", "host"]  # exactly 2; the host's retry ran before the rest of the grid


@pytest.mark.slow  # real worker processes (~30-120 s on a busy 2-core machine)
def test_killed_worker_on_the_journal_storage_is_retried_and_nothing_is_lost(tmp_path):
    counts = bench_kill.kill_one_of_two(str(tmp_path / "studies.log"), tmp_path, "killed-journal")
    assert counts == EXPECTED


@pytest.mark.slow
def test_killed_worker_on_postgresql_is_retried_and_nothing_is_lost(tmp_path, postgres_url):
    counts = bench_kill.kill_one_of_two(postgres_url, tmp_path, f"killed-pg-{os.getpid()}")
    assert counts == EXPECTED
    assert PG_PASSWORD not in (tmp_path / "workers.log").read_text(errors="replace")
