"""The report's figures (matplotlib, no global pyplot state): trade-offs with the Pareto front, the choices
Pareto trials make per pair, and hypervolume over trials. Each is a `matplotlib.figure.Figure`;
`encode` turns one into PNG bytes and SVG text.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from indexnas.spec import IndexSpec, all_choices
from indexnas.reports.frame import CHOICE_PREFIX, HOST, METRIC_PREFIX, choice_columns
from indexnas.reports.hypervolume import hypervolume_curve
from indexnas.reports.labels import place_labels
from indexnas.reports.pareto import pareto_mask

# One colour per learned family (tab10), so a family's L / NL / NL+C points read as one group.
FAMILY_COLOURS = {
    "holistic": "tab:blue",
    "o2o-modelwise": "tab:orange",
    "o2o-shared": "tab:green",
    "o2o-unshared": "tab:purple",
    "m2o": "tab:brown",
}
FIXED_COLOUR = "tab:gray"
MIXED_COLOUR = "tab:olive"
FRONT_COLOUR = "tab:red"
SPREAD_COLOUR = "0.35"  # error bars: a trial's mean +- sd over training seeds
X_AXES = {"params_added": "Δ parameters (added to the host)", "gflops": "GFLOPs (whole model)"}


@dataclass
class EncodedFigure:
    """One figure in both formats the report writes."""

    name: str  # file stem, e.g. "tradeoff_params"
    title: str
    png: bytes
    svg: str


def encode(figure: Figure, name: str, title: str, dpi: int = 110) -> EncodedFigure:
    """Render ``figure`` to PNG and SVG (SVG text without the XML prologue, ready to inline)."""
    png, svg = io.BytesIO(), io.StringIO()
    figure.savefig(png, format="png", dpi=dpi, bbox_inches="tight")
    figure.savefig(svg, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = svg.getvalue()
    return EncodedFigure(name, title, png.getvalue(), text[text.index("<svg") :])


def plot_tradeoff(frame: pd.DataFrame, x: str = "params_added") -> Figure:
    """Primary metric against Δ params or GFLOPs: every complete trial, this projection's Pareto front
    highlighted (step line); the host, the paper's uniform configurations and the mixed (per-pair) trials
    that are Pareto-optimal in all objectives labelled ("#N" = trial N), labels placed without overlap; a trial
    retrained with more seeds (search.retrain) also gets its mean +- sd over seeds as an error bar."""
    if x not in X_AXES:
        raise ValueError(f"x must be one of {list(X_AXES)}")
    metric, direction = frame.attrs["primary_metric"], frame.attrs["metric_direction"]
    complete = frame[(frame["state"] == "COMPLETE")].copy()
    complete = complete[np.isfinite(complete[METRIC_PREFIX + metric]) & np.isfinite(complete[x])]
    figure = Figure(figsize=(8.5, 5.2))
    axes = figure.add_subplot()
    ys, xs = complete[METRIC_PREFIX + metric].to_numpy(float), complete[x].to_numpy(float)
    axes.scatter(xs, ys, s=18, color="0.75", label="trial", zorder=2)
    if len(complete):
        front = pareto_mask(np.column_stack([ys, xs]), (direction, "minimize"))
        order = np.argsort(xs[front])
        axes.step(xs[front][order], ys[front][order], where="post", color=FRONT_COLOUR, lw=1.2, zorder=3)
        axes.scatter(xs[front], ys[front], s=46, facecolor="none", edgecolor=FRONT_COLOUR, lw=1.4,
                     label=f"Pareto front ({metric} vs {x})", zorder=4)
    spread = complete[complete["seed_n"] > 1]
    if len(spread):
        axes.errorbar(spread[x], spread["seed_mean"], yerr=spread["seed_sd"], fmt="_", ms=9, color=SPREAD_COLOUR,
                      capsize=3, lw=1, zorder=3.5, label="mean ± sd over training seeds")
    points, labels = [], []
    for _, trial in _labelled(complete).iterrows():
        point = (trial[x], trial[METRIC_PREFIX + metric])
        label = trial["uniform"]
        if label == HOST:
            axes.scatter(*point, marker="*", s=140, color="black", zorder=5, label="host")
        elif isinstance(label, str):
            colour = FAMILY_COLOURS.get(IndexSpec.parse(label).family, FIXED_COLOUR)
            axes.scatter(*point, s=26, color=colour, zorder=5)
        else:
            label = mixed_label(trial["number"])
            axes.scatter(*point, marker="D", s=22, color=MIXED_COLOUR, zorder=5)
        points.append(point)
        labels.append(label)
    if labels and any(not isinstance(u, str) for u in _labelled(complete)["uniform"]):
        axes.scatter([], [], marker="D", s=22, color=MIXED_COLOUR, label="mixed Pareto trial #N")
    if x == "params_added":
        axes.set_xscale("symlog", linthresh=10)  # Δ is 0 for the host and spans 16 .. 1e8
    axes.set_xlabel(X_AXES[x])
    axes.set_ylabel(f"{metric} ({'higher' if direction == 'maximize' else 'lower'} is better)")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0)
    axes.margins(0.08, 0.12)  # room for labels at the edges
    figure.tight_layout()
    unplaced = place_labels(axes, points, labels, obstacles=list(zip(xs, ys)))
    if unplaced:
        axes.set_title(f"{len(unplaced)} label(s) left out for lack of room: {', '.join(unplaced)}", fontsize=7)
    return figure


def mixed_label(number: int) -> str:
    """How the figures and tables name a mixed (per-pair) trial: "#N"."""
    return f"#{int(number)}"


def _labelled(complete: pd.DataFrame) -> pd.DataFrame:
    """The trials the trade-off plots label: host first, the uniform configurations, then mixed Pareto trials."""
    uniform = complete[complete["uniform"].notna()]
    host_first = uniform.sort_values("uniform", key=lambda u: u != HOST, kind="stable")
    mixed = complete[complete["uniform"].isna() & complete["pareto"]]
    return pd.concat([host_first, mixed])


def _choice_order(values: set[str]) -> list[str]:
    """Choices in the spec's canonical order (keep, fixed, learned), unknown forms last."""
    known = [str(c) for c in all_choices()]
    return [c for c in known if c in values] + sorted(values - set(known))


def plot_pareto_choices(frame: pd.DataFrame) -> Figure:
    """How often each pair takes each choice among the Pareto-optimal trials (a count heatmap)."""
    pareto = frame[frame["pareto"]]
    columns = choice_columns(frame)
    pairs = [c[len(CHOICE_PREFIX) :] for c in columns]
    values = {v for c in columns for v in pareto[c].dropna()}
    choices = _choice_order(values)
    counts = np.array([[int((pareto[c] == choice).sum()) for choice in choices] for c in columns]).reshape(
        len(columns), len(choices)
    )
    figure = Figure(figsize=(max(5.0, 0.55 * len(choices) + 3), max(2.4, 0.45 * len(pairs) + 1.6)))
    axes = figure.add_subplot()
    if not counts.size:
        axes.text(0.5, 0.5, "no Pareto-optimal trial yet", ha="center", va="center")
        axes.set_axis_off()
        return figure
    image = axes.imshow(counts, cmap="Blues", aspect="auto", vmin=0)
    for (row, col), count in np.ndenumerate(counts):
        if count:
            dark = count > counts.max() / 2
            axes.text(col, row, str(count), ha="center", va="center", fontsize=8, color="white" if dark else "black")
    axes.set_xticks(range(len(choices)), choices, rotation=90, fontsize=8)  # upright boxes: none overlap
    axes.set_yticks(range(len(pairs)), pairs, fontsize=8)
    trials = "the Pareto-optimal trial" if len(pareto) == 1 else f"the {len(pareto)} Pareto-optimal trials"
    axes.set_title(f"choices of {trials}, per pair", fontsize=10)
    figure.colorbar(image, ax=axes, label="trials", ticks=MaxNLocator(integer=True))
    figure.tight_layout()
    return figure


def plot_hypervolume(frame: pd.DataFrame, reference: tuple[float, float] | None = None) -> Figure | None:
    """Hypervolume of (metric, log10(1 + Δ params)) after each trial (see `reports.pareto`); None when it
    is 0 throughout (no complete trial beats the reference's metric): a flat line at 0 says nothing."""
    curve = hypervolume_curve(frame, reference)
    if not (curve["hypervolume"] > 0).any():
        return None
    figure = Figure(figsize=(7.5, 3.6))
    axes = figure.add_subplot()
    axes.step(curve["number"], curve["hypervolume"], where="post", color="tab:blue")
    axes.scatter(curve["number"], curve["hypervolume"], s=8, color="tab:blue")
    grid = frame[frame["uniform"].notna()]["number"]
    if len(grid):
        axes.axvspan(grid.min() - 0.5, grid.max() + 0.5, color="0.92", zorder=0, label="paper grid + host trials")
        axes.legend(loc="lower right", fontsize=8)
    ref_metric, ref_params = curve.attrs["reference"]
    axes.set_title(
        f"hypervolume of ({frame.attrs['primary_metric']}, log10(1+Δparams)); "
        f"reference ({ref_metric:.4g}, {ref_params:.3g})",
        fontsize=9,
    )
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # trial numbers
    axes.set_ylim(bottom=0)
    axes.set_xlabel("trial number")
    axes.set_ylabel("hypervolume")
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    return figure
