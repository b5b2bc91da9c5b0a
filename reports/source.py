"""Where a report's data comes from: an Optuna study (storage URL + name) or a results file.

Both give the same `Results`: the study's settings (``user_attrs["indexnas"]``) and one raw record per
trial (number, state, values, user_attrs, times), so every later step has one input to read. Opening is
read-only: a storage that does not exist is refused instead of being created empty, and a URL is never
echoed with its password (``user:pass@`` prints as ``user:***@``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from indexnas.atomic import atomic_write_bytes
from indexnas.errors import UserError
from indexnas.search.record import SETTINGS, StudyRecord
from indexnas.search.storage import open_storage
from indexnas.search.storage_urls import locate_storage, mask_url

RESULTS_FORMAT = "indexnas-results/1"  # the "format" field of a results file


@dataclass
class Results:
    """A study's settings and its raw trial records, as read from storage or from a results file."""

    study_name: str
    settings: dict[str, Any]  # study.user_attrs["indexnas"] (see the schema)
    directions: list[str]  # "maximize" / "minimize" per objective, in the order of trial values
    trials: list[dict[str, Any]] = field(default_factory=list)
    source: str = ""  # where it was read from, password masked

    def to_json(self) -> dict[str, Any]:
        """The results-file form (see `save_results`)."""
        return {
            "format": RESULTS_FORMAT,
            "study_name": self.study_name,
            "settings": self.settings,
            "directions": self.directions,
            "trials": self.trials,
        }


def open_storage_readonly(url: str) -> optuna.storages.BaseStorage:
    """Open an existing study storage (`indexnas.search.storage.open_storage`), refusing to create a new one."""
    local = locate_storage(url).local_file
    if local is not None and not local.is_file():
        raise UserError(
            f"no study storage at {mask_url(url)!r} (file {local} does not exist)",
            "pass the --storage the search used: a journal .log file, journal:///abs/path.log, or an RDB URL",
        )
    return open_storage(url)


def load_study(storage_url: str, study_name: str) -> Results:
    """Read a study's settings and trials; an unknown study name lists the ones the storage holds."""
    try:
        storage = open_storage_readonly(storage_url)
        names = optuna.get_all_study_names(storage)
    except UserError:
        raise
    except Exception as error:  # a file that is not an Optuna journal, a database without Optuna's tables
        raise UserError(
            f"{mask_url(storage_url)!r} is not a readable Optuna storage ({type(error).__name__})",
            "pass the --storage the search used",
        ) from None
    if study_name not in names:
        available = ", ".join(sorted(names)) or "none"
        raise UserError(
            f"no study named {study_name!r} in {mask_url(storage_url)!r} (studies there: {available})",
            "pass one of the names listed, or the --storage the search used",
        )
    results = results_from_study(optuna.load_study(study_name=study_name, storage=storage))
    results.source = f"{mask_url(storage_url)}, study {study_name!r}"
    return results


def results_from_study(study: optuna.Study) -> Results:
    """An open study (e.g. the one `indexnas search` just ran) as `Results`; a trial whose configuration was
    retrained with more seeds (search.retrain, stored on the study) carries that record as ``retrain``."""
    from indexnas.search.retrain import attach

    directions = [d.name.lower() for d in study.directions]
    trials = attach(study.user_attrs, [trial_record(t) for t in study.get_trials(deepcopy=False)])
    settings = dict(StudyRecord.of(study).get(SETTINGS, {}))
    return Results(study.study_name, settings, directions, trials, source=f"study {study.study_name!r}")


def trial_record(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """One trial as plain JSON data: number, state, values, user_attrs, start and end times."""

    def stamp(moment) -> str | None:
        return moment.isoformat() if moment is not None else None

    return {
        "number": trial.number,
        "state": trial.state.name,
        "values": list(trial.values) if trial.values is not None else None,
        "user_attrs": dict(trial.user_attrs),
        "datetime_start": stamp(trial.datetime_start),
        "datetime_complete": stamp(trial.datetime_complete),
    }


def save_results(results: Results, path: str | Path) -> None:
    """Write the results file (JSON) that `load_results` reads back (atomically)."""
    atomic_write_bytes(json.dumps(results.to_json(), indent=1, default=str).encode(), path)


def load_results(path: str | Path) -> Results:
    """Read a results file written by `save_results` (or by `indexnas report`: results.json)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no results file at {path}", "pass the results.json an earlier `indexnas report` wrote")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path} is not a JSON results file ({error})",
                        "pass a results.json written by indexnas") from None
    if not isinstance(data, dict) or data.get("format") != RESULTS_FORMAT:
        raise UserError(
            f"{path} is not an indexnas results file (its 'format' is not {RESULTS_FORMAT!r})",
            "pass a results.json written by `indexnas report`",
        )
    try:
        return Results(data["study_name"], data["settings"], data["directions"], data["trials"], source=str(path))
    except KeyError as missing:
        raise UserError(f"results file {path} lacks the field {missing}",
                        "regenerate it with `indexnas report`") from None
