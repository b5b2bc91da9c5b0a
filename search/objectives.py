"""What a study optimises: the task metric against parameters added by default, GFLOPs on request.

Each objective is named on the command line (``--objectives metric,params,gflops``) and stored in the
study under the name its trials record (``psnr``, ``params_added``, ``gflops``). The default leaves
GFLOPs out: as a third objective it keeps host-like configurations on the front (the host is the only
GFLOPs minimum), and ``--max-gflops`` bounds it as a budget instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from indexnas.errors import UserError


@dataclass(frozen=True)
class Objective:
    """One objective: its stored name (None: the task's primary metric), its direction, why it exists."""

    stored: str | None  # None: the searched metrics (the task's primary metric, or an API user's metrics)
    direction: str | None  # None: each metric's own direction
    why: str


OBJECTIVES: dict[str, Objective] = {
    "metric": Objective(None, None, "the task's primary metric (PSNR, mIoU, SAD, RMSE): what the model is for"),
    "params": Objective("params_added", "minimize", "parameters added to the host: the paper's cost axis"),
    "gflops": Objective("gflops", "minimize", "GFLOPs of the whole model at --flops-size: inference cost"),
}
DEFAULT = "metric,params"


def parse(text: str) -> tuple[str, ...]:
    """The objective names of ``text`` ("metric,params,gflops"), checked: known, distinct, the metric first."""
    names = tuple(part.strip() for part in str(text).split(",") if part.strip())
    unknown = [name for name in names if name not in OBJECTIVES]
    fix = f"use a comma-separated subset of {', '.join(OBJECTIVES)} starting with metric, e.g. {DEFAULT}"
    if unknown or not names:
        raise UserError(f"unknown objective(s) {', '.join(unknown) or repr(text)} in --objectives", fix)
    if len(set(names)) != len(names) or names[0] != "metric":
        raise UserError(f"--objectives {text!r} must name each objective once, the task metric first", fix)
    return names


def stored_names(names: tuple[str, ...], metric_directions: Mapping[str, str]) -> list[str]:
    """The objectives as the study records them, e.g. ["psnr", "params_added"] ("metric": every searched metric)."""
    return [stored for name in names
            for stored in ([*metric_directions] if OBJECTIVES[name].stored is None else [OBJECTIVES[name].stored])]


def directions(names: tuple[str, ...], metric_directions: Mapping[str, str]) -> list[str]:
    return [direction for name in names
            for direction in ([*metric_directions.values()] if OBJECTIVES[name].stored is None
                              else [OBJECTIVES[name].direction])]


def values(names: tuple[str, ...], metric_directions: Mapping[str, str], metrics: Mapping[str, float],
           costs: Mapping[str, Any]) -> tuple[float, ...]:
    """A trial's objective values from its metrics and its costs (`search.space.Suggestion.costs`)."""
    return tuple(float(metrics[stored]) if stored in metric_directions else float(costs[stored])
                 for stored in stored_names(names, metric_directions))
