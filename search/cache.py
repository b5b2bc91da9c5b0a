"""The study-level cache: a configuration already trained in the study is answered from its stored result.

Every trial records its canonical key (`search.canonical.configuration_key`); a trial whose key a
completed trial already holds is not trained again: it completes at once with that trial's values and
results, marked ``duplicate_of`` (the original's number), so the sampler learns from it, the study's
trial count moves on, and the summary counts it as a repeat, not a training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from indexnas.spec import IndexSpec
from indexnas.search import record
from indexnas.search.canonical import canonical_choices, configuration_key
from indexnas.search.record import CANONICAL, DUPLICATE_OF, TrialRecord

# What a repeat copies from the trial that answers it (its own seed, worker and timing stay its own).
COPIED = (record.RECIPE, *record.COSTS, record.METRICS, record.ITEM_SCORES, record.SCORE_SE,
          record.SCORE_SE_VS_HOST, record.SEED, record.STEPS, record.DEVICE, record.LATENCY_MS)


def find_duplicate(trial: optuna.Trial, choices: Mapping[str, IndexSpec | str],
                   pairs: Sequence[Mapping[str, Any]]) -> FrozenTrial | None:
    """Record the trial's canonical key; return the completed trial of the same model (None: train this one)."""
    key = configuration_key(choices, pairs)
    record.write(trial, CANONICAL, key)
    record.write(trial, record.CANONICAL_CHOICES, canonical_choices(choices, pairs))
    for done in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if TrialRecord.of(done).get(CANONICAL) == key and not is_duplicate(done):
            return done
    return None


def answer(trial: optuna.Trial, original: FrozenTrial) -> tuple[float, ...]:
    """Complete ``trial`` with ``original``'s values and results, recorded as a repeat of it."""
    stored = TrialRecord.of(original)
    for attribute in COPIED:
        if attribute in stored:
            record.write(trial, attribute, stored[attribute])
    record.write(trial, DUPLICATE_OF, original.number)
    record.write(trial, record.TRAIN_SECONDS, 0.0)
    return tuple(original.values)


def is_duplicate(trial: FrozenTrial) -> bool:
    """True for a trial answered from the cache (not trained)."""
    return DUPLICATE_OF in TrialRecord.of(trial)
