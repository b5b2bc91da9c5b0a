"""A trial's failure is the trial's; stale trials are retried once; locks die with their holder;
writes are atomic; passwords never leak; restarting a search resumes it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import optuna
import pytest
import torch
from conftest import PG_PASSWORD, tiny_settings
from optuna.trial import TrialState
from torch import nn

from indexnas.atomic import atomic_save
from indexnas.cli import main
from indexnas.reports import write_report
from indexnas.search.settings import SearchSettings
from indexnas.search.heartbeat import HEARTBEAT_ATTR, LOST_WORKER
from indexnas.search.locks import study_lock
from indexnas.search.optuna_private import storage_of, study_id_of, trial_id_of
from indexnas.search.run import run_search
from indexnas.search.schedule import counts, next_step
from indexnas.search.storage import open_storage
from indexnas.search.storage_urls import mask_text, mask_url
from indexnas.search.space import SearchSpace
from indexnas.tasks.problem import TaskProblem
from paths import REPO



class Faulty(nn.Module):
    """A rewritten model that fails the way user models and GPUs do."""

    def __init__(self, inner: nn.Module, fault: str) -> None:
        super().__init__()
        self.inner, self.fault = inner, fault

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fault == "oom":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        if self.fault == "raises":
            raise ValueError("the user's layer exploded")
        out = self.inner(x)
        if self.fault == "nan":
            return out * float("nan")
        if self.fault == "nan_eval":  # trains, then scores nothing (as depth maps without a valid pixel do)
            return out if self.training else out * float("nan")
        return out[..., :-1]  # "shape": one column short of the target


# The paper grid runs first: host, holistic, holistic-nl, holistic-nl-c, o2o-modelwise, o2o-modelwise-nl, ...
FAULTS = {"holistic": "nan", "holistic-nl": "oom", "holistic-nl-c": "raises", "o2o-modelwise": "shape",
          "o2o-modelwise-nl": "nan_eval"}
EXPECTED = {"holistic": ("diverged", "loss nan"), "holistic-nl": ("oom", "CUDA out of memory"),
            "holistic-nl-c": ("model_error", "ValueError: the user's layer exploded"),
            "o2o-modelwise": ("model_error", "the denoise model returned shape (4, 1, 40, 39)"),
            "o2o-modelwise-nl": ("no_metric", "non-finite psnr=nan")}


@pytest.fixture(scope="module")
def faulty_study(tmp_path_factory):
    """Two completed trials wanted; the five paper configurations between them fail, each its own way."""
    tmp_path = tmp_path_factory.mktemp("faults")
    torch.set_num_threads(1)
    rewrite = SearchSpace.rewrite

    def faulty_rewrite(self, choices):
        suggestion = rewrite(self, choices)
        fault = FAULTS.get(str(next(iter(choices.values()))))
        if fault:
            suggestion.model = Faulty(suggestion.model, fault)
        return suggestion

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SearchSpace, "rewrite", faulty_rewrite)
        study = run_search(SearchSettings(**tiny_settings(tmp_path, trials=2, warm_start=False)), TaskProblem)
    return tmp_path, study


def test_failed_trials_are_recorded_with_their_reason_and_the_study_goes_on(faulty_study):
    _, study = faulty_study
    by_config = {t.user_attrs.get("uniform"): t for t in study.trials}
    for config, (kind, message) in EXPECTED.items():
        trial = by_config[config]
        assert trial.state == TrialState.FAIL
        assert trial.user_attrs["failure"]["kind"] == kind
        assert message in trial.user_attrs["failure"]["message"]
    complete = [t.user_attrs["uniform"] for t in study.trials if t.state == TrialState.COMPLETE]
    assert complete == ["host", "o2o-modelwise-nl-c"]  # exactly the 2 requested, after the 5 failures
    assert all("failure" in t.user_attrs for t in study.trials if t.state == TrialState.FAIL)  # never without a reason


def test_the_report_lists_failed_trials_apart_with_their_reasons(faulty_study):
    tmp_path, study = faulty_study
    page = write_report(study, tmp_path / "report").read_text()
    failed_section = page[page.index("Failed and pruned trials (5)"):]
    for kind, message in EXPECTED.values():
        assert kind in failed_section and message.split(" (")[0] in failed_section


def test_a_worker_waits_rather_than_overshoot_the_requested_trials():
    state = {s: 0 for s in TrialState}
    assert next_step({**state, TrialState.COMPLETE: 2, TrialState.RUNNING: 1}, 3) == "wait"
    # a queued configuration (paper grid, retry) does not open a slot that running trials fill
    assert next_step({**state, TrialState.COMPLETE: 2, TrialState.RUNNING: 1, TrialState.WAITING: 5}, 3) == "wait"
    assert next_step({**state, TrialState.COMPLETE: 1, TrialState.RUNNING: 1, TrialState.FAIL: 1}, 3) == "start"
    assert next_step({**state, TrialState.COMPLETE: 3}, 3) == "stop"
    assert next_step({**state, TrialState.FAIL: 5}, 3) == "stop"  # a broken setup does not loop forever


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_stale_trial_is_failed_as_lost_and_queued_again_clean(tmp_path):
    storage = open_storage(str(tmp_path / "s.log"), heartbeat_interval=0.05, grace_period=0.2)
    study = optuna.create_study(storage=storage, study_name="stale")
    study.enqueue_trial({"x": 1.0}, user_attrs={"uniform": "m2o"})
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 2)})
    trial.set_user_attr("worker", "node7-4242")
    storage.record_heartbeat(trial_id_of(trial))
    time.sleep(0.3)  # no heartbeat since: the worker died
    with pytest.warns(optuna.exceptions.ExperimentalWarning):
        optuna.storages.fail_stale_trials(study)
    dead, retry = study.trials
    assert dead.state == TrialState.FAIL
    assert dead.user_attrs["failure"]["kind"] == LOST_WORKER and "node7-4242" in dead.user_attrs["failure"]["message"]
    assert retry.state == TrialState.WAITING and retry.system_attrs["failed_trial"] == dead.number
    assert retry.params == {"x": 1.0} and retry.user_attrs["uniform"] == "m2o"
    assert "failure" not in retry.user_attrs and HEARTBEAT_ATTR not in retry.system_attrs
    started = study.ask()  # the retry, popped now: its old heartbeat must not make it stale at once
    assert started.number == retry.number
    assert storage._get_stale_trial_ids(study_id_of(study)) == []


HOLD = ("import sys, time; from indexnas.search.storage import open_storage; from indexnas.search.locks import study_lock; "
        "lock = study_lock(open_storage(sys.argv[1]), 'held'); lock.acquire(); print('held', flush=True); time.sleep(600)")


@pytest.mark.parametrize("backend", ["journal", "postgresql"])
def test_the_study_lock_excludes_other_processes_and_dies_with_its_holder(backend, tmp_path, request):
    url = str(tmp_path / "s.log") if backend == "journal" else request.getfixturevalue("postgres_url")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, url], cwd=REPO, stdout=subprocess.PIPE)
    lock, got = study_lock(open_storage(url), "held"), threading.Event()
    try:
        assert holder.stdout.readline().strip() == b"held"
        threading.Thread(target=lambda: (lock.acquire(), got.set()), daemon=True).start()
        assert not got.wait(1.0)  # the other process holds it
        os.kill(holder.pid, signal.SIGKILL)  # dies holding it: no release, no clean-up
        assert got.wait(10.0)
    finally:
        if holder.poll() is None:
            holder.kill()
    lock.release()
    with study_lock(open_storage(url), "held"):  # and free again for anyone
        pass


def test_checkpoint_writes_are_atomic(tmp_path):
    path = tmp_path / "trial-00001.pt"
    atomic_save({"weights": torch.ones(3)}, path)
    before = path.read_bytes()

    class Unpicklable:
        def __reduce__(self):
            raise OSError("No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic_save({"weights": torch.zeros(3), "extra": Unpicklable()}, path)
    assert path.read_bytes() == before  # the old checkpoint is whole
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # and no temporary is left


def test_masked_urls_hide_every_form_of_password():
    cases = {
        "postgresql://bob:s3cret@db:5432/studies": "postgresql://bob:***@db:5432/studies",
        "postgresql+psycopg2://bob:p@ss:w/rd@db/x": "postgresql+psycopg2://bob:***@db/x",
        "mysql://:s3cret@db/x": "mysql://:***@db/x",
        "postgresql://db/x?user=bob&password=s3cret": "postgresql://db/x?password=***&user=bob",
        "postgresql://bob:my s3cret@db/x": "postgresql://bob:***@db/x",  # SQLAlchemy takes any character
        "postgresql://bob:p%40ss@db/x": "postgresql://bob:***@db/x",
        "cannot open 'postgresql://bob:s3cret@db/x': refused": "cannot open 'postgresql://bob:***@db/x': refused",
        "postgresql://bob@db/x": "postgresql://bob@db/x",
        "journal:///runs/studies.log": "journal:///runs/studies.log",
    }
    for url, masked in cases.items():
        assert mask_url(url) == masked
    error = "FATAL: password 'my s3cret' rejected for postgresql://bob:my s3cret@db/x"
    assert "s3cret" not in mask_text(error, "postgresql://bob:my s3cret@db/x")


def test_a_postgresql_password_never_reaches_output_storage_or_report(postgres_url, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["search", "--task", "denoise", "--model", tiny_settings(tmp_path)["model"], "--trials", "1",
            "--budget-steps", "2", "--batch-size", "4", "--no-paper-grid", "--no-warm-start", "--quiet",
            "--storage", postgres_url, "--study", "secret-check", "--out", str(out)]
    assert main(args) == 0
    wrong = postgres_url.replace(PG_PASSWORD, "wrong-" + PG_PASSWORD)
    assert main([*args[:-4], "--storage", wrong, "--study", "x", "--out", str(tmp_path / "other")]) == 2
    printed = capsys.readouterr()
    assert "password authentication failed" in printed.err and "***@127.0.0.1" in printed.err
    study = optuna.load_study(study_name="secret-check", storage=open_storage(postgres_url))
    stored = json.dumps(study.user_attrs) + json.dumps([t.user_attrs for t in study.trials], default=str)
    written = "".join(p.read_text(errors="replace") for p in out.rglob("*") if p.suffix in (".html", ".json", ".csv"))
    for text in (printed.out, printed.err, stored, written):
        assert PG_PASSWORD not in text
    assert "indexnas:***@127.0.0.1" in stored


def test_running_the_same_search_command_again_resumes_the_study(tmp_path, capsys):
    args = ["search", "--task", "denoise", "--model", tiny_settings(tmp_path)["model"], "--budget-steps", "2",
            "--batch-size", "4", "--no-paper-grid", "--quiet", "--no-report", "--storage", str(tmp_path / "s.log"),
            "--study", "resumed", "--out", str(tmp_path / "run")]
    assert main([*args, "--trials", "1"]) == 0
    first = optuna.load_study(study_name="resumed", storage=open_storage(str(tmp_path / "s.log"))).trials
    host = (tmp_path / "run" / "host.pt").read_bytes()
    assert main([*args, "--trials", "2"]) == 0
    assert "2 completed" in capsys.readouterr().out
    trials = optuna.load_study(study_name="resumed", storage=open_storage(str(tmp_path / "s.log"))).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert trials[0].datetime_start == first[0].datetime_start and trials[0].values == first[0].values
    assert (tmp_path / "run" / "host.pt").read_bytes() == host  # the warm-started host is reused, not retrained


@pytest.mark.parametrize("backend, kind", [("journal", "file"), ("sqlite", "file"), ("postgresql", "postgresql-advisory")])
def test_a_study_takes_the_lock_its_storage_offers(backend, kind, tmp_path, request):
    url = {"journal": str(tmp_path / "s.log"), "sqlite": f"sqlite:///{tmp_path / 's.db'}"}.get(backend) \
        or request.getfixturevalue("postgres_url")
    name = f"locked-{backend}-{os.getpid()}"
    study = optuna.create_study(storage=open_storage(url), study_name=name)  # Optuna wraps RDB storages in a cache
    assert study_lock(storage_of(study), name).kind == kind


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_two_workers_racing_for_the_last_slot_never_exceed_the_count(postgres_url):
    storages = [open_storage(postgres_url), open_storage(postgres_url)]  # one connection pool per worker
    for repetition in range(20):
        name = f"race-{os.getpid()}-{repetition}"
        study = optuna.create_study(storage=storages[0], study_name=name)
        study.tell(study.ask(), 1.0)  # 1 of 2 completed: one slot left
        barrier = threading.Barrier(2)

        def claim(storage) -> None:  # what `work` does to start a trial, with a slow moment inside
            mine = optuna.load_study(study_name=name, storage=storage)
            barrier.wait()
            with study_lock(storage_of(mine), name):
                if next_step(counts(mine), 2) == "start":
                    time.sleep(0.05)  # without the lock, the other worker sees the slot free meanwhile
                    mine.ask()

        workers = [threading.Thread(target=claim, args=(s,)) for s in storages]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        state = counts(study)
        assert state[TrialState.COMPLETE] + state[TrialState.RUNNING] == 2, f"repetition {repetition}: {state}"
