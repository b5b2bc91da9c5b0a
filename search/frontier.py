"""`--sampler frontier`: pick the configuration whose optimistic predicted score adds the most hypervolume.

A configuration's parameter cost is known before any training (`PairCosts`: every pair's choices priced
once on a weightless supernet, then summed), only its score is not. So the sampler keeps the candidate
configurations with their exact costs (the whole space when it is small, else a sample that grows around
what was trained), opens with one uniform configuration per learned family (the paper's linear rows,
cheapest first: the model must see each family once before it extrapolates), then predicts every
candidate's score with a Bayesian additive model of the trials so far (`AdditiveModel`) and trains the
untried candidate whose optimistic score (mean + `OPTIMISM` sd) would add the most area to the trained
front of (metric, log10(1 + Delta params)). The cheap end holds most of that area (BENCHMARKS.md, "Search
strategies vs the paper's grid"); a sampler that does not know the costs reaches it only by luck.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
from functools import cached_property
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from indexnas.errors import UserError
from indexnas.cost import PARAMS_REFERENCE_MARGIN, log_params
from indexnas.search import pair_space
from indexnas.search.canonical import canonical_choices, configuration_key
from indexnas.search.record import CHOICES, PARAMS_ADDED, TrialRecord
from indexnas.spec import KEEP, LEARNED_FAMILIES, IndexSpec

log = logging.getLogger("indexnas.search")
ENUMERATE_LIMIT = 20_000  # spaces up to this many configurations are scored whole; larger ones are sampled
SAMPLED = 10_000  # configurations drawn from a larger space (plus the uniform ones and the front's neighbours)
OPTIMISM = 1.0  # sds above the predicted mean a candidate is credited with (upper confidence bound)
MIN_FIT = 3  # observations before the prior's scale is fitted to them (empirical Bayes)
FIRST_SCALE = 0.05  # before that: effects of about 5 % of the host's metric
INTERCEPT_PRIOR = 100.0  # the intercept's prior variance, in units of the effects' (practically flat)
SCALES = (0.25, 0.5, 1.0, 2.0)  # prior sds of the effects tried, times the spread of the observed metric
NOISES = (0.1, 0.2, 0.4, 0.8)  # noise sds tried, times the same spread
Choices = dict[str, str]  # pair -> choice, an o2o-modelwise variant written out ("o2o-modelwise-nl")


class PairCosts:
    """Parameters any configuration adds, from each pair's choices priced once (milliseconds per configuration).

    A pair's index modules are its own, so costs add over pairs; the o2o-modelwise module is shared, so it
    counts once however many pairs use it. Priced on a `surgery.supernet.Supernet` of the host (no training);
    where pairs share a transition (one module for both) every configuration is priced on it whole instead.
    """

    def __init__(self, space: Any) -> None:
        from indexnas.surgery.supernet import Supernet

        self.supernet = supernet = Supernet(space.host, space.graph, space.report, space.mode)
        self.options = supernet.options
        self.single: dict[tuple[str, str], int] = {}
        self.shared: dict[str, int] = {}  # modelwise variant -> its module's parameters
        for pair in space.spaces:
            for choice in expand(pair.choices, pair_space.modelwise_variants(space.spaces)):
                supernet.activate({pair.name: choice})
                self.single[(pair.name, choice)] = supernet.params_added()
        for variant in pair_space.modelwise_variants(space.spaces):
            self.shared[variant] = sum(p.numel() for p in supernet.modelwise[variant].parameters())
        self.shares_transitions = _shares_transitions(supernet.options)

    def __call__(self, choices: Mapping[str, str]) -> int:
        """Parameters added by ``choices`` (pairs not named keep)."""
        if self.shares_transitions:
            self.supernet.activate(choices)
            return self.supernet.params_added()
        total, variants = 0, set()
        for name, choice in choices.items():
            total += self.single[(name, choice)]
            if choice.startswith(pair_space.MODELWISE):
                total -= self.shared[choice]
                variants.add(choice)
        return total + sum(self.shared[v] for v in variants)

    def valid(self, choices: Mapping[str, str]) -> bool:
        """False when pairs sharing a transition were given different learned choices (not a model)."""
        if not self.shares_transitions:
            return True
        from indexnas.surgery import compat

        try:
            compat.resolve(self.options, {**choices, "*": KEEP})
        except UserError:
            return False
        return True


def expand(choices: Sequence[str], variants: Sequence[str]) -> list[str]:
    """A pair's choices with the o2o-modelwise placeholder written out as its variants."""
    return [v for c in choices for v in (variants if c == pair_space.MODELWISE else (c,))]


def _shares_transitions(options: Mapping[str, Any]) -> bool:
    seen: set[str] = set()
    for opts in options.values():
        names = {site.transition.name for site in opts.sites}
        if names & seen:
            return True
        seen |= names
    return False


def candidates(spaces: list[pair_space.PairSpace], rng: random.Random) -> list[Choices]:
    """Every configuration of a space up to `ENUMERATE_LIMIT`, else `SAMPLED` random ones plus the uniform ones;
    one o2o-modelwise variant per configuration (one shared module)."""
    if space_size(spaces) <= ENUMERATE_LIMIT:
        return enumerated(spaces)
    return sampled(spaces, rng) + uniform_configurations(spaces)


def enumerated(spaces: list[pair_space.PairSpace]) -> list[Choices]:
    """Every configuration of the space: those without o2o-modelwise, then those with each of its variants."""
    names = [s.name for s in spaces]
    plain = [[c for c in s.choices if c != pair_space.MODELWISE] for s in spaces]
    out = _combinations(names, plain)
    for variant in pair_space.modelwise_variants(spaces):
        with_variant = [p + ([variant] if pair_space.MODELWISE in s.choices else []) for p, s in zip(plain, spaces)]
        out += [choices for choices in _combinations(names, with_variant) if variant in choices.values()]
    return out


def _combinations(names: list[str], choices: list[list[str]]) -> list[Choices]:
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*choices)]


def sampled(spaces: list[pair_space.PairSpace], rng: random.Random) -> list[Choices]:
    """`SAMPLED` random configurations: a uniform choice per pair and one o2o-modelwise variant for all that pick it."""
    variants = pair_space.modelwise_variants(spaces)
    out = []
    for _ in range(SAMPLED):
        variant = rng.choice(variants) if variants else None
        picks = [rng.choice(s.choices) for s in spaces]
        out.append({s.name: variant if c == pair_space.MODELWISE else c for s, c in zip(spaces, picks, strict=True)})
    return out


def uniform_configurations(spaces: list[pair_space.PairSpace]) -> list[Choices]:
    """One configuration per choice any pair allows: that choice wherever it is allowed, keep elsewhere."""
    variants = pair_space.modelwise_variants(spaces)
    allowed = {s.name: expand(s.choices, variants) for s in spaces}
    return [{name: choice if choice in options else KEEP for name, options in allowed.items()}
            for choice in dict.fromkeys(c for options in allowed.values() for c in options)]


def space_size(spaces: list[pair_space.PairSpace]) -> int:
    """How many configurations the space holds (each o2o-modelwise variant counted)."""
    variants = pair_space.modelwise_variants(spaces)
    plain = math.prod(len([c for c in s.choices if c != pair_space.MODELWISE]) for s in spaces)
    return plain + len(variants) * (math.prod(len(s.choices) for s in spaces) - plain)


def neighbours(choices: Choices, spaces: list[pair_space.PairSpace]) -> list[Choices]:
    """Every configuration one pair away from ``choices`` (how a sampled space grows around the front)."""
    variants = pair_space.modelwise_variants(spaces)
    return [{**choices, s.name: c} for s in spaces for c in expand(s.choices, variants) if c != choices[s.name]]


class AdditiveModel:
    """Bayesian linear regression of the metric on which choice each pair takes (`keep` adds nothing).

    Features: an intercept (the host) and, per pair not kept, the levels of `levels` (learned or not, the
    family, nonlinear, context, the choice, the choice at this pair), so a pair learns from the others. Prior sd of the effects and the noise sd are picked by
    marginal likelihood from `SCALES` x `NOISES` times the observed spread.
    """

    def __init__(self, pairs: Sequence[Mapping[str, Any]]) -> None:
        self.pairs = pairs
        self.index: dict[tuple[str, ...], int] = {("intercept",): 0}

    def columns(self, choices: Choices) -> list[int]:
        """The feature columns ``choices`` switches on (aliases resolved first: `search.canonical`)."""
        row = [0]
        for pair, choice in canonical_choices(choices, self.pairs).items():
            if choice != KEEP:
                row += [self._column(key) for key in self.levels(pair, IndexSpec.parse(choice))]
        return row

    @staticmethod
    def levels(pair: str, spec: IndexSpec) -> list[tuple[str, ...]]:
        """What one pair's choice shares with others, from the broadest (learned or not, at any pair) to
        the choice at this pair: evidence on ``o2o-shared`` says something about ``m2o-nl`` too."""
        kind = "learned" if spec.learned else "baseline"
        keys = [("kind", kind), ("pair-kind", pair, kind), ("family", spec.family)]
        keys += [("nonlinear",)] * spec.nonlinear + [("context",)] * spec.context
        return keys + [("choice", str(spec)), ("pair", pair, str(spec))]

    def matrix(self, rows: Sequence[list[int]]) -> np.ndarray:
        """The design matrix of rows given by their columns, as wide as every column known so far."""
        out = np.zeros((len(rows), len(self.index)))
        for i, row in enumerate(rows):
            out[i, row] = 1.0
        return out

    def _column(self, key: tuple[str, ...]) -> int:
        return self.index.setdefault(key, len(self.index))

    def fit(self, x: np.ndarray, y: np.ndarray, fallback_scale: float) -> Posterior:
        spread = float(np.std(y)) if len(y) >= MIN_FIT and np.std(y) > 0 else fallback_scale
        best: tuple[float, Posterior] | None = None
        for scale, noise in itertools.product(SCALES, NOISES):
            if len(y) < MIN_FIT and (scale, noise) != (1.0, 0.2):
                continue  # too little data to choose: the middle of the grid
            prior = np.full(x.shape[1], (scale * spread) ** 2)
            prior[0] = INTERCEPT_PRIOR * spread ** 2
            posterior = Posterior.of(x, y, prior, (noise * spread) ** 2)
            if best is None or posterior.evidence > best[0]:
                best = (posterior.evidence, posterior)
        assert best is not None
        return best[1]


@dataclass
class Posterior:
    """The additive model's posterior over its weights (mean, covariance) and its log evidence."""

    mean: np.ndarray
    covariance: np.ndarray
    evidence: float

    @classmethod
    def of(cls, x: np.ndarray, y: np.ndarray, prior: np.ndarray, noise: float) -> Posterior:
        precision = np.diag(1.0 / prior) + x.T @ x / noise
        covariance = np.linalg.inv(precision)
        mean = covariance @ x.T @ y / noise
        marginal = x @ np.diag(prior) @ x.T + noise * np.eye(len(y))
        sign, logdet = np.linalg.slogdet(marginal)
        evidence = -0.5 * (y @ np.linalg.solve(marginal, y) + logdet + len(y) * math.log(2 * math.pi))
        return cls(mean, covariance, float(evidence) if sign > 0 else -math.inf)

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and sd of the predicted metric (the model's uncertainty, not the noise)."""
        return x @ self.mean, np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", x, self.covariance, x), 0.0))


def front_height(front: np.ndarray, cost: np.ndarray, floor: float) -> np.ndarray:
    """The best metric the front reaches at or below each cost (``floor`` where it reaches none)."""
    if not len(front):
        return np.full(len(cost), floor)
    order = np.argsort(front[:, 1])
    best = np.maximum.accumulate(front[order, 0])
    index = np.searchsorted(front[order, 1], cost, side="right") - 1
    return np.where(index >= 0, np.maximum(best[np.maximum(index, 0)], floor), floor)


def hypervolume_gain(front: np.ndarray, points: np.ndarray, reference: tuple[float, float]) -> np.ndarray:
    """Area each point of (metric up, cost down) would add to ``front``'s within ``reference`` (worst metric,
    largest cost), for every point at once: the front is a staircase, summed step by step."""
    steps = np.unique(front[:, 1][front[:, 1] < reference[1]])
    starts = np.concatenate([[-np.inf], steps])  # the front's height is constant on [starts[j], ends[j])
    ends = np.concatenate([steps, [reference[1]]])
    heights = np.concatenate([[reference[0]], front_height(front, steps, reference[0])])
    metric, cost = points[:, :1], points[:, 1:]
    width = np.clip(ends[None, :] - np.maximum(starts[None, :], cost), 0.0, None)
    return (width * np.clip(metric - heights[None, :], 0.0, None)).sum(axis=1)


def trained_front(observed: Sequence[FrozenTrial], sign: float) -> np.ndarray:
    """The trained trials as (metric to maximise, log10(1 + Delta params)) points, one row each."""
    return np.array([[sign * t.values[0], float(log_params(TrialRecord.of(t).get(PARAMS_ADDED, 0)))]
                     for t in observed]).reshape(-1, 2)


def prior_scale(y: np.ndarray, seen: Sequence[Choices]) -> float:
    """The effects' scale before the model fits one: `FIRST_SCALE` of the host's metric (else the first trained)."""
    host = [v for v, c in zip(y, seen, strict=True) if all(choice == KEEP for choice in c.values())]
    return FIRST_SCALE * max(abs(host[0] if host else (y[0] if len(y) else 1.0)), 1e-6)


def optimistic_gain(front: np.ndarray, optimistic: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Each candidate's hypervolume gain at its optimistic score and cost; when none would add area, how close each
    comes (its optimistic score over the front's height at its cost)."""
    reference = (float(min(front[:, 0].min() if len(front) else np.inf, optimistic.min())),
                 float(cost.max()) + PARAMS_REFERENCE_MARGIN)
    gain = hypervolume_gain(front, np.stack([optimistic, cost], axis=1), reference)
    if gain.max() <= 0:
        return optimistic - front_height(front, cost, reference[0])
    return gain


@dataclass
class Candidate:
    """One configuration the sampler may pick: its choices, feature columns and log cost."""

    choices: Choices
    columns: list[int]
    log_cost: float


class FrontierSampler(optuna.samplers.BaseSampler):
    """Optuna sampler choosing each trial's whole configuration by optimistic hypervolume gain (see the module).

    Reads the study's trials (their ``choices``, first objective and ``params_added`` user attributes), so it
    resumes, and with several workers it never picks a configuration another worker is running.
    """

    def __init__(self, space: Any, seed: int | None = None, max_params: float | None = None) -> None:
        self.space, self.seed, self.max_params = space, seed, max_params
        self.spaces: list[pair_space.PairSpace] = list(space.spaces)
        self.pairs = list(space.rewritable_pairs)
        self.model = AdditiveModel(self.pairs)
        self.sampled = space_size(self.spaces) > ENUMERATE_LIMIT
        self.chosen: dict[int, dict[str, Any]] = {}
        self.fallback = optuna.samplers.RandomSampler(seed=seed)

    # Priced when first needed: a study that only runs its enqueued grid never pays for it.
    @cached_property
    def costs(self) -> PairCosts:
        return PairCosts(self.space)

    @cached_property
    def pool(self) -> dict[str, Candidate]:
        """The candidates by configuration key (aliases once), each within ``max_params``."""
        pool: dict[str, Candidate] = {}
        for choices in candidates(self.spaces, random.Random(self.seed)):
            self._add(pool, choices)
        log.info("frontier sampler: %d candidate configurations priced", len(pool))
        return pool

    def _add(self, pool: dict[str, Candidate], choices: Choices) -> None:
        key = configuration_key(choices, self.pairs)
        if key in pool or pair_space.params_for(choices, self.spaces) is None or not self.costs.valid(choices):
            return  # known, two o2o-modelwise variants (one shared module), or pairs sharing a transition disagree
        cost = self.costs(choices)
        if self.max_params is None or cost <= self.max_params:
            pool[key] = Candidate(choices, self.model.columns(choices), float(log_params(cost)))

    @cached_property
    def opening(self) -> list[str]:
        """The opening design: each learned family's linear variant at every pair that allows it (the paper's
        linear rows), so that the model has seen every family once before it extrapolates."""
        variants, keys = pair_space.modelwise_variants(self.spaces), []
        for family in LEARNED_FAMILIES:
            choices = {s.name: family if family in expand(s.choices, variants) else KEEP for s in self.spaces}
            key = configuration_key(choices, self.pairs)
            if key in self.pool and any(c != KEEP for c in choices.values()):
                keys.append(key)
        return list(dict.fromkeys(keys))

    # Optuna's sampler interface: the whole configuration is chosen before the trial asks for it.
    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return {}

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if "fixed_params" in trial.system_attrs:  # an enqueued trial (the grid, a retry): nothing to choose
            return
        choices = self.next_configuration(study.get_trials(deepcopy=False), study.directions[0])
        if choices is not None:
            self.chosen[trial.number] = pair_space.params_for(choices, self.spaces) or {}

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        chosen = self.chosen.get(trial.number, {})
        if param_name in chosen:
            return chosen[param_name]
        # every candidate tried (the study cache then answers a repeat), or a parameter the space lacks
        return self.fallback.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self.chosen.pop(trial.number, None)

    # The choice.
    def next_configuration(self, trials: Sequence[FrozenTrial],
                           direction: optuna.study.StudyDirection) -> Choices | None:
        """The untried candidate of largest optimistic hypervolume gain; None when every candidate was tried."""
        sign = 1.0 if direction == optuna.study.StudyDirection.MAXIMIZE else -1.0
        observed = [t for t in trials if t.state == TrialState.COMPLETE and CHOICES in TrialRecord.of(t) and t.values]
        seen = [self._full(TrialRecord.of(t)[CHOICES]) for t in observed]
        if self.sampled:  # a sampled space grows around what was trained
            self._grow(seen)
        tried = self._tried(trials)
        keys = [k for k in self.pool if k not in tried]
        if not keys:
            return None
        opening = [k for k in self.opening if k not in tried]
        if opening:  # a family never trained: its uniform configuration first, the cheapest first
            return self.pool[min(opening, key=lambda k: self.pool[k].log_cost)].choices
        return self._most_promising([self.pool[k] for k in keys], observed, seen, sign)

    def _grow(self, seen: list[Choices]) -> None:
        """Add every neighbour of the trained configurations to the pool (a sampled space)."""
        for choices in seen:
            for neighbour in neighbours(choices, self.spaces):
                self._add(self.pool, neighbour)

    def _tried(self, trials: Sequence[FrozenTrial]) -> set[str]:
        """Every trial that asked for its choices, running ones included (a trial's choices come from its params)."""
        return {configuration_key(self._choices_of(t.params), self.pairs) for t in trials if t.params}

    def _most_promising(self, rows: list[Candidate], observed: list[FrozenTrial], seen: list[Choices],
                        sign: float) -> Choices:
        """The candidate whose optimistic score adds the most area to the trained front (ties: the cheapest, then
        the first); ``sign`` turns the metric into one to maximise."""
        cost = np.array([r.log_cost for r in rows])
        y = np.array([sign * t.values[0] for t in observed])
        front = trained_front(observed, sign)
        mean, sd = self._predict(rows, seen, y)
        gain = optimistic_gain(front, mean + OPTIMISM * sd, cost)
        best = np.flatnonzero(gain >= gain.max() - 1e-12)
        return rows[int(best[np.argmin(cost[best])])].choices

    def _predict(self, rows: list[Candidate], seen: list[Choices], y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and sd of each candidate's metric under the additive model fitted to the trained configurations
        (the prior alone before any trained)."""
        x = self.model.matrix([r.columns for r in rows])
        scale = prior_scale(y, seen)
        if not len(y):
            return np.zeros(len(rows)), np.full(len(rows), scale)
        x_seen = self.model.matrix([self.model.columns(c) for c in seen])
        return self.model.fit(x_seen, y, scale).predict(x)

    def _full(self, choices: Mapping[str, str]) -> Choices:
        """A stored configuration with every pair named (pairs it leaves out keep)."""
        return {s.name: str(choices.get(s.name, KEEP)) for s in self.spaces}

    def _choices_of(self, params: Mapping[str, Any]) -> Choices:
        """Optuna parameters (pair choices, the modelwise variant) as choices."""
        variant = params.get(pair_space.MODELWISE_PARAM)
        return {s.name: variant if params.get(s.name) == pair_space.MODELWISE and variant else
                str(params.get(s.name, KEEP)) for s in self.spaces}
