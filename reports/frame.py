"""A study as a pandas DataFrame: one row per trial, the Pareto-optimal rows marked.

Columns: ``number``, ``state``, ``uniform``, one ``choice:<pair>`` per down/up pair, one ``metric:<name>``
per task metric (the primary metric first), then ``params_added``, ``params_total``, ``gflops``,
``gflops_added``, ``latency_ms``, ``train_seconds``, ``steps``, ``train_steps`` (what the trial itself trained:
0 for a repeat or an over-budget trial, the rung step for one pruned there), ``device``, ``worker``, ``failure_kind``,
``failure_message``, ``checkpoint``, ``datetime_start``, ``datetime_complete``, ``seed_mean``, ``seed_sd`` and
``seed_n`` (the primary metric over training seeds where the trial was retrained, search.retrain; NaN and 1
otherwise) and ``pareto``.
``uniform`` is in canonical IndexSpec form ("host" for the untouched host, None for mixed trials).
``frame.attrs`` carries what the figures need: ``primary_metric``, ``metric_direction``, ``host_metric``,
``pairs`` (names in the study's order) and ``study_name``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from indexnas.errors import UserError
from indexnas.spec import IndexSpec
from indexnas.reports.pareto import pareto_mask
from indexnas.reports.source import Results
from indexnas.search import record
from indexnas.search.record import TrialRecord

COST_ATTRIBUTES = (*record.COSTS, record.LATENCY_MS, record.TRAIN_SECONDS, record.STEPS, record.TRAIN_STEPS)
COST_COLUMNS = tuple(attribute.key for attribute in COST_ATTRIBUTES)  # each column named as its attribute
RUN_COLUMNS = ("device", "worker", "failure_kind", "failure_message", "checkpoint",
               "datetime_start", "datetime_complete")
SPREAD_COLUMNS = ("seed_mean", "seed_sd", "seed_n")
CHOICE_PREFIX, METRIC_PREFIX = "choice:", "metric:"
HOST = "host"  # the "uniform" mark of the untouched host's trial


def primary_metric(results: Results) -> tuple[str, str]:
    """(name, direction) of the metric the study optimised, from its settings or its first objective."""
    settings = results.settings
    name = settings.get("primary_metric")
    if name is None:
        objectives = settings.get("objectives") or []
        name = objectives[0] if objectives else None
    if name is None:
        raise UserError(
            f"study {results.study_name!r} names no primary metric (user_attrs['indexnas']['primary_metric'])",
            "report on a study created by `indexnas search`",
        )
    direction = settings.get("direction") or (results.directions[0] if results.directions else "maximize")
    return str(name), str(direction)


def _pair_names(results: Results) -> list[str]:
    """Pair names in the study's order, then any that only trials mention (in first-seen order)."""
    names = [pair["name"] for pair in results.settings.get("pairs", [])]
    for trial in results.trials:
        names += [n for n in TrialRecord(trial["user_attrs"]).get(record.CHOICES, {}) if n not in names]
    return names


def _metric_names(results: Results, primary: str) -> list[str]:
    names = [primary]
    for trial in results.trials:
        names += [n for n in TrialRecord(trial["user_attrs"]).get(record.METRICS, {}) if n not in names]
    return names


def _row(trial: dict[str, Any], pairs: list[str], metrics: list[str]) -> dict[str, Any]:
    attrs = TrialRecord(trial["user_attrs"])
    failure = attrs.get(record.FAILURE) or rung_failure(attrs)
    row: dict[str, Any] = {
        "number": trial["number"], "state": trial["state"], "uniform": uniform_label(attrs.get(record.UNIFORM))
    }
    choices = attrs.get(record.CHOICES, {})
    row.update({CHOICE_PREFIX + p: choices.get(p) for p in pairs})
    measured = attrs.get(record.METRICS, {})
    row.update({METRIC_PREFIX + m: measured.get(m, np.nan) for m in metrics})
    row.update({a.key: attrs.get(a, np.nan) for a in COST_ATTRIBUTES})
    row.update(device=attrs.get(record.DEVICE), worker=attrs.get(record.WORKER),
               checkpoint=attrs.get(record.CHECKPOINT))
    row["failure_kind"], row["failure_message"] = failure.get("kind"), failure.get("message")
    row["datetime_start"], row["datetime_complete"] = trial.get("datetime_start"), trial.get("datetime_complete")
    spread = attrs.get(record.RETRAIN) or {}
    row.update(seed_mean=spread.get("mean", np.nan), seed_sd=spread.get("sd", np.nan), seed_n=spread.get("n", 1))
    return row


def rung_failure(attrs: TrialRecord) -> dict[str, str]:
    """A trial pruned at a rung (search.halving) as the failures table shows it: where, and its rung scores."""
    if record.PRUNED_AT not in attrs:
        return {}
    scores = "; ".join(f"step {step}: " + ", ".join(f"{k} {v:.4g}" for k, v in values.items())
                       for step, values in attrs.get(record.RUNG_SCORES, {}).items())
    return {"kind": "pruned_at_rung", "message": f"stopped after step {attrs[record.PRUNED_AT]}, not in the best of "
            f"its rung ({scores})"}


def trials_frame(results: Results) -> pd.DataFrame:
    """One row per trial (in trial-number order) with choices, metrics, costs and the ``pareto`` mark.

    Pareto optimality is over the study's own objective values and directions, among complete trials.
    """
    metric, direction = primary_metric(results)
    pairs = _pair_names(results)
    metrics = _metric_names(results, metric)
    rows = [_row(t, pairs, metrics) for t in sorted(results.trials, key=lambda t: t["number"])]
    columns = ["number", "state", "uniform", *(CHOICE_PREFIX + p for p in pairs), *(METRIC_PREFIX + m for m in metrics)]
    frame = pd.DataFrame(rows, columns=[*columns, *COST_COLUMNS, *RUN_COLUMNS, *SPREAD_COLUMNS])
    for column in (*(METRIC_PREFIX + m for m in metrics), *COST_COLUMNS, *SPREAD_COLUMNS):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame["pareto"] = _pareto_column(results, rows)
    frame.attrs.update(
        study_name=results.study_name,
        primary_metric=metric,
        metric_direction=direction,
        host_metric=_host_metric(frame, results, metric),
        pairs=pairs,
    )
    return frame


def _host_metric(frame: pd.DataFrame, results: Results, metric: str) -> float | None:
    """The untouched host's metric: its trial's (uniform "host"), else the warm start's in the settings."""
    host = frame[(frame["uniform"] == HOST) & (frame["state"] == "COMPLETE")][METRIC_PREFIX + metric].dropna()
    if not host.empty:
        return float(host.iloc[0])
    value = results.settings.get("host", {}).get("metrics", {}).get(metric)
    return float(value) if value is not None else None


def _pareto_column(results: Results, rows: list[dict[str, Any]]) -> np.ndarray:
    by_number = {t["number"]: t for t in results.trials}
    complete = [r["number"] for r in rows if r["state"] == "COMPLETE" and by_number[r["number"]].get("values")]
    mask = np.zeros(len(rows), dtype=bool)
    if not complete:
        return mask
    values = [by_number[n]["values"] for n in complete]
    if any(len(v) != len(results.directions) for v in values):
        raise UserError(
            f"study {results.study_name!r}: trial values do not match its {len(results.directions)} directions",
            "report on a study written by one version of `indexnas search`",
        )
    optimal = dict(zip(complete, pareto_mask(values, results.directions)))
    for index, row in enumerate(rows):
        mask[index] = optimal.get(row["number"], False)
    return mask


def uniform_label(value: Any) -> str | None:
    """A trial's "uniform" mark in canonical IndexSpec form ("host" stays), None when it is not uniform."""
    if not isinstance(value, str) or not value:
        return None
    return value if value == HOST else str(IndexSpec.parse(value))


def choice_columns(frame: pd.DataFrame) -> list[str]:
    """The ``choice:<pair>`` columns, in the study's pair order."""
    return [c for c in frame.columns if c.startswith(CHOICE_PREFIX)]


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """The ``metric:<name>`` columns, primary metric first."""
    return [c for c in frame.columns if c.startswith(METRIC_PREFIX)]
