"""Create or resume a study: its stored settings (a resumed study must agree with them), its objectives and
study attributes, and the paper's grid enqueued first.

What is searched on is a `search.problem.Problem`: a built-in task (the CLI) or a user's model with their own
train/evaluate callables (`indexnas.search`); search/run.py runs both through this one study.
"""

from __future__ import annotations

import datetime as dt
import logging
import warnings
from typing import Any

import optuna

from indexnas.errors import UserError
from indexnas.spec import IndexSpec, paper_variants
from indexnas.version import __version__
from indexnas.search import objectives, pair_space, record
from indexnas.search.context import SearchContext
from indexnas.search.locks import study_lock
from indexnas.search.problem import Problem
from indexnas.search.samplers import make_sampler
from indexnas.search.settings import SearchSettings
from indexnas.search.storage import open_storage
from indexnas.search.storage_urls import mask_url

log = logging.getLogger("indexnas.search")


def settings_storage(settings: SearchSettings) -> optuna.storages.BaseStorage:
    """The study's storage with the settings' heartbeat interval and grace period."""
    return open_storage(settings.storage, settings.heartbeat_interval, settings.grace_period)


def open_study(storage: optuna.storages.BaseStorage, settings: SearchSettings, context: SearchContext) -> optuna.Study:
    """Create the study with its settings, or resume it after checking the settings agree.

    Under the study lock, so that workers starting together create it and enqueue its grid once.
    """
    with study_lock(storage, settings.study):
        if _stored_settings(storage, settings.study) is not None:
            check_resumable(storage, settings)
            return optuna.load_study(study_name=settings.study, storage=storage,
                                     sampler=make_sampler(settings, space=context.space))
        metrics = context.problem.directions
        study = optuna.create_study(storage=storage, study_name=settings.study,
                                    directions=objectives.directions(objectives.parse(settings.objectives), metrics),
                                    sampler=make_sampler(settings, space=context.space), load_if_exists=True)
        with warnings.catch_warnings():  # experimental in Optuna: names the objectives in optuna-dashboard
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(objective_names(context.problem, settings))
        record.write_study(study, record.SETTINGS, study_attrs(settings, context))
        if settings.paper_grid and settings.strategy == "trials":  # oneshot queues the supernet's front instead
            enqueue_paper_grid(study, context)
        return study


def _stored_settings(storage: optuna.storages.BaseStorage, name: str) -> dict[str, Any] | None:
    """The settings an existing study was created with (None when there is no such study yet)."""
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return None
    return storage.get_study_user_attrs(study_id).get(record.SETTINGS.key, {}).get("settings")


def check_resumable(storage: optuna.storages.BaseStorage, settings: SearchSettings) -> None:
    """Refuse to resume a study that was run with other settings (it would mix their results)."""
    saved = _stored_settings(storage, settings.study)
    if saved is None:
        return
    stored = SearchSettings.stored_identity(saved)
    differences = {k: (stored[k], v) for k, v in settings.identity().items() if stored[k] != v}
    if differences:
        listed = "; ".join(f"{k}: stored {a!r}, now {b!r}" for k, (a, b) in differences.items())
        raise UserError(f"study {settings.study!r} in {mask_url(settings.storage)} was run with other settings ({listed})",
                        "resume it with the same settings, or pass a new --study name")


def objective_names(problem: Problem, settings: SearchSettings) -> list[str]:
    """The study's objectives in value order (search.objectives): the searched metrics, then by default
    parameters added; GFLOPs too when asked for."""
    return objectives.stored_names(objectives.parse(settings.objectives), problem.directions)


def study_attrs(settings: SearchSettings, context: SearchContext) -> dict[str, Any]:
    """The study-level user attribute `record.SETTINGS`: the settings (the URL masked), pairs, host figures, versions."""
    metric, direction = next(iter(context.problem.directions.items()))
    return {
        "settings": {**settings.to_dict(), "storage": mask_url(settings.storage)},
        "task": settings.task, "model": settings.model, "mode": settings.mode, "budget_steps": settings.budget_steps,
        "primary_metric": metric, "direction": direction, "directions": context.problem.directions,
        "objectives": objective_names(context.problem, settings), "source": context.problem.source,
        "pairs": context.pairs, "host": context.host_summary,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "indexnas_version": __version__, "seed": settings.seed,
    }


def enqueue_paper_grid(study: optuna.Study, context: SearchContext) -> list[str]:
    """Enqueue the untouched host and each of the paper's 15 uniform configurations the pairs allow."""
    enqueued = []
    for label, choice in [("host", IndexSpec("keep")), *((str(s), s) for s in paper_variants())]:
        params = pair_space.params_for(pair_space.uniform(context.spaces, choice), context.spaces)
        if params is None:
            log.info("paper configuration %s is not allowed at every pair; not enqueued", label)
            continue
        record.enqueue(study, params, {record.UNIFORM: label})
        enqueued.append(label)
    return enqueued
