"""The samplers a search can run, one entry per `--sampler` name: why it is offered, and how it is built.

search/settings.py takes its SAMPLERS (the CLI's choices) from this registry's names, and the command line
parser must load no Optuna (tests/contracts/test_imports.py): so Optuna and the frontier sampler are imported
when a sampler is built, not when this module is.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from indexnas.errors import UserError

if TYPE_CHECKING:
    import optuna

    from indexnas.search.space import SearchSpace


class SamplerSettings(Protocol):
    """What building a sampler reads of the search's settings (`search.settings.SearchSettings`)."""

    sampler: str
    seed: int
    max_params: float | None


Build = Callable[["SamplerSettings", int, "SearchSpace | None"], "optuna.samplers.BaseSampler"]


@dataclass(frozen=True)
class SamplerEntry:
    """One sampler: what it is and why it is offered, and its builder (settings, seed, analysed host)."""

    why: str
    build: Build


def _tpe(settings: SamplerSettings, seed: int, space: SearchSpace | None) -> optuna.samplers.BaseSampler:
    import optuna

    with warnings.catch_warnings():  # `group` is experimental in Optuna; we rely on it knowingly
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # constant liar: other processes (this command's workers, or other machines) may be running trials
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True)


def _nsga2(settings: SamplerSettings, seed: int, space: SearchSpace | None) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.NSGAIISampler(seed=seed)


def _random(settings: SamplerSettings, seed: int, space: SearchSpace | None) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


def _frontier(settings: SamplerSettings, seed: int, space: SearchSpace | None) -> optuna.samplers.BaseSampler:
    if space is None:
        raise ValueError("the frontier sampler needs the analysed host (space=)")
    from indexnas.search.frontier import FrontierSampler

    return FrontierSampler(space, seed=seed, max_params=settings.max_params)


REGISTRY: dict[str, SamplerEntry] = {
    "tpe": SamplerEntry("Optuna's multivariate TPE (grouped, constant liar for parallel workers): the model-based "
                        "default of Optuna", _tpe),
    "nsga2": SamplerEntry("Optuna's NSGA-II: the genetic multi-objective baseline", _nsga2),
    "random": SamplerEntry("uniform random configurations: the baseline every model-based sampler must beat", _random),
    "frontier": SamplerEntry("search/frontier.py: exact costs, an additive model of the metric, optimistic "
                             "hypervolume gain; won the strategy benchmark (BENCHMARKS.md)", _frontier),
}


def make_sampler(settings: SamplerSettings, seed_offset: int = 0,
                 space: SearchSpace | None = None) -> optuna.samplers.BaseSampler:
    """The study's sampler (``settings.sampler``), seeded ``settings.seed + seed_offset``; ``space`` (the analysed
    host) is needed by ``frontier``, which prices configurations."""
    entry = REGISTRY.get(settings.sampler)
    if entry is None:
        raise UserError(f"unknown sampler {settings.sampler!r}", f"use one of: {', '.join(REGISTRY)}")
    return entry.build(settings, settings.seed + seed_offset, space)
