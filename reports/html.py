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

import numpy as np
import pandas as pd

from indexnas.version import __version__
from indexnas.reports.frame import CHOICE_PREFIX, HOST, METRIC_PREFIX, choice_columns, metric_columns
from indexnas.reports.plots import EncodedFigure, mixed_label
from indexnas.reports.source import Results
from indexnas.reports.table import format_metric, render_table
from indexnas.search.summary import describe_counts, trial_counts
from indexnas.spec import summarise_choices

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
table.trials td:nth-child(3), table.paper td:last-child { white-space: normal; text-align: left; min-width: 14em; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _plural(count: int, word: str) -> str:
    """'1 trial', '2 trials'."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def _rounded(value: Any) -> Any:
    """Floats (also inside dicts and lists) to 6 significant digits, for reading; results.json keeps them all."""
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _kv_table(items: dict[str, Any]) -> str:
    rows = []
    for key, value in items.items():
        value = _rounded(value)
        text = json.dumps(value, default=str) if isinstance(value, (dict, list)) else str(value)
        rows.append(f"<tr><td>{_e(key)}</td><td>{_e(text)}</td></tr>")
    return '<table class="kv">' + "".join(rows) + "</table>"


def _frame_table(frame: pd.DataFrame) -> str:
    shown = frame.rename(columns=lambda c: c.removeprefix(CHOICE_PREFIX).removeprefix(METRIC_PREFIX))
    table = shown.to_html(index=False, na_rep="–", float_format=lambda v: f"{v:.4g}", border=0)
    return '<div class="scroll">' + table + "</div>"


def _trials_table(frame: pd.DataFrame, trials: pd.DataFrame, extra: list[str]) -> str:
    """Trials as a table that fits the page: one wrapping ``choices`` cell (the pairs in study order) instead
    of a column per pair, then the metrics, costs and ``extra`` columns."""
    pairs = choice_columns(frame)
    rows = pd.DataFrame({
        "trial": trials["number"],
        "configuration": [u if isinstance(u, str) else f"mixed {mixed_label(n)}"
                          for u, n in zip(trials["uniform"], trials["number"])],
        "choices": [" | ".join(str(t[c]) for c in pairs) if not isinstance(t["uniform"], str) else "uniform"
                    for _, t in trials.iterrows()],
    })
    for column in metric_columns(frame)[:1]:
        rows[column.removeprefix(METRIC_PREFIX)] = trials[column].to_numpy()
    if (trials["seed_n"] > 1).any():
        rows["over seeds: mean ± sd (n)"] = [spread_text(t) for _, t in trials.iterrows()]
    for column in (*metric_columns(frame)[1:], "params_added", "gflops", "latency_ms", "train_seconds", *extra):
        rows[column.removeprefix(METRIC_PREFIX)] = trials[column].to_numpy()
    rows = rows.rename(columns={"params_added": "Δ params", "latency_ms": "latency ms", "train_seconds": "train s"})
    body = rows.to_html(index=False, na_rep="–", border=0, escape=True,
                        formatters={"Δ params": lambda v: "–" if pd.isna(v) else f"{int(v):+,}"},
                        float_format=lambda v: f"{v:.4g}")
    return body.replace('<table class="dataframe">', '<table class="dataframe trials">')


def spread_text(trial: pd.Series) -> str:
    """The primary metric over training seeds, e.g. "24.61 ± 0.23 (3)"; "–" for a trial not retrained."""
    if not trial["seed_n"] > 1:
        return "–"
    return f"{format_metric(trial['seed_mean'])} ± {trial['seed_sd']:.2g} ({int(trial['seed_n'])})"


def beyond_spread(frame: pd.DataFrame) -> list[str]:
    """For each retrained mixed Pareto trial, the paper-grid configurations it dominates beyond the training
    seeds' spread: its mean - sd is better than theirs + sd (a grid row not retrained: its one score, sd 0) at no
    more parameters added. A single run's gap is not claimed: the seed alone moves a score by 0.15-0.8 dB."""
    metric, sign = frame.attrs["primary_metric"], 1.0 if frame.attrs["metric_direction"] == "maximize" else -1.0
    complete = frame[frame["state"] == "COMPLETE"]

    def bounds(trial: pd.Series) -> tuple[float, float]:
        """(pessimistic, optimistic) score: mean -/+ sd over seeds, or the one score."""
        if trial["seed_n"] > 1:
            return sign * trial["seed_mean"] - trial["seed_sd"], sign * trial["seed_mean"] + trial["seed_sd"]
        return (sign * trial[METRIC_PREFIX + metric],) * 2

    grid = complete[complete["uniform"].apply(lambda u: isinstance(u, str) and u != HOST)]
    sentences = []
    for _, trial in complete[complete["pareto"] & complete["uniform"].isna() & (complete["seed_n"] > 1)].iterrows():
        worst = bounds(trial)[0]
        beaten = [g for _, g in grid.iterrows() if g["params_added"] >= trial["params_added"] and worst > bounds(g)[1]]
        if beaten:
            names = ", ".join(sorted({str(g["uniform"]) for g in beaten}))
            sentences.append(f"Mixed trial {mixed_label(trial['number'])} ({metric} {spread_text(trial)}, "
                             f"{int(trial['params_added']):+,} parameters) dominates the paper grid's {names} beyond "
                             "the seeds' spread (a grid row not retrained counts with its single run).")
    return sentences


def _figure(figure: EncodedFigure, caption: str) -> str:
    data = base64.b64encode(figure.png).decode("ascii")
    return (f'<figure id="fig-{_e(figure.name)}"><img alt="{_e(figure.title)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _counts(frame: pd.DataFrame) -> str:
    counts = frame["state"].value_counts()
    return ", ".join(f"{n} {state.lower()}" for state, n in counts.items()) or "no trials"


def indexnet_on_front(frame: pd.DataFrame) -> bool:
    """Whether a Pareto-optimal trial uses IndexNet somewhere (not only the untouched host)."""
    choices = frame.loc[frame["pareto"], choice_columns(frame)]
    return bool((choices.notna() & (choices != "keep")).any(axis=1).any())


def _front_sentence(frame: pd.DataFrame) -> str:
    count = int(frame["pareto"].sum())
    if count and not indexnet_on_front(frame):
        return "Only the untouched host is Pareto-optimal: no IndexNet trial is on the front."
    return f"{_plural(count, 'trial')} {'is' if count == 1 else 'are'} Pareto-optimal."


def _host_scores(frame: pd.DataFrame, results: Results) -> str | None:
    """Why the host has two scores, when the study has both a host trial and a warm start that differ."""
    metric = frame.attrs["primary_metric"]
    trial = frame[(frame["uniform"] == HOST) & (frame["state"] == "COMPLETE")]
    warm = (results.settings.get("host") or {}).get("metrics", {}).get(metric)
    if trial.empty or warm is None or not np.isfinite(trial[METRIC_PREFIX + metric].iloc[0]):
        return None
    score = float(trial[METRIC_PREFIX + metric].iloc[0])
    if format_metric(score) == format_metric(float(warm)):
        return None
    return (f"The host has two {metric} scores: {format_metric(float(warm))} after its warm-start training (the "
            f"weights every trial starts from) and {format_metric(score)} in trial {int(trial['number'].iloc[0])}, "
            "where, like every trial, it is fine-tuned for one more budget from those weights with its pairs kept. "
            f"Trials are compared with trial {int(trial['number'].iloc[0])}'s score.")


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
    versus = f"; the host scores {format_metric(host)}" if host is not None else ""
    return (f"Best {metric}: {format_metric(best[METRIC_PREFIX + metric])} (trial {best['number']}: {what}, "
            f"{int(best['params_added']):+,} parameters, {best['gflops']:.3g} GFLOPs){versus}. "
            f"{_front_sentence(frame)}")


def _settings_section(results: Results) -> str:
    settings = dict(results.settings)
    pairs = settings.pop("pairs", [])
    search_settings = settings.pop("settings", None)
    host = settings.pop("host", None)
    parts = ["<h2>Settings</h2>", _kv_table(settings)]
    if host:
        parts += ["<h3>Host (warm start)</h3>", _kv_table(host)]
    if pairs:
        shown = pd.DataFrame(pairs)
        if "allowed" in shown:
            shown["allowed"] = shown["allowed"].map(summarise_choices)
        shown = shown.map(lambda v: ", ".join(map(str, v)) if isinstance(v, list) else v)
        parts += ["<h3>Down/up pairs</h3>", '<div class="wrap">' + _frame_table(shown) + "</div>"]
    if search_settings:
        parts += ["<h3>Search command settings</h3>", _kv_table(search_settings)]
    return "\n".join(parts)


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
    pairs = [c.removeprefix(CHOICE_PREFIX) for c in choice_columns(frame)]
    pair_order = f"Choices are listed in pair order: {' | '.join(pairs)}." if pairs else ""
    body = [
        f"<h1>IndexNet search report: {_e(name)}</h1>",
        f'<p class="meta">source: {_e(results.source)} &middot; {_e(_plural(len(frame), "trial"))} '
        f"({_e(_counts(frame))}) &middot; generated {_e(generated)} by indexnas {_e(__version__)}</p>",
        f"<p>{_e(_headline(frame))}</p>",
        f"<p>Trials: {_e(describe_counts(trial_counts(results.trials, int(results.settings.get('budget_steps', 0)))))}."
        "</p>",
        *(f'<p class="note">{_e(note)}</p>' for note in [*notes, *filter(None, [_host_scores(frame, results)])]),
        "<h2>Results in the paper's layout</h2>",
        f"<p>Best complete trial per configuration; Δ is the parameters added to the host; the best {_e(metric)} "
        "among IndexNet rows is bold. Also written as table.csv, table.md and table.tex.</p>",
        '<div class="scroll">' + render_table(table, "html") + "</div>",
        "<h2>Figures</h2>",
        *(_figure(figure, caption) for figure, caption in figures),
        f"<h2>Pareto-optimal trials ({len(pareto)})</h2>",
        f"<p>Non-dominated in ({_e(objectives)}) with directions ({_e(directions)}). {_e(pair_order)} "
        "Mixed trials are marked #N in the figures. 'Over seeds': the trial's own run and its retraining with other "
        "seeds (--retrain-seeds), mean ± sample sd (runs).</p>",
        *(f"<p>{_e(sentence)}</p>" for sentence in beyond_spread(frame)),
        _trials_table(frame, pareto, ["steps", "device"]),
        f"<h2>Failed and pruned trials ({len(failed)})</h2>",
        '<div class="failures">'
        + _frame_table(failed[["number", "state", "uniform", "failure_kind", "failure_message"]]
                       .rename(columns={"number": "trial"}))
        + "</div>" if len(failed) else "<p>none</p>",
        _settings_section(results),
        f"<h2>All trials ({len(frame)})</h2>",
        "<details><summary>show the table (also trials.csv)</summary>",
        _trials_table(frame, frame, ["steps", "device", "state", "pareto"]),
        "</details>",
    ]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>indexnas report: {_e(name)}</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
