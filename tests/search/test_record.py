"""The trial record (search/record.py): every user attribute the code writes is named there, and code reads and
writes user attributes only through it.

The installed modules' source is scanned (ast) for the ways around it: ``set_user_attr`` /
``set_trial_user_attr`` / ``set_study_user_attr`` calls, ``enqueue_trial(..., user_attrs={...})``, and
reads of ``.user_attrs`` (or of a plain record's ``["user_attrs"]``) by a key: subscripts, ``.get``, ``.pop``,
``.setdefault`` and a literal key's ``in``. Each offender is listed as ``file:line`` with the key.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

import indexnas
from indexnas.search import record
from indexnas.search.record import StudyRecord, TrialRecord

PACKAGES = ("indexnas", "indexnas.zoo", "indexnas.surgery", "indexnas.search", "indexnas.tasks",
            "indexnas.tasks.data", "indexnas.reports")
WRITERS = {"set_user_attr": 0, "set_trial_user_attr": 1, "set_study_user_attr": 1}  # method -> its key's position
READERS = ("get", "pop", "setdefault")
RECORD = Path(record.__file__).resolve()


def installed_sources() -> dict[Path, ast.Module]:
    """Every module of the installed namespace but search/record.py, parsed."""
    import importlib

    paths = {p.resolve() for name in PACKAGES for p in Path(importlib.import_module(name).__path__[0]).glob("*.py")}
    return {path: ast.parse(path.read_text(), str(path)) for path in sorted(paths - {RECORD})}


def _literal(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _is_user_attrs(node: ast.AST) -> bool:
    """``x.user_attrs`` or ``x["user_attrs"]`` (a plain trial record)."""
    return ((isinstance(node, ast.Attribute) and node.attr == "user_attrs")
            or (isinstance(node, ast.Subscript) and _literal(node.slice) == "user_attrs"))


def written_keys(tree: ast.Module) -> Iterator[tuple[int, ast.expr | None]]:
    """(line, key expression: None for a ``**`` entry) of every direct user-attribute write."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        position = WRITERS.get(node.func.attr)
        if position is not None and len(node.args) > position:
            yield node.lineno, node.args[position]
        if node.func.attr == "enqueue_trial":
            for keyword in node.keywords:
                if keyword.arg == "user_attrs" and isinstance(keyword.value, ast.Dict):
                    yield from ((node.lineno, key) for key in keyword.value.keys)
                elif keyword.arg == "user_attrs":
                    yield node.lineno, keyword.value


def read_keys(tree: ast.Module) -> Iterator[tuple[int, ast.expr]]:
    """(line, key expression) of every read of user attributes by a key (``in``: a literal key)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and _is_user_attrs(node.value):
            yield node.lineno, node.slice
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in READERS
              and _is_user_attrs(node.func.value) and node.args):
            yield node.lineno, node.args[0]
        elif (isinstance(node, ast.Compare) and _literal(node.left) and len(node.ops) == 1
              and isinstance(node.ops[0], (ast.In, ast.NotIn)) and _is_user_attrs(node.comparators[0])):
            yield node.lineno, node.left


def _text(key: ast.expr | None) -> str:
    return "**" if key is None else repr(_literal(key)) if _literal(key) else ast.unparse(key)


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(Path(indexnas.__path__[0]).resolve().parent)}:{line}"


def test_every_written_key_is_named():
    """A literal key written anywhere in the installed code is one search/record.py names."""
    named = {*record.TRIAL, *record.STUDY}
    offenders = [f"{_where(path, line)} writes {_text(key)}" for path, tree in installed_sources().items()
                 for line, key in written_keys(tree) if _literal(key) and _literal(key) not in named]
    assert not offenders, "user attributes search/record.py does not name:\n" + "\n".join(offenders)


def test_user_attributes_go_through_the_record():
    """No module but search/record.py writes user attributes or reads them by their key. Until the lead moves
    search/study.py, search/storage.py and search/workers.py onto search.record, they are listed here."""
    offenders = []
    for path, tree in installed_sources().items():
        offenders += [f"{_where(path, line)} writes {_text(key)} directly (use record.write, record.write_study or "
                      f"record.enqueue)" for line, key in written_keys(tree)]
        offenders += [f"{_where(path, line)} reads {_text(key)} by its key (use TrialRecord / StudyRecord)"
                      for line, key in read_keys(tree)]
    assert not offenders, "user attributes read or written around search/record.py:\n" + "\n".join(sorted(offenders))


def test_the_scan_sees_every_kind_of_access():
    """The scanners catch what they are meant to (else the two tests above would pass vacuously)."""
    tree = ast.parse("t.set_user_attr('a', 1)\ns.set_trial_user_attr(i, 'b', 2)\n"
                     "s.enqueue_trial(p, user_attrs={'c': 3})\n"
                     "t.user_attrs['d']\nt.user_attrs.get('e')\n'f' in t.user_attrs\nr['user_attrs'].get('g')\n")
    assert [_text(key) for _, key in written_keys(tree)] == ["'a'", "'b'", "'c'"]
    assert sorted(_text(key) for _, key in read_keys(tree)) == ["'d'", "'e'", "'f'", "'g'"]


def test_write_and_read_a_trial_record():
    study = optuna.create_study()
    trial = study.ask()
    record.write(trial, record.METRICS, {"psnr": 24.0})
    stored = TrialRecord.of(trial)
    assert stored[record.METRICS] == {"psnr": 24.0} and trial.user_attrs == {"metrics": {"psnr": 24.0}}
    assert record.METRICS in stored and record.SEED not in stored and stored.get(record.SEED, 7) == 7
    assert stored.with_value(record.SEED, 3) == {"metrics": {"psnr": 24.0}, "seed": 3}
    with pytest.raises(KeyError, match="not a trial attribute"):
        record.write(trial, record.Attribute("unnamed", "", record.TRIAL_SCOPE), 1)
    with pytest.raises(KeyError, match="not a trial attribute"):
        record.write(trial, record.SETTINGS, {})  # a study's attribute
    with pytest.raises(KeyError, match="not a study attribute"):
        StudyRecord.of(study).get(record.METRICS)


def test_study_record_and_retraining_records():
    study = optuna.create_study()
    record.write_study(study, record.SETTINGS, {"primary_metric": "psnr"})
    record.write_study(study, record.retraining(3), {"seeds": [1]})
    stored = StudyRecord.of(study)
    assert stored[record.SETTINGS] == {"primary_metric": "psnr"} and stored.get(record.retraining(3)) == {"seeds": [1]}
    assert study.user_attrs["indexnas:retrain:3"] == {"seeds": [1]}  # the stored form stays as it was
    assert record.retrainings(study.user_attrs) == {3: {"seeds": [1]}}
    record.enqueue(study, {"x": 1.0}, {record.UNIFORM: "host"})
    record.enqueue(study, {"x": 1.0}, {record.UNIFORM: "host"})  # once
    assert [t.user_attrs for t in study.trials] == [{"uniform": "host"}]
