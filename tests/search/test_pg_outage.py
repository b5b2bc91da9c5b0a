"""The database server goes away in the middle of a trial: one error line; once it is back, a resume
fails the cut-off trial as lost and runs it again."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import sqlalchemy.exc
from conftest import PG_PASSWORD, postgres_server, tiny_settings
from optuna.trial import TrialState

from indexnas.errors import UserError
from indexnas.search.settings import SearchSettings
from indexnas.search.heartbeat import LOST_WORKER
from indexnas.search.run import run_search
from indexnas.search.storage import open_storage, storage_faults
from indexnas.tasks.problem import TaskProblem
from paths import REPO

CLI = "import sys; from indexnas.cli import main; sys.exit(main(sys.argv[1:]))"
URL = "postgresql://bob:my pw@db:5432/studies"


def test_a_lost_database_under_optunas_own_error_becomes_one_masked_error_line():
    with pytest.raises(UserError) as error, storage_faults(URL):
        try:  # Optuna, failing to record the trial's end, raises AssertionError("Should not reach.") over it
            raise sqlalchemy.exc.OperationalError("UPDATE trials", {}, Exception("server closed the connection: my pw"))
        except sqlalchemy.exc.OperationalError:
            raise AssertionError("Should not reach.")
    message = str(error.value)
    assert message.startswith("lost the study storage postgresql://bob:***@db:5432/studies: server closed")
    assert "my pw" not in message and "fix: once the database server is reachable again" in message


def test_other_errors_pass_through_unchanged():
    with pytest.raises(ValueError, match="a bug"), storage_faults(URL):
        raise ValueError("a bug")


@pytest.mark.slow  # a search in a subprocess, a server stopped and restarted, a resume (~40 s)
def test_a_postgresql_outage_mid_trial_is_one_error_line_and_the_resume_retries_the_trial(tmp_path):
    server = postgres_server()
    try:
        args = ["search", "--task", "denoise", "--model", tiny_settings(tmp_path)["model"], "--trials", "1",
                "--budget-steps", "100000", "--budget-seconds", "4", "--batch-size", "4", "--no-paper-grid",
                "--no-warm-start", "--quiet", "--no-report", "--storage", server.url, "--study", "outage",
                "--out", str(tmp_path / "run")]
        search = subprocess.Popen([sys.executable, "-c", CLI, *args], cwd=REPO, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        storage = open_storage(server.url)
        deadline = time.monotonic() + 180
        while not _training(storage):
            assert time.monotonic() < deadline and search.poll() is None, "the search did not start its trial"
            time.sleep(0.2)
        server.stop()
        out, err = search.communicate(timeout=120)
        assert search.returncode == 2 and "Traceback" not in err, err
        errors = [line for line in err.splitlines() if line.startswith("indexnas: error:")]
        assert len(errors) == 1 and "lost the study storage" in errors[0] and PG_PASSWORD not in err + out, err
        server.start()
        settings = tiny_settings(tmp_path, storage=server.url, study="outage", trials=1, paper_grid=False,
                                 warm_start=False, budget_steps=100_000, budget_seconds=4.0, heartbeat_interval=0.2,
                                 grace_period=1.0)
        study = run_search(SearchSettings(**settings), TaskProblem)
        cut, retry = study.trials
        assert cut.state == TrialState.FAIL and cut.user_attrs["failure"]["kind"] == LOST_WORKER
        assert retry.state == TrialState.COMPLETE and retry.system_attrs["failed_trial"] == cut.number
        assert retry.params == cut.params
    finally:
        server.remove()


def _training(storage) -> bool:
    try:
        trials = storage.get_all_trials(storage.get_study_id_from_name("outage"))
    except KeyError:
        return False
    return any(t.state == TrialState.RUNNING and "recipe" in t.user_attrs for t in trials)
