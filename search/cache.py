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
from indexnas.search.canonical import canonical_choices, configuration_key

KEY_ATTR = "canonical"  # user attr: the configuration's canonical key
DUPLICATE_ATTR = "duplicate_of"  # user attr: the number of the trial whose result answered this one
# What a repeat copies from the trial that answers it (its own seed, worker and timing stay its own).
COPIED_ATTRS = ("recipe", "params_added", "params_total", "gflops", "gflops_added", "metrics", "item_scores",
                "score_se", "score_se_vs_host", "seed", "steps", "device", "latency_ms")


def find_duplicate(trial: optuna.Trial, choices: Mapping[str, IndexSpec | str],
                   pairs: Sequence[Mapping[str, Any]]) -> FrozenTrial | None:
    """Record the trial's canonical key; return the completed trial of the same model (None: train this one)."""
    key = configuration_key(choices, pairs)
    trial.set_user_attr(KEY_ATTR, key)
    trial.set_user_attr("canonical_choices", canonical_choices(choices, pairs))
    for done in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if done.user_attrs.get(KEY_ATTR) == key and DUPLICATE_ATTR not in done.user_attrs:
            return done
    return None


def answer(trial: optuna.Trial, original: FrozenTrial) -> tuple[float, ...]:
    """Complete ``trial`` with ``original``'s values and results, recorded as a repeat of it."""
    for name in COPIED_ATTRS:
        if name in original.user_attrs:
            trial.set_user_attr(name, original.user_attrs[name])
    trial.set_user_attr(DUPLICATE_ATTR, original.number)
    trial.set_user_attr("train_seconds", 0.0)
    return tuple(original.values)


def is_duplicate(trial: FrozenTrial) -> bool:
    """True for a trial answered from the cache (not trained)."""
    return DUPLICATE_ATTR in trial.user_attrs
