"""What a study searches on: a host model, how to train a trial's model for a budget, how to score it.

The search (search/run.py) sees only this interface. `TaskProblem` (tasks/problem.py) is the CLI's: one of the four
built-in tasks on its offline data or a dataset folder; `CallableProblem` is `indexnas.search`'s: the
user's model object with their own ``train(model, budget)`` and ``evaluate(model) -> {metric: value}``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from indexnas.errors import UserError

DIRECTIONS = ("maximize", "minimize")


@dataclass(frozen=True)
class Budget:
    """One training run's budget: whichever of steps and seconds ends first (None: no limit of that kind)."""

    steps: int | None
    seconds: float | None = None
    label: str = "train"  # e.g. "host" or "trial 7", for progress bars
    progress: bool = False  # whether a progress bar is welcome
    seed: int | None = None  # the run's seed (search.scoring.trial_seed for a trial; None: the problem's own)
    # Multi-fidelity pruning (search.halving): after each of these steps, train() calls report(step, metrics)
    # with the metrics evaluate() would give then; report raises optuna.TrialPruned when the trial should stop
    # (let it propagate). Empty when the search does not prune.
    rungs: tuple[int, ...] = ()
    report: Callable[[int, Mapping[str, float]], None] | None = None


class Problem(ABC):
    """A host, its example input, and how its rewritten copies are trained and scored."""

    label: str  # how reports and messages name the model
    host: nn.Module
    example: torch.Tensor  # the input surgery analyses and FLOPs are counted at
    directions: dict[str, str]  # the searched metrics, in objective order (the first is the primary one)
    source: dict[str, Any] | None = None  # how `indexnas.load` rebuilds the host (None: the user passes it)
    task: str = "custom"

    @abstractmethod
    def train(self, model: nn.Module, budget: Budget) -> Mapping[str, Any] | None:
        """Train ``model`` in place within ``budget``; may return facts to store (e.g. steps, device)."""

    @abstractmethod
    def evaluate(self, model: nn.Module) -> Mapping[str, float]:
        """Score a trained model: at least every metric in ``directions``."""

    def check(self) -> None:
        """Find a model/data mismatch before anything trains (default: nothing to check)."""

    def host_failure_fix(self) -> str:
        """What to do when the host itself cannot be trained."""
        return "check that train() and evaluate() work on the untouched model"

    def path_scorer(self) -> Callable[[nn.Module], float]:
        """How the one-shot search scores a supernet path (search/oneshot.py): the primary metric after the
        path's BatchNorm statistics are re-estimated. A problem that cannot re-estimate them refuses."""
        raise UserError("strategy 'oneshot' needs a problem that re-estimates BatchNorm statistics before scoring "
                        "each path (the built-in tasks do, on their recalibration crops)",
                        "use strategy 'trials' for your own train/evaluate callables")


ProblemFactory = Callable[[Any], Problem]  # builds the problem from the search settings (picklable for workers)


def check_directions(directions: Mapping[str, str]) -> dict[str, str]:
    """``{metric: "maximize" | "minimize"}``, at least one, metric names that do not clash with the costs."""
    if not isinstance(directions, Mapping) or not directions:
        raise UserError(f"directions must map metric names to 'maximize' or 'minimize', got {directions!r}",
                        "e.g. directions={'accuracy': 'maximize'}")
    for name, direction in directions.items():
        if not isinstance(name, str) or name in ("params_added", "gflops") or direction not in DIRECTIONS:
            raise UserError(f"bad objective {name!r}: {direction!r}",
                            "name each metric your evaluate() returns (not params_added or gflops, which the "
                            "search adds) and say 'maximize' or 'minimize'")
    return dict(directions)


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite; a problem's train() raises it
    (the built-in training loop does) and the study fails that trial as `diverged`."""

    def __init__(self, step: int, loss: float) -> None:
        self.step = step
        self.loss = loss
        super().__init__(f"training diverged: loss {loss} at step {step}")


class MetricNotFinite(ValueError):
    """A searched metric came out NaN or infinite: nothing to score, or the model's output was not finite."""


def check_metrics(metrics: object, directions: Mapping[str, str]) -> dict[str, float]:
    """The evaluation's metrics as floats; a missing or non-finite searched metric is an error of the trial."""
    if not isinstance(metrics, Mapping):
        raise TypeError(f"evaluate() returned {type(metrics).__name__}, not a mapping of metric names to numbers")
    missing = [name for name in directions if name not in metrics]
    if missing:
        raise KeyError(f"evaluate() returned no {', '.join(missing)} (it returned {', '.join(map(str, metrics))})")
    values = {str(name): float(value) for name, value in metrics.items()}
    bad = [name for name in directions if not math.isfinite(values[name])]
    if bad:
        raise MetricNotFinite(f"evaluate() returned non-finite {', '.join(f'{n}={values[n]}' for n in bad)}")
    return values


class CallableProblem(Problem):
    """A user's model object with their own training and evaluation callables (`indexnas.search`)."""

    def __init__(self, model: nn.Module, example: torch.Tensor, train: Callable[[nn.Module, Budget], Any],
                 evaluate: Callable[[nn.Module], Mapping[str, float]], directions: Mapping[str, str],
                 label: str | None = None) -> None:
        if not isinstance(model, nn.Module):
            raise UserError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not callable(train) or not callable(evaluate):
            raise UserError("train and evaluate must be callables",
                            "train(model, budget) trains in place; evaluate(model) returns {metric: value}")
        self.host, self.example = model, example
        self._train, self._evaluate = train, evaluate
        self.directions = check_directions(directions)
        self.label = label or type(model).__name__

    def train(self, model: nn.Module, budget: Budget) -> Mapping[str, Any] | None:
        facts = self._train(model, budget)
        return facts if isinstance(facts, Mapping) else None

    def evaluate(self, model: nn.Module) -> Mapping[str, float]:
        return self._evaluate(model)


def fingerprint(model: nn.Module) -> str:
    """A user's host by class and weight shapes: a cached warm start of another model is never reused."""
    import hashlib

    shapes = ";".join(f"{k}:{tuple(v.shape)}" for k, v in model.state_dict().items())
    kind = f"{type(model).__module__}.{type(model).__qualname__}"
    return f"{kind}:{hashlib.sha256(shapes.encode()).hexdigest()[:16]}"
