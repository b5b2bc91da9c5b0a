"""A study's progress as hypervolume over trials, on (primary metric, log10(1 + Delta params)).

The search and the paper's 15-configuration grid can be compared on it by passing both the same
reference point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from indexnas.cost import PARAMS_REFERENCE_MARGIN, log_params
from indexnas.errors import UserError
from indexnas.reports.frame import METRIC_PREFIX
from indexnas.reports.pareto import hypervolume_2d


def default_reference(frame: pd.DataFrame, metric_direction: str, host_metric: float | None) -> tuple[float, float]:
    """(metric, log10(1 + Delta params)) reference: the host's metric (else the worst complete trial's)
    and the most expensive complete trial's Delta params plus `PARAMS_REFERENCE_MARGIN`."""
    complete = frame[frame["state"] == "COMPLETE"]
    metric = complete[METRIC_PREFIX + frame.attrs["primary_metric"]].astype(float)
    metric = metric[np.isfinite(metric)]
    if complete.empty or metric.empty:
        raise UserError("the study has no complete trial with a finite metric",
                        "run the search longer, or check its failures")
    worst = metric.min() if metric_direction == "maximize" else metric.max()
    reference_metric = host_metric if host_metric is not None and math.isfinite(host_metric) else float(worst)
    return reference_metric, float(log_params(complete["params_added"].max()) + PARAMS_REFERENCE_MARGIN)


def hypervolume_curve(frame: pd.DataFrame, reference: Sequence[float] | None = None) -> pd.DataFrame:
    """Hypervolume of (primary metric, log10(1 + Delta params)) over the complete trials up to each trial.

    ``frame`` is a `reports.frame.trials_frame`; ``reference`` is in the same (metric, log10) units and
    defaults to `default_reference`. The result has columns ``number`` and ``hypervolume`` (one row per
    trial, in trial order) and ``attrs["reference"]``.
    """
    direction = frame.attrs["metric_direction"]
    if reference is None:
        reference = default_reference(frame, direction, frame.attrs.get("host_metric"))
    ordered = frame.sort_values("number")
    metric = ordered[METRIC_PREFIX + frame.attrs["primary_metric"]].astype(float)
    points = np.column_stack([metric, log_params(ordered["params_added"].astype(float))])
    complete = (ordered["state"] == "COMPLETE").to_numpy()
    directions = (direction, "minimize")
    volumes = [hypervolume_2d(points[: i + 1][complete[: i + 1]], reference, directions) for i in range(len(points))]
    curve = pd.DataFrame({"number": ordered["number"].to_numpy(), "hypervolume": volumes})
    curve.attrs["reference"] = tuple(float(r) for r in reference)
    return curve
