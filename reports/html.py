"""The report as one self-contained HTML page: inline CSS, figures as base64 PNG data URIs, no script,
no network. Sections: summary, the paper-layout table, figures, Pareto-optimal
trials, failed/pruned trials with their reasons, the study's settings and pairs, and every trial.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
from typing import Any

import pandas as pd

from indexnas import __version__
from indexnas.reports.frame import CHOICE_PREFIX, METRIC_PREFIX, choice_columns, metric_columns
from indexnas.reports.plots import EncodedFigure
from indexnas.reports.source import Results
from indexnas.reports.table import render_table

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1200px;
       color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 1.8em; }
.meta { color: #555; font-size: 0.9em; }
table { border-collapse: collapse; font-size: 0.82em; margin: 0.6em 0; }
th, td { border: 1px solid #ddd; padding: 2px 7px; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
tr.block td { text-align: center; font-weight: 600; background: #fafafa; }
table.kv td { text-align: left; white-space: normal; } table.kv td:first-child { font-weight: 600; }
td.wrap { white-space: normal; text-align: left; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.4em 0.8em; }
.scroll { overflow-x: auto; }
.failures td:last-child { white-space: normal; text-align: left; min-width: 24em; }
.wrap td { white-space: normal; text-align: left; max-width: 28em; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _kv_table(items: dict[str, Any]) -> str:
    rows = []
    for key, value in items.items():
        text = json.dumps(value, default=str) if isinstance(value, (dict, list)) else str(value)
        rows.append(f"<tr><td>{_e(key)}</td><td>{_e(text)}</td></tr>")
    return '<table class="kv">' + "".join(rows) + "</table>"


def _frame_table(frame: pd.DataFrame) -> str:
    shown = frame.rename(columns=lambda c: c.removeprefix(CHOICE_PREFIX).removeprefix(METRIC_PREFIX))
    return '<div class="scroll">' + shown.to_html(index=False, na_rep="–", float_format=lambda v: f"{v:.4g}",
                                                  border=0) + "</div>"


def _figure(figure: EncodedFigure, caption: str) -> str:
    data = base64.b64encode(figure.png).decode("ascii")
    return (f'<figure id="fig-{_e(figure.name)}"><img alt="{_e(figure.title)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _counts(frame: pd.DataFrame) -> str:
    counts = frame["state"].value_counts()
    return ", ".join(f"{n} {state.lower()}" for state, n in counts.items()) or "no trials"


def _headline(frame: pd.DataFrame) -> str:
    """One sentence: the best trial by the primary metric, against the host."""
    metric, direction = frame.attrs["primary_metric"], frame.attrs["metric_direction"]
    complete = frame[(frame["state"] == "COMPLETE") & frame[METRIC_PREFIX + metric].notna()]
    if complete.empty:
        return "No complete trial yet."
    scores = complete[METRIC_PREFIX + metric]
    best = complete.loc[scores.idxmax() if direction == "maximize" else scores.idxmin()]
    what = best["uniform"]
    if not isinstance(what, str):
        what = " | ".join(str(best[c]) for c in choice_columns(frame))
    host = frame.attrs.get("host_metric")
    versus = f"; the host scores {host:.4g}" if host is not None else ""
    return (f"Best {metric}: {best[METRIC_PREFIX + metric]:.4g} (trial {best['number']}: {what}, "
            f"{int(best['params_added']):+,} parameters, {best['gflops']:.3g} GFLOPs){versus}. "
            f"{int(frame['pareto'].sum())} trials are Pareto-optimal.")


def _settings_section(results: Results) -> str:
    settings = dict(results.settings)
    pairs = settings.pop("pairs", [])
    search_settings = settings.pop("settings", None)
    host = settings.pop("host", None)
    parts = ["<h2>Settings</h2>", _kv_table(settings)]
    if host:
        parts += ["<h3>Host (warm start)</h3>", _kv_table(host)]
    if pairs:
        shown = pd.DataFrame(pairs).map(lambda v: ", ".join(map(str, v)) if isinstance(v, list) else v)
        parts += ["<h3>Down/up pairs</h3>", '<div class="wrap">' + _frame_table(shown) + "</div>"]
    if search_settings:
        parts += ["<h3>Search command settings</h3>", _kv_table(search_settings)]
    return "\n".join(parts)


def _trial_columns(frame: pd.DataFrame) -> list[str]:
    return ["number", "uniform", *choice_columns(frame), *metric_columns(frame), "params_added", "gflops",
            "latency_ms", "train_seconds", "steps", "device"]


def render_html(results: Results, frame: pd.DataFrame, table: pd.DataFrame,
                figures: list[tuple[EncodedFigure, str]], notes: list[str]) -> str:
    """The whole report page; ``figures`` are (figure, caption) pairs, ``notes`` plain-text remarks."""
    name = results.study_name
    metric = frame.attrs["primary_metric"]
    pareto = frame[frame["pareto"]].sort_values(METRIC_PREFIX + metric,
                                                ascending=frame.attrs["metric_direction"] != "maximize")
    failed = frame[frame["state"].isin(["FAIL", "PRUNED"])]
    objectives = ", ".join(results.settings.get("objectives", [])) or "the study's objectives"
    directions = ", ".join(results.directions)
    generated = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    body = [
        f"<h1>IndexNet search report: {_e(name)}</h1>",
        f'<p class="meta">source: {_e(results.source)} &middot; {len(frame)} trials ({_e(_counts(frame))}) '
        f"&middot; generated {_e(generated)} by indexnas {_e(__version__)}</p>",
        f"<p>{_e(_headline(frame))}</p>",
        *(f'<p class="note">{_e(note)}</p>' for note in notes),
        "<h2>Results in the paper's layout</h2>",
        f"<p>Best complete trial per configuration; Δ is the parameters added to the host; the best {_e(metric)} "
        "among IndexNet rows is bold. Also written as table.csv, table.md and table.tex.</p>",
        '<div class="scroll">' + render_table(table, "html") + "</div>",
        "<h2>Figures</h2>",
        *(_figure(figure, caption) for figure, caption in figures),
        f"<h2>Pareto-optimal trials ({len(pareto)})</h2>",
        f"<p>Non-dominated in ({_e(objectives)}) with directions ({_e(directions)}).</p>",
        _frame_table(pareto[_trial_columns(frame)]),
        f"<h2>Failed and pruned trials ({len(failed)})</h2>",
        '<div class="failures">'
        + _frame_table(failed[["number", "state", "uniform", *choice_columns(frame), "failure_kind",
                               "failure_message"]])
        + "</div>" if len(failed) else "<p>none</p>",
        _settings_section(results),
        f"<h2>All trials ({len(frame)})</h2>",
        "<details><summary>show the table (also trials.csv)</summary>",
        _frame_table(frame[["state", *_trial_columns(frame), "pareto"]]),
        "</details>",
    ]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>indexnas report: {_e(name)}</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
