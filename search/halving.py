"""Multi-fidelity pruning (`--prune halving`): asynchronous successive halving on the study's own objectives.

A trial reports its searched metrics after each rung step (a fraction of the budget, `rung_steps`); it
trains on only if it is in the best 1/eta of the rung's records so far (its own included), ranked by
non-domination over the study's objectives with the rung's metrics in place of the final ones.

Why our own rule and not Optuna's pruners: in Optuna 5.0 `Trial.report` and `Trial.should_prune` raise
NotImplementedError for multi-objective studies, and the study is multi-objective by default (the metric
against parameters added). Why non-domination rank and not the metric alone: a cheap configuration with a
middling rung score may still be on the final front (nothing at its cost beats it); ranking by the metric
alone would prune exactly the cheap end of the front. Why the rungs default to 1/2 only: the score at
half the budget ranks the paper's grid as the final score does (Spearman 0.91), at a quarter it does not
(0.68; BENCHMARKS.md, "Early vs final scores"). Never pruned: the host and the paper grid's rows (they are
the reference a search is judged against), and no trial before eta records exist at its rung.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
import optuna
from optuna.trial import TrialState

from indexnas.errors import UserError
from indexnas.search import objectives, record
from indexnas.search.cache import is_duplicate
from indexnas.search.record import PRUNED_AT, RUNG_SCORES, TrialRecord



@dataclass(frozen=True)
class RungRecord:
    """One trial's standing at a rung: its objective values there (the rung metrics, then its costs)."""

    number: int
    values: tuple[float, ...]


def rung_steps(budget_steps: int, fractions: Sequence[float]) -> tuple[int, ...]:
    """The steps at which trials report: each fraction of the budget, rounded, inside (0, budget)."""
    steps = sorted({max(1, round(budget_steps * f)) for f in fractions})
    return tuple(step for step in steps if step < budget_steps)


def parse_rungs(text: str | Sequence[float]) -> tuple[float, ...]:
    """``--rungs`` ("0.5" or "0.25,0.5") as fractions of the budget, each strictly between 0 and 1."""
    parts = [p for p in (text.split(",") if isinstance(text, str) else text) if str(p).strip()]
    fix = "give fractions of the budget between 0 and 1, comma-separated, e.g. --rungs 0.5"
    try:
        fractions = tuple(sorted({float(p) for p in parts}))
    except ValueError:
        raise UserError(f"--rungs {text!r} is not a list of numbers", fix) from None
    if not fractions or not all(0 < f < 1 for f in fractions):
        raise UserError(f"--rungs {text!r} must hold fractions strictly between 0 and 1", fix)
    return fractions


def non_domination_ranks(points: Sequence[Sequence[float]], directions: Sequence[str]) -> list[int]:
    """Each point's front: 0 for the non-dominated points, 1 for those only front 0 dominates, and so on."""
    signs = [-1.0 if d == "maximize" else 1.0 for d in directions]
    costs = [[s * v for s, v in zip(signs, p, strict=True)] for p in points]
    ranks, left, rank = [0] * len(costs), set(range(len(costs))), 0

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))

    while left:
        front = {i for i in left if not any(dominates(costs[j], costs[i]) for j in left if j != i)}
        for i in front:
            ranks[i] = rank
        left -= front
        rank += 1
    return ranks


def keep_at_rung(own: RungRecord, records: Sequence[RungRecord], eta: int, directions: Sequence[str]) -> bool:
    """Whether ``own`` trains on: fewer than eta records at the rung (its own included) keeps every trial;
    otherwise it must be in the best 1/eta, i.e. fewer than len/eta records lie on better fronts than its own."""
    everyone = [r for r in records if r.number != own.number] + [own]
    if len(everyone) < eta:
        return True
    ranks = non_domination_ranks([r.values for r in everyone], directions)
    better = sum(rank < ranks[-1] for rank in ranks[:-1])
    return better < len(everyone) / eta


def rung_records(study: optuna.Study, step: int, names: tuple[str, ...],
                 metric_directions: Mapping[str, str]) -> list[RungRecord]:
    """Every trial's record at ``step`` (running, complete or pruned: whoever reached it with finite scores;
    a NaN would never be dominated and would hold a place on the first front)."""
    records = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED)):
        scores = TrialRecord.of(trial).get(RUNG_SCORES, {}).get(str(step))
        if scores is not None and all(m in scores and math.isfinite(scores[m]) for m in metric_directions):
            records.append(RungRecord(trial.number, objectives.values(names, metric_directions, scores,
                                                                        trial.user_attrs)))
    return records


class RungReports:
    """A trial's ``budget.report``: stores each rung's metrics on the trial and stops it (`optuna.TrialPruned`)
    when it is neither the host nor a paper-grid row and not in the rung's best 1/eta."""

    def __init__(self, trial: optuna.Trial, names: tuple[str, ...], metric_directions: Mapping[str, str],
                 eta: int) -> None:
        self.trial, self.names, self.metric_directions = trial, names, dict(metric_directions)
        self.eta, self.prune = eta, record.UNIFORM not in TrialRecord.of(trial)  # the host and the paper grid: never
        self.scores: dict[str, dict[str, float]] = {}

    def __call__(self, step: int, metrics: Mapping[str, float]) -> None:
        missing = [m for m in self.metric_directions if m not in metrics]
        if missing:
            raise UserError(f"budget.report({step}, ...) got no {', '.join(missing)}",
                            "report every metric the search optimises, as evaluate() returns them")
        scores = {str(k): float(v) for k, v in metrics.items()}
        self.scores[str(step)] = scores
        record.write(self.trial, RUNG_SCORES, self.scores)
        if not self.prune or not all(math.isfinite(scores[m]) for m in self.metric_directions):
            return  # a non-finite rung score is left to the final evaluation to report as the trial's failure
        own = RungRecord(self.trial.number, objectives.values(self.names, self.metric_directions, scores,
                                                              self.trial.user_attrs))
        records = rung_records(self.trial.study, step, self.names, self.metric_directions)
        if not keep_at_rung(own, records, self.eta, objectives.directions(self.names, self.metric_directions)):
            record.write(self.trial, PRUNED_AT, step)
            raise optuna.TrialPruned(f"not in the best 1/{self.eta} of {len(records)} records at step {step}")


def pruned_original(trial: optuna.Trial, key: str) -> optuna.trial.FrozenTrial | None:
    """The trial stopped at a rung with configuration ``key`` (search.cache's canonical key), if any: a repeat of
    it is pruned at once rather than trained again (as a repeat of a completed trial is answered from it)."""
    for done in trial.study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)):
        stored = TrialRecord.of(done)
        if stored.get(record.CANONICAL) == key and PRUNED_AT in stored and not is_duplicate(done):
            return done
    return None


def rung_pruned(trial: optuna.trial.FrozenTrial) -> bool:
    """True for a trial stopped at a rung (not one pruned over budget, which never trained)."""
    return trial.state == TrialState.PRUNED and PRUNED_AT in TrialRecord.of(trial)


def describe_rung_scores(scores: Mapping[str, Mapping[str, float]], metric: str) -> str:
    """e.g. 'step 75: psnr 24.1' for a log line."""
    return ", ".join(f"step {step}: {metric} {values.get(metric, math.nan):.4g}" for step, values in scores.items())
