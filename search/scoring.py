"""What makes one trial's score readable: its own training seed, its per-item scores, their standard errors.

- Each trial trains with seed ``base + trial number`` (recorded as the trial's ``seed``), so trials do not
  share the warm start's batches and IndexNet initialisation, and a repeat with another seed is a new draw.
- Each trial stores its primary metric per validation item (``item_scores``) and two standard errors of
  its score over those items: ``score_se`` (the score on its own: how far another draw of validation
  items could move it) and ``score_se_vs_host`` (the paired difference to the warm-started host, item by
  item: how well the gap to the host is measured; the items' difficulty cancels out).
Neither includes the training seed's noise: retrain a configuration with other seeds to see that.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna

from indexnas.search import record as trial_record


def trial_seed(base: int, number: int) -> int:
    """The training seed of trial ``number`` in a study seeded ``base`` (the warm start uses ``base`` itself)."""
    return base + 1 + number


def standard_error(values: Sequence[float]) -> float:
    """Standard error of the mean of ``values`` (NaN items ignored; NaN with fewer than two)."""
    finite = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    return float(finite.std(ddof=1) / math.sqrt(len(finite))) if len(finite) > 1 else float("nan")


def paired_standard_error(values: Sequence[float], reference: Sequence[float]) -> float:
    """Standard error of mean(values - reference) over the same items (NaN when they do not match)."""
    if len(values) != len(reference):
        return float("nan")
    return standard_error([a - b for a, b in zip(values, reference, strict=True)])


def primary_items(item_scores: Mapping[str, Sequence[float]]) -> list[float]:
    """The per-item scores of the validation set's first part (the one the study's score comes from)."""
    return list(next(iter(item_scores.values()), []))


def record(trial: optuna.Trial, item_scores: Mapping[str, Sequence[float]], host: Mapping[str, Any]) -> None:
    """Store the trial's per-item scores and its standard errors (alone, and paired with the warm host)."""
    items = primary_items(item_scores)
    rounded = {name: [round(v, 4) for v in values] for name, values in item_scores.items()}
    trial_record.write(trial, trial_record.ITEM_SCORES, rounded)
    trial_record.write(trial, trial_record.SCORE_SE, standard_error(items))
    trial_record.write(trial, trial_record.SCORE_SE_VS_HOST,
                       paired_standard_error(items, primary_items(host.get("item_scores", {}))))
