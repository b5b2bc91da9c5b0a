"""A journal on a full disk: one error line, the study intact, and a resume after freeing space completes."""

from __future__ import annotations

import errno
import os
import subprocess

import optuna
import pytest
from conftest import tiny_settings
from optuna.trial import TrialState

import indexnas.search.journal
from indexnas.cli import main
from indexnas.errors import UserError
from indexnas.search.journal import complete_length
from indexnas.search.settings import SearchSettings
from indexnas.search.storage import open_storage
from indexnas.search.run import run_search
from indexnas.tasks.problem import TaskProblem


@pytest.fixture
def small_disk(tmp_path):
    """A 512 KiB tmpfs (root only; skipped elsewhere)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode(errors='replace').strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(folder, leave: int) -> os.PathLike:
    """Fill the filesystem, then free ``leave`` bytes: the next writes run out of space part-way."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 4096)
        except OSError:
            pass
    os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_journal_write_that_fails_is_undone_and_reported_in_one_error(tmp_path, monkeypatch):
    path = tmp_path / "studies.log"
    study = optuna.create_study(storage=open_storage(str(path)), study_name="s")
    study.tell(study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}), 0.5)
    before = path.read_bytes()

    def full(_fd: int) -> None:  # the record reached the file, then the disk turned out full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(indexnas.search.journal.os, "fsync", full)
    with pytest.raises(UserError, match="the disk is full; the study is intact") as error:
        study.ask()
    assert "run the same command to resume" in str(error.value)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert len(optuna.load_study(study_name="s", storage=open_storage(str(path))).trials) == 1


@pytest.mark.slow  # three small searches (~15 s)
def test_a_journal_on_a_full_disk_fails_in_one_line_and_resumes_after_space_is_freed(small_disk, tmp_path, capsys):
    journal = small_disk / "studies.log"
    args = ["search", "--task", "denoise", "--model", tiny_settings(tmp_path)["model"], "--budget-steps", "2",
            "--batch-size", "4", "--no-paper-grid", "--no-warm-start", "--quiet", "--no-report",
            "--storage", str(journal), "--study", "full", "--out", str(tmp_path / "run")]
    assert main([*args, "--trials", "1"]) == 0
    first = optuna.load_study(study_name="full", storage=open_storage(str(journal))).trials[0]
    capsys.readouterr()
    filler = fill(small_disk, leave=4096)
    assert main([*args, "--trials", "3"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Should not reach" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("indexnas: error:")]
    assert len(errors) == 1 and "the disk is full" in errors[0] and "fix: free disk space" in err, err
    data = journal.read_bytes()
    assert complete_length(data) == len(data)  # no torn record left behind
    filler.unlink()
    settings = tiny_settings(tmp_path, storage=str(journal), study="full", trials=3, paper_grid=False,
                             warm_start=False, heartbeat_interval=0.2, grace_period=1.0)
    study = run_search(SearchSettings(**settings), TaskProblem)  # a trial cut short by the full disk is failed and run again
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 3 and complete[0].values == first.values


@pytest.mark.parametrize("what", ["the warm host", "the checkpoint"])
def test_weights_that_cannot_be_written_stop_the_search_in_one_error(tmp_path, monkeypatch, what):
    import indexnas.search.checkpoints as weights_module

    failing = "host.pt" if what == "the warm host" else "trial-"  # the file whose write meets a full disk

    def full(_payload: object, path: os.PathLike) -> None:
        if os.path.basename(path).startswith(failing):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(weights_module, "atomic_save", full)
    with pytest.raises(UserError, match=f"cannot write {what} .*No space left on device") as error:
        run_search(SearchSettings(**tiny_settings(tmp_path, trials=1, warm_start=what == "the warm host")), TaskProblem)
    assert "run the same command to resume" in str(error.value)
