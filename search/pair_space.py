"""The search space: one categorical per pair over the full choices it allows; modelwise sharing per model.

Each pair is one Optuna parameter, named after the pair (``<pair>``), whose values are the complete
choices the surgery allows there (``keep``, ``max``, ``holistic-nl``, ``m2o-nl-c``, ...): a value means
the same thing at every trial, and TPE learns one distribution per pair over what the pair can really
take. Pairs that pick ``o2o-modelwise`` share one IndexNet, whose variant is the model-level parameter
``modelwise`` (asked only when some pair picks it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import optuna

from indexnas.spec import BASELINE_FAMILIES, KEEP, LEARNED_FAMILIES, IndexSpec

MODELWISE = "o2o-modelwise"
MODELWISE_PARAM = "modelwise"  # the model-level parameter: which variant the shared O2O IndexNet is
VARIANTS = ((False, False), (True, False), (False, True), (True, True))  # (nonlinear, context)


@dataclass(frozen=True)
class PairSpace:
    """The choices open to one pair, and the modelwise variants it allows (the shared module's options)."""

    name: str
    choices: tuple[str, ...]  # in a fixed order: Optuna's categorical needs the same list every trial
    modelwise: tuple[str, ...] = ()  # the o2o-modelwise variants allowed here (empty: modelwise not allowed)

    @classmethod
    def from_allowed(cls, name: str, allowed: Iterable[IndexSpec | str]) -> PairSpace:
        specs = {IndexSpec.parse(s) for s in allowed}
        specs.add(IndexSpec(KEEP))
        order = [IndexSpec(f) for f in (KEEP, *BASELINE_FAMILIES)]
        order += [IndexSpec(f, nl, c) for f in LEARNED_FAMILIES for nl, c in VARIANTS]
        choices = [str(s) for s in order if s in specs and not s.modelwise]
        modelwise = tuple(str(s) for s in order if s in specs and s.modelwise)
        if modelwise:
            choices.append(MODELWISE)
        return cls(name, tuple(choices), modelwise)


def modelwise_variants(spaces: list[PairSpace]) -> tuple[str, ...]:
    """The o2o-modelwise variants every pair offering modelwise allows (one module serves them all)."""
    offering = [set(space.modelwise) for space in spaces if space.modelwise]
    if not offering:
        return ()
    common = set.intersection(*offering)
    first = next(space.modelwise for space in spaces if space.modelwise)
    return tuple(v for v in first if v in common)


def suggest_choices(trial: optuna.Trial, spaces: list[PairSpace]) -> dict[str, IndexSpec]:
    """Ask the trial for one IndexSpec per pair (define-by-run)."""
    picked = {space.name: trial.suggest_categorical(space.name, space.choices) for space in spaces}
    shared: IndexSpec | None = None
    if MODELWISE in picked.values():
        shared = IndexSpec.parse(trial.suggest_categorical(MODELWISE_PARAM, modelwise_variants(spaces)))
    return {name: shared if choice == MODELWISE and shared is not None else IndexSpec.parse(choice)
            for name, choice in picked.items()}


def params_for(choices: Mapping[str, IndexSpec | str], spaces: list[PairSpace]) -> dict[str, Any] | None:
    """The Optuna parameters that reproduce ``choices`` (for enqueueing), or None if not in the space."""
    params: dict[str, Any] = {}
    by_name = {space.name: space for space in spaces}
    for name, choice in choices.items():
        spec = IndexSpec.parse(choice)
        if name not in by_name:
            return None
        if spec.modelwise:
            if str(spec) not in modelwise_variants(spaces):
                return None
            if params.get(MODELWISE_PARAM, str(spec)) != str(spec):
                return None  # one shared module cannot be two variants
            params[name], params[MODELWISE_PARAM] = MODELWISE, str(spec)
        elif str(spec) in by_name[name].choices:
            params[name] = str(spec)
        else:
            return None
    return params


def uniform(spaces: list[PairSpace], choice: IndexSpec | str) -> dict[str, IndexSpec]:
    """The same choice at every pair (the paper's uniform configurations)."""
    spec = IndexSpec.parse(choice)
    return {space.name: spec for space in spaces}
