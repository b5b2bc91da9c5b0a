"""SIGTERM/SIGINT stop a search cleanly: running trials fail as `interrupted` and are queued again in their
place, workers never outlive their parent, and nothing prints a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
from conftest import tiny_settings
from optuna.trial import TrialState

from indexnas.search.settings import SearchSettings
from indexnas.search.storage import open_storage, retry_stale_trial
from indexnas.search.context import prepare
from indexnas.search.schedule import work
from indexnas.search.study import open_study
from indexnas.search.workers import INTERRUPTED, Interrupted, interruptible, pop_in_place, requeue_when_interrupted
from indexnas.tasks.problem import TaskProblem
from paths import REPO

CLI = "import sys; from indexnas.cli import main; sys.exit(main(sys.argv[1:]))"
X = optuna.distributions.CategoricalDistribution(["host", "a", "b", "c"])
pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")


def queued_study(tmp_path: Path) -> optuna.Study:
    study = optuna.create_study(storage=open_storage(str(tmp_path / "s.log")), study_name="q")
    for label in ("host", "a", "b", "c"):
        study.enqueue_trial({"x": label}, user_attrs={"uniform": label})
    return study


def test_a_retried_trial_runs_in_the_place_of_the_trial_it_repeats(tmp_path):
    study = queued_study(tmp_path)
    pop_in_place(study)
    host = study.ask({"x": X})  # the host's trial dies ...
    study.tell(host, state=TrialState.FAIL)
    retry_stale_trial(study, study.trials[0])  # ... and is queued again, as trial 4
    assert study.ask({"x": X}).params == {"x": "host"}  # run next, not after a, b and c
    assert [study.ask({"x": X}).params["x"] for _ in range(3)] == ["a", "b", "c"]


def test_an_interrupted_trial_fails_as_interrupted_and_is_queued_again(tmp_path):
    study = queued_study(tmp_path)

    def objective(trial):
        trial.suggest_categorical("x", X.choices)
        raise Interrupted(signal.SIGTERM)

    with pytest.raises(KeyboardInterrupt):
        study.optimize(requeue_when_interrupted(objective), n_trials=1)
    stopped, retry = study.trials[0], study.trials[-1]
    assert stopped.state == TrialState.FAIL
    assert stopped.user_attrs["failure"]["kind"] == INTERRUPTED and "SIGTERM" in stopped.user_attrs["failure"]["message"]
    assert retry.state == TrialState.WAITING and retry.params == {"x": "host"}
    assert retry.system_attrs["failed_trial"] == 0 and "failure" not in retry.user_attrs


def test_a_signal_raises_once_and_a_second_one_is_ignored_while_the_first_is_handled():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted, match="stopped by SIGTERM"), interruptible():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the signal interrupts this at once
    assert signal.getsignal(signal.SIGTERM) is before
    with pytest.raises(Interrupted, match="SIGINT"), interruptible():
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)  # Ctrl-C reaching a worker twice: the handling is not cut short
            time.sleep(0.1)


@pytest.mark.slow  # prepares a search in-process (~5-10 s on a busy 2-core machine)
def test_sigterm_during_a_trial_fails_it_at_once_and_the_resume_runs_it_first(tmp_path):
    settings = SearchSettings(**tiny_settings(tmp_path, trials=2, budget_steps=100_000, budget_seconds=30,
                                              warm_start=False))
    context = prepare(settings, TaskProblem)
    study = open_study(open_storage(settings.storage), settings, context)
    timer = threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt), interruptible():
        work(study, context)
    assert time.monotonic() - started < 15  # not the 30 s budget, not the 60 s grace
    host = study.trials[0]
    assert host.state == TrialState.FAIL and host.user_attrs["failure"]["kind"] == INTERRUPTED
    retry = [t for t in study.trials if t.system_attrs.get("failed_trial") == 0]
    assert len(retry) == 1 and retry[0].state == TrialState.WAITING and retry[0].user_attrs["uniform"] == "host"


@pytest.mark.slow  # starts a search with two spawned workers (~20 s)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_parent_of_workers_stops_them_all_without_a_traceback(signum, tmp_path):
    storage = tmp_path / "studies.log"
    command = [sys.executable, "-c", CLI, "search", "--task", "denoise", "--model",
               tiny_settings(tmp_path)["model"], "--trials", "4", "--budget-steps", "100000", "--budget-seconds",
               "60", "--batch-size", "4", "--no-warm-start", "--quiet", "--workers", "2", "--storage", str(storage),
               "--study", "sig", "--out", str(tmp_path / "run")]
    parent = subprocess.Popen(command, cwd=REPO, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            trials = _trials(storage)
            if sum(t.state == TrialState.RUNNING and "recipe" in t.user_attrs for t in trials) == 2:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the two workers did not both start a trial")
        workers = {int(t.user_attrs["worker"].rsplit("-", 1)[1]) for t in trials if t.state == TrialState.RUNNING}
        parent.send_signal(signum)
        _, err = parent.communicate(timeout=60)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert parent.returncode == 130 and "Traceback" not in err, err
    assert "interrupted" in err
    for pid in workers:  # no orphans
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    trials = _trials(storage)
    stopped = [t for t in trials if t.state == TrialState.FAIL]
    assert len(stopped) == 2 and all(t.user_attrs["failure"]["kind"] == INTERRUPTED for t in stopped)
    retries = sorted(t.system_attrs["failed_trial"] for t in trials if "failed_trial" in t.system_attrs)
    assert retries == sorted(t.number for t in stopped)


def _trials(storage: Path) -> list:
    if not storage.exists():
        return []
    try:
        return optuna.load_study(study_name="sig", storage=open_storage(str(storage))).trials
    except KeyError:
        return []
