"""A study's results in the layout of the paper's Tables 5-7, exported as CSV, Markdown, LaTeX or HTML.

Rows: the host baseline (and any fixed-index baselines the study ran: max, hmi, avg), then the five
family blocks (HINs, Modelwise / Shared Stagewise / Unshared Stagewise O2O DINs, M2O DINs), each with its
L, NL and NL+C configuration, then the best mixed (per-pair) Pareto-optimal trials. A configuration the
study ran several times shows its best complete trial; one it never completed shows why.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from indexnas.errors import UserError
from indexnas.spec import BASELINE_FAMILIES, IndexSpec, paper_variants
from indexnas.tables import Cell, Grid, render_grid
from indexnas.paper import FAMILY_BLOCKS, PAPER_TABLES, DeltaStyle, format_delta, format_params
from indexnas.reports.frame import HOST, METRIC_PREFIX, choice_columns, metric_columns

BASELINES, MIXED = "Baselines", "Best mixed Pareto trials"
FORMATS = ("csv", "markdown", "latex", "html")
CellFormatter = Callable[[int, str | None], str]  # (Delta params, configuration) -> printed cell


def paper_delta_formatter(model: str | None, width: float | None = None) -> CellFormatter:
    """Delta params as `indexnas table` prints them (indexnas.paper.format_delta). On a full-width host
    the paper reports, a uniform configuration's Delta takes the precision and sign of its cell there."""
    full_width = width is None or width == 1.0
    paper = PAPER_TABLES.get(model) if isinstance(model, str) and full_width else None

    def formatted(n: int, configuration: str | None) -> str:
        cell = paper.rows.get(configuration) if paper is not None and configuration else None
        return format_delta(n, DeltaStyle.of(cell[0]) if cell else None)

    return formatted


def format_metric(value: float) -> str:
    """2 decimals at 1 and above (PSNR 31.13, mIoU 33.25), else 4 (SSIM 0.9357, RMSE 0.5670)."""
    if value is None or not np.isfinite(value):
        return "–"
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.4f}"


def _best(trials: pd.DataFrame, metric: str, direction: str) -> pd.Series | None:
    """The complete trial with the best primary metric, or None."""
    complete = trials[(trials["state"] == "COMPLETE") & np.isfinite(trials[metric].astype(float))]
    if complete.empty:
        return None
    index = complete[metric].idxmax() if direction == "maximize" else complete[metric].idxmin()
    return complete.loc[index]


def _status(trials: pd.DataFrame) -> str:
    """Why a configuration has no result: not run, still running, or its failure."""
    if trials.empty:
        return "not run"
    failed = trials.dropna(subset=["failure_kind"])
    if not failed.empty:
        last = failed.iloc[-1]
        return f"{last['state'].lower()}: {last['failure_kind']}"
    return ", ".join(sorted(trials["state"].str.lower().unique()))


def _row(block: str, configuration: str, spec: IndexSpec | None, trials: pd.DataFrame, frame: pd.DataFrame,
         delta: CellFormatter, baseline: bool = False) -> dict[str, Any]:
    metric, direction = METRIC_PREFIX + frame.attrs["primary_metric"], frame.attrs["metric_direction"]
    best = _best(trials, metric, direction)
    row: dict[str, Any] = {
        "block": block,
        "configuration": configuration,
        "NL": "✓" if spec is not None and spec.nonlinear else "",
        "C": "✓" if spec is not None and spec.context else "",
    }
    source = best if best is not None else (trials.iloc[-1] if not trials.empty else None)
    params_added = source["params_added"] if source is not None else np.nan
    params_total = source["params_total"] if source is not None else np.nan
    if baseline and np.isfinite(params_total):
        row["#Param / Δ"] = format_params(params_total)
    else:
        row["#Param / Δ"] = delta(int(params_added), configuration) if np.isfinite(params_added) else "–"
    row["GFLOPs"] = source["gflops"] if source is not None else np.nan
    for column in metric_columns(frame):
        row[column[len(METRIC_PREFIX) :]] = best[column] if best is not None else np.nan
    row["trial"] = int(best["number"]) if best is not None else None
    row["status"] = "" if best is not None else _status(trials)
    row["params_added"] = params_added
    row["params_total"] = params_total
    row["choices"] = _choices_text(best, frame) if block == MIXED else ""
    return row


def _choices_text(trial: pd.Series, frame: pd.DataFrame) -> str:
    """A mixed trial's choices in the study's pair order, e.g. 'm2o-nl | keep | o2o-shared'."""
    return " | ".join(str(trial[c]) for c in choice_columns(frame))


def _host_row(frame: pd.DataFrame, settings: dict[str, Any], delta: CellFormatter) -> dict[str, Any]:
    """The untouched host: its trial (uniform "host") if the study ran one, else the settings' figures."""
    name = f"{settings.get('model', 'host')} (host)"
    trials = frame[frame["uniform"] == HOST]
    row = _row(BASELINES, name, None, trials, frame, delta, baseline=True)
    if trials.empty and settings.get("host"):
        host = settings["host"]
        if "params" in host:
            row.update({"#Param / Δ": format_params(host["params"]), "params_total": host["params"], "params_added": 0})
        row["GFLOPs"] = host.get("gflops", np.nan)
        for metric, value in host.get("metrics", {}).items():
            if metric in row:
                row[metric] = value
        row["status"] = "warm-start host" if host.get("metrics") else row["status"]
    return row


def paper_table(
    frame: pd.DataFrame, settings: dict[str, Any], delta_formatter: Callable[[int], str] | None = None,
    mixed: int = 5,
) -> pd.DataFrame:
    """The study in the paper's table layout: one row per configuration, ``block`` naming its section.

    ``frame`` is a `reports.frame.trials_frame`; ``settings`` the study's settings; ``delta_formatter``
    prints Delta params (default: `paper_delta_formatter` of the study's model); ``mixed`` how many of the best
    non-uniform Pareto-optimal trials close the table (by the primary metric).
    """
    if mixed < 0:
        raise UserError(f"the number of mixed trials to show must be 0 or more, got {mixed}")
    if delta_formatter is None:
        delta = paper_delta_formatter(settings.get("model"), (settings.get("settings") or {}).get("width"))
    else:
        delta = lambda n, _configuration: delta_formatter(n)  # noqa: E731
    labels = frame["uniform"]
    rows = [_host_row(frame, settings, delta)]
    for family in BASELINE_FAMILIES:
        trials = frame[labels == family]
        if not trials.empty:
            rows.append(_row(BASELINES, family, IndexSpec(family), trials, frame, delta))
    for spec in paper_variants():
        rows.append(_row(FAMILY_BLOCKS[spec.family], str(spec), spec, frame[labels == str(spec)], frame, delta))
    metric = METRIC_PREFIX + frame.attrs["primary_metric"]
    pareto_mixed = frame[frame["pareto"] & labels.isna()]
    ascending = frame.attrs["metric_direction"] != "maximize"
    for _, trial in pareto_mixed.sort_values(metric, ascending=ascending).head(mixed).iterrows():
        rows.append(_row(MIXED, f"trial {trial['number']}", None, frame.loc[[trial.name]], frame, delta))
    table = pd.DataFrame(rows)
    table["trial"] = table["trial"].astype("Int64")
    table.attrs.update(
        primary_metric=frame.attrs["primary_metric"],
        metric_direction=frame.attrs["metric_direction"],
        metrics=[c[len(METRIC_PREFIX) :] for c in metric_columns(frame)],
    )
    return table


# ---------------------------------------------------------------------------------------------------
# Rendering: one display grid (block titles + formatted cells, best metric marked), written by indexnas.tables
# ---------------------------------------------------------------------------------------------------

DISPLAY_LEAD = ("configuration", "NL", "C", "#Param / Δ", "GFLOPs")
DISPLAY_TAIL = ("trial", "status", "choices")


def _grid(table: pd.DataFrame) -> Grid:
    """The display grid: formatted cells, the best primary metric in bold, a title row opening each block."""
    metrics = table.attrs["metrics"]
    tail = [c for c in DISPLAY_TAIL if c != "choices" or table["choices"].astype(bool).any()]
    grid = Grid([*DISPLAY_LEAD, *metrics, *tail])
    primary = table.attrs["primary_metric"]
    candidates = table[table["block"] != BASELINES][primary].astype(float)
    best_value = None
    if np.isfinite(candidates).any():
        best_value = candidates.max() if table.attrs["metric_direction"] == "maximize" else candidates.min()
    block = None
    for _, row in table.iterrows():
        if row["block"] != block:
            block = row["block"]
            if block != BASELINES:
                grid.rows.append(block)
        cells = []
        for column in grid.headers:
            value = row[column]
            if column == "GFLOPs":
                text = f"{value:.2f}" if np.isfinite(value) else "–"
            elif column in metrics:
                text = format_metric(float(value))
            elif column == "trial":
                text = "" if pd.isna(value) else str(value)
            else:
                text = str(value)
            bold = column == primary and best_value is not None and row["block"] != BASELINES and value == best_value
            cells.append(Cell(text, bold))
        grid.rows.append(cells)
    return grid


def render_table(table: pd.DataFrame, fmt: str) -> str:
    """The paper-layout table as CSV (every column, raw numbers), Markdown, LaTeX or an HTML fragment."""
    if fmt == "csv":
        return table.to_csv(index=False)
    return render_grid(_grid(table), fmt, FORMATS) + "\n"
