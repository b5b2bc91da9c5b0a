"""The search space: per pair a family, linearity and context; modelwise sharing per model.

Optuna parameters are named after pairs (``<pair>/family``, ``<pair>/nl``, ``<pair>/context``),
and only the families the surgery allows at that pair are offered, so every trial is a valid
model. Pairs that pick ``o2o-modelwise`` share one IndexNet whose linearity and context are the
model-level parameters ``modelwise/nl`` and ``modelwise/context``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import optuna

from indexnas.spec import LEARNED_FAMILIES, IndexSpec

MODELWISE = "o2o-modelwise"


@dataclass(frozen=True)
class PairSpace:
    """The choices open to one pair."""

    name: str
    families: tuple[str, ...]  # in a fixed order: Optuna's categorical needs the same list every trial

    @classmethod
    def from_allowed(cls, name: str, allowed: Iterable[IndexSpec | str]) -> PairSpace:
        families = {IndexSpec.parse(s).family for s in allowed}
        families.add("keep")
        order = ("keep", "max", "hmi", "avg", *LEARNED_FAMILIES)
        return cls(name, tuple(f for f in order if f in families))


def suggest_choices(trial: optuna.Trial, spaces: list[PairSpace]) -> dict[str, IndexSpec]:
    """Ask the trial for one IndexSpec per pair (define-by-run)."""
    families = {space.name: trial.suggest_categorical(f"{space.name}/family", space.families) for space in spaces}
    modelwise: tuple[bool, bool] | None = None
    if MODELWISE in families.values():
        modelwise = (trial.suggest_categorical("modelwise/nl", (False, True)),
                     trial.suggest_categorical("modelwise/context", (False, True)))
    choices = {}
    for name, family in families.items():
        if family == MODELWISE:
            assert modelwise is not None
            choices[name] = IndexSpec(family, *modelwise)
        elif family in LEARNED_FAMILIES:
            choices[name] = IndexSpec(family, trial.suggest_categorical(f"{name}/nl", (False, True)),
                                      trial.suggest_categorical(f"{name}/context", (False, True)))
        else:
            choices[name] = IndexSpec(family)
    return choices


def params_for(choices: Mapping[str, IndexSpec | str], spaces: list[PairSpace]) -> dict[str, Any] | None:
    """The Optuna parameters that reproduce ``choices`` (for enqueueing), or None if not in the space."""
    params: dict[str, Any] = {}
    by_name = {space.name: space for space in spaces}
    for name, choice in choices.items():
        spec = IndexSpec.parse(choice)
        if name not in by_name or spec.family not in by_name[name].families:
            return None
        params[f"{name}/family"] = spec.family
        if spec.family == MODELWISE:
            previous = (params.get("modelwise/nl"), params.get("modelwise/context"))
            if previous != (None, None) and previous != (spec.nonlinear, spec.context):
                return None  # one shared module cannot be two variants
            params["modelwise/nl"], params["modelwise/context"] = spec.nonlinear, spec.context
        elif spec.learned:
            params[f"{name}/nl"], params[f"{name}/context"] = spec.nonlinear, spec.context
    return params


def uniform(spaces: list[PairSpace], choice: IndexSpec | str) -> dict[str, IndexSpec]:
    """The same choice at every pair (the paper's uniform configurations)."""
    spec = IndexSpec.parse(choice)
    return {space.name: spec for space in spaces}
