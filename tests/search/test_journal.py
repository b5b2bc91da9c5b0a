"""A journal cut short by a crash or a full disk keeps every complete record; damage in the middle is refused."""

from __future__ import annotations

import logging

import optuna
import pytest
from conftest import tiny_settings
from optuna.trial import TrialState

from indexnas.cli import main
from indexnas.errors import UserError
from indexnas.search.storage import open_storage

X = optuna.distributions.FloatDistribution(0, 10)
pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")


def journal_with_trials(path, count: int = 3) -> list[float]:
    study = optuna.create_study(storage=open_storage(str(path)), study_name="s")
    for value in range(count):
        study.tell(study.ask({"x": X}), float(value))
    return [t.values[0] for t in study.trials]


def resume_and_add_one(path) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name="s", storage=open_storage(str(path)))
    study.tell(study.ask({"x": X}), 99.0)
    return optuna.load_study(study_name="s", storage=open_storage(str(path))).trials


def damages(intact: bytes) -> dict[str, bytes]:
    """The journal with its last record cut at many offsets, or with junk appended with and without a newline."""
    last_start = intact.rstrip(b"\n").rfind(b"\n") + 1
    length = len(intact) - last_start
    cuts = sorted({*range(1, length, max(1, length // 12)), length - 1})
    cases = {f"cut at {cut} of {length}": intact[:last_start + cut] for cut in cuts}
    cases["junk without newline"] = intact + b'{"op_code": 5, "wor'
    cases["junk with newline"] = intact + b"\x00\x00garbage\n"
    return cases


def test_a_torn_or_junk_tail_is_cut_off_saved_beside_the_journal_and_the_study_goes_on(tmp_path, caplog):
    reference = tmp_path / "reference.log"
    values = journal_with_trials(reference)
    intact = reference.read_bytes()
    for number, (case, damaged) in enumerate(damages(intact).items()):
        folder = tmp_path / f"case{number}"
        folder.mkdir()
        path = folder / "studies.log"
        path.write_bytes(damaged)
        keep = intact if case.startswith("junk") else intact[:intact.rstrip(b"\n").rfind(b"\n") + 1]
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="indexnas"):
            trials = resume_and_add_one(path)
        saved = list(folder.glob("studies.log.torn-*"))
        assert len(saved) == 1, case
        assert keep + saved[0].read_bytes() == damaged, case  # nothing thrown away: the cut bytes are beside it
        assert str(path) in caplog.text and str(saved[0]) in caplog.text, case
        complete = [t.values[0] for t in trials if t.state == TrialState.COMPLETE]
        expected = values if case.startswith("junk") else values[:-1]  # a torn last record never completed
        assert complete[:-1] == expected and complete[-1] == 99.0, case


def test_a_record_torn_by_another_process_is_cut_before_this_one_appends(tmp_path):
    path = tmp_path / "studies.log"
    journal_with_trials(path)
    study = optuna.load_study(study_name="s", storage=open_storage(str(path)))  # open before the damage
    with open(path, "ab") as journal:
        journal.write(b'{"op_code":6,"worker_id":"dead","trial_id":')  # a worker killed mid-write
    study.tell(study.ask({"x": X}), 99.0)
    trials = optuna.load_study(study_name="s", storage=open_storage(str(path))).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert len(list(tmp_path.glob("studies.log.torn-*"))) == 1


def test_a_journal_damaged_in_the_middle_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "studies.log"
    journal_with_trials(path)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2][: len(lines[2]) // 2] + b"\n"
    damaged = b"".join(lines)
    path.write_bytes(damaged)
    with pytest.raises(UserError, match="damaged at line 3") as error:
        open_storage(str(path))
    assert "fix: restore" in str(error.value)
    assert path.read_bytes() == damaged and not list(tmp_path.glob("*.torn-*"))


def test_a_file_that_is_not_a_journal_is_refused_not_cut(tmp_path):
    path = tmp_path / "notes.log"
    path.write_bytes(b"my notes\nmore notes\n")
    with pytest.raises(UserError, match="not an Optuna journal"):
        open_storage(str(path))
    assert path.read_bytes() == b"my notes\nmore notes\n"


@pytest.mark.slow  # two searches (~12 s); the tests above cover the repair itself
def test_resuming_a_search_whose_journal_was_torn_completes_with_the_earlier_trials(tmp_path, capsys):
    storage = tmp_path / "studies.log"
    args = ["search", "--task", "denoise", "--model", tiny_settings(tmp_path)["model"], "--budget-steps", "2",
            "--batch-size", "4", "--no-paper-grid", "--no-warm-start", "--quiet", "--no-report",
            "--storage", str(storage), "--study", "torn", "--out", str(tmp_path / "run")]
    assert main([*args, "--trials", "2"]) == 0
    before = [t.values for t in optuna.load_study(study_name="torn", storage=open_storage(str(storage))).trials]
    with open(storage, "ab") as journal:
        journal.write(b'{"op_code":4,"worker_id":"x","study_id":0,"datetime_st')  # killed mid-write
    assert main([*args, "--trials", "3"]) == 0
    err = capsys.readouterr().err
    assert "torn" in err and "Traceback" not in err
    trials = optuna.load_study(study_name="torn", storage=open_storage(str(storage))).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3 and [t.values for t in trials[:2]] == before
