"""Pareto optimality and 2-D hypervolume, written out here because Optuna's own are private API."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from indexnas.errors import UserError

DIRECTIONS = ("maximize", "minimize")


def _as_minimization(points: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Flip the sign of every maximised column so that smaller is better everywhere."""
    for direction in directions:
        if direction not in DIRECTIONS:
            raise UserError(f"unknown optimisation direction {direction!r}", f"use one of: {', '.join(DIRECTIONS)}")
    signs = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    return points * signs


def pareto_mask(values: np.ndarray | Sequence[Sequence[float]], directions: Sequence[str]) -> np.ndarray:
    """True for each row no other row dominates (at least as good everywhere, better somewhere).

    Rows with a non-finite value are never Pareto-optimal; identical rows are all kept.
    """
    points = np.asarray(values, dtype=float).reshape(len(values), len(directions))
    finite = np.isfinite(points).all(axis=1)
    costs = _as_minimization(points, directions)
    mask = np.zeros(len(points), dtype=bool)
    candidates = costs[finite]
    for index in np.flatnonzero(finite):
        row = costs[index]
        dominated = ((candidates <= row).all(axis=1) & (candidates < row).any(axis=1)).any()
        mask[index] = not dominated
    return mask


def hypervolume_2d(
    points: np.ndarray | Sequence[Sequence[float]], reference: Sequence[float], directions: Sequence[str]
) -> float:
    """Area dominated by ``points`` and bounded by ``reference`` in two objectives.

    Points not strictly better than the reference in both objectives add nothing.
    """
    if len(directions) != 2 or len(reference) != 2:
        raise UserError("hypervolume_2d takes two objectives", "pass points of shape (n, 2) and two directions")
    costs = _as_minimization(np.asarray(points, dtype=float).reshape(-1, 2), directions)
    ref = _as_minimization(np.asarray(reference, dtype=float).reshape(1, 2), directions)[0]
    costs = costs[np.isfinite(costs).all(axis=1) & (costs < ref).all(axis=1)]
    volume, best_second = 0.0, ref[1]
    for first, second in costs[np.lexsort((costs[:, 1], costs[:, 0]))]:
        if second < best_second:
            volume += (ref[0] - first) * (best_second - second)
            best_second = second
    return float(volume)
