"""Retrain the final Pareto front with more seeds (`--retrain-seeds K`): how much of a gap is the training seed's.

One trial's score carries 0.15-0.8 dB of training-seed noise (and more when a run collapses), as large as
most gaps on the front. After the study's trials are done, each trial on the final front (the host too)
is fine-tuned K more times from the warm host, exactly as its trial was, with seeds no trial uses
(`retrain_seed`). The record holds the seeds, every metric per seed, and the mean, sd and count of the
primary metric with the trial's own run counted (n = K + 1 when every run succeeds).

Stored as the study user attribute ``indexnas:retrain:<trial number>``: Optuna refuses user attributes on
finished trials. A repeat answered from the study cache stands for its original (`front_trials`), and
`attach` gives each trial its record, a repeat its original's. Each seed is stored as soon as it
is trained, so an interrupted retraining resumes where it stopped and a rerun trains nothing stored.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
import optuna
from optuna.trial import FrozenTrial

from indexnas.errors import describe
from indexnas.search.problem import Problem
from indexnas.search.record import (CHOICES, DUPLICATE_OF, METRICS, RETRAIN, SEED, STEPS, TRAIN_SECONDS, TRAIN_STEPS,
                                    StudyRecord, TrialRecord, retraining, retrainings, write_study)
from indexnas.search.settings import SearchSettings
from indexnas.search.locks import StudyLock, study_lock
from indexnas.search.optuna_private import storage_of


class Retrainable(Protocol):
    """What retraining needs of a search (search.context.SearchContext): its settings, its problem's metrics,
    and a configuration fine-tuned from the warm host as a trial is."""

    settings: SearchSettings

    @property
    def problem(self) -> Problem: ...

    def train_configuration(self, choices: dict[str, str], seed: int,
                            label: str) -> tuple[dict[str, Any], float, dict[str, float]]: ...


log = logging.getLogger("indexnas.search")
SEED_STRIDE = 1_000_000  # retrain seeds sit this far above the trial seeds (distinct below a million trials)


def retrain_seed(base: int, number: int, k: int) -> int:
    """Seed of the ``k``-th retraining (k >= 1) of trial ``number``: distinct from every trial's seed
    (``base + 1 + number``, search.scoring.trial_seed) and from every other retraining's."""
    return base + 1 + k * SEED_STRIDE + number


def front_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The trained trials behind the study's Pareto front: a repeat from the cache stands for its original."""
    numbers = sorted({TrialRecord.of(t).get(DUPLICATE_OF, t.number) for t in study.best_trials})
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    return [trials[n] for n in numbers]


def attach(study_attrs: Mapping[str, Any], trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``trials`` (plain records: number, state, user_attrs) with each retrained one's record added as the user
    attribute ``retrain``; a repeat from the cache gets its original's."""
    stored = retrainings(study_attrs)
    attached = []
    for trial in trials:
        attrs = TrialRecord(trial["user_attrs"])
        record = stored.get(attrs.get(DUPLICATE_OF, trial["number"]))
        attached.append(trial if record is None else {**trial, "user_attrs": attrs.with_value(RETRAIN, record)})
    return attached


def summarize(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with mean, sd (NaN below two runs) and n of its primary metric over its successful runs."""
    values = [m[record["metric"]] for m in record["metrics"] if m is not None and math.isfinite(m[record["metric"]])]
    mean = float(np.mean(values)) if values else math.nan
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
    return {**record, "mean": mean, "sd": sd, "n": len(values)}


def own_run(trial: FrozenTrial, metric: str) -> dict[str, Any]:
    """A record holding only the study's own run of ``trial``."""
    attrs = TrialRecord.of(trial)
    return summarize({"metric": metric, "seeds": [attrs[SEED]], "metrics": [attrs[METRICS]],
                      "failures": {}, "train_seconds": [attrs.get(TRAIN_SECONDS, 0.0)],
                      "train_steps": [attrs.get(TRAIN_STEPS, attrs.get(STEPS))]})


def retrain_front(study: optuna.Study, context: Retrainable, lock: StudyLock | None = None) -> None:
    """Retrain each trial of the final front ``retrain_seeds`` more times, storing each seed as it finishes.

    Under the study lock: one process retrains, and one that comes later (another machine's
    `indexnas search` on the shared storage) finds the seeds stored and trains nothing."""
    extra = context.settings.retrain_seeds
    if extra == 0:
        return
    with lock or study_lock(storage_of(study), study.study_name):
        front = front_trials(study)
        missing = sum(_missing(study, t, context, extra) != [] for t in front)
        if missing:
            log.info("retraining %d of the %d Pareto-optimal trials with %d more seed(s) each", missing, len(front), extra)
        for trial in front:
            for seed in _missing(study, trial, context, extra):
                _retrain(study, trial, seed, context)


def _missing(study: optuna.Study, trial: FrozenTrial, context: Retrainable, extra: int) -> list[int]:
    done = StudyRecord.of(study).get(retraining(trial.number), {}).get("seeds", [])
    wanted = [retrain_seed(context.settings.seed, trial.number, k) for k in range(1, extra + 1)]
    return [seed for seed in wanted if seed not in done]


def _retrain(study: optuna.Study, trial: FrozenTrial, seed: int, context: Retrainable) -> None:
    """Fine-tune ``trial``'s configuration from the warm host with ``seed`` and add the run to its record."""
    metric = next(iter(context.problem.directions))
    attribute = retraining(trial.number)
    record = StudyRecord.of(study).get(attribute) or own_run(trial, metric)
    metrics, failure, seconds, facts = None, None, 0.0, {}
    try:
        facts, seconds, metrics = context.train_configuration(TrialRecord.of(trial)[CHOICES], seed,
                                                              f"trial {trial.number} seed {seed}")
    except Exception as error:  # a collapsed or failed run is a result of that seed: recorded, not retried
        failure = describe(error)
        log.warning("trial %d retrained with seed %d failed: %s", trial.number, seed, failure.splitlines()[0])
    record = summarize({**record, "seeds": [*record["seeds"], seed], "metrics": [*record["metrics"], metrics],
                        "failures": {**record["failures"], **({str(seed): failure[:500]} if failure else {})},
                        "train_seconds": [*record["train_seconds"], seconds],
                        "train_steps": [*record["train_steps"], facts.get("steps", context.settings.budget_steps)]})
    write_study(study, attribute, record)
    if metrics is not None:
        log.info("trial %d retrained with seed %d: %s %.4g; %s %.4g +- %.2g (n=%d)", trial.number, seed, metric,
                 metrics[metric], metric, record["mean"], record["sd"], record["n"])
