"""What every trial of one worker shares: the built problem, its host analysed once and warm-started once, and
the one train-then-evaluate sequence the warm host, every trial and every retraining go through."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from indexnas.errors import UserError, describe
from indexnas.seeding import seed_everything
from indexnas.search import pair_space
from indexnas.search.checkpoints import load_warm_host, save_or_stop
from indexnas.search.problem import Budget, DivergedError, Problem, ProblemFactory, check_metrics
from indexnas.search.settings import SearchSettings
from indexnas.search.space import SearchSpace

log = logging.getLogger("indexnas.search")


@dataclass
class SearchContext:
    """What every trial of one worker shares: the problem (host, training, scoring) and the analysed host."""

    settings: SearchSettings
    problem: Problem
    space: SearchSpace  # the host analysed once per worker; each trial rewrites a copy
    host_summary: dict[str, Any]

    @property
    def pairs(self) -> list[dict[str, Any]]:
        return self.space.rewritable_pairs

    @property
    def spaces(self) -> list[pair_space.PairSpace]:
        return self.space.spaces

    def train_configuration(self, choices: dict[str, str], seed: int, label: str) -> tuple[dict[str, Any], float,
                                                                                          dict[str, float]]:
        """Fine-tune the warm host rewritten with ``choices`` as a trial does (its IndexNets initialised and
        its batches drawn from ``seed``): (what the training reports, its seconds, the checked metrics)."""
        seed_everything(seed)
        model = self.space.rewrite(choices).model
        seed_everything(seed)
        return train_and_score(self.problem, model, dataclasses.replace(budget(self.settings, label), seed=seed))


def prepare(settings: SearchSettings, problem: Problem | ProblemFactory) -> SearchContext:
    """Build the problem (a factory is called with the settings), check it, analyse its host once, warm-start it."""
    if not isinstance(problem, Problem):
        problem = problem(settings)
    problem.check()
    space = SearchSpace(problem.host, problem.example, settings.mode, name=settings.model)
    host_summary = warm_start(settings, problem)
    problem.host.cpu()  # trials copy the host with its analysed graph, which runs on the example input's device
    return SearchContext(settings, problem, space, host_summary)


def warm_start(settings: SearchSettings, problem: Problem) -> dict[str, Any]:
    """Train the host once (or load the cached weights) so that every trial is a fine-tune."""
    path = settings.out_dir / "host.pt"
    if not settings.warm_start:
        return {"trained": False}
    if path.exists():
        return load_warm_host(path, settings, problem.host)
    try:
        log.info("training the host once (%d steps); every trial fine-tunes from its weights", settings.budget_steps)
        facts, train_seconds, metrics = train_and_score(problem, problem.host, budget(settings, "host"))
    except UserError:
        raise
    except Exception as error:  # the user's model fails on the data: no trial can succeed
        kind = ("diverged" if isinstance(error, DivergedError) else
                "ran out of memory" if is_out_of_memory(error) else "failed")
        raise UserError(f"training the host {settings.model} {kind}: {describe(error)}",
                        problem.host_failure_fix()) from error
    summary = {"trained": True, "metrics": metrics, "train_seconds": train_seconds, "steps": facts.get("steps"),
               "item_scores": getattr(problem, "item_scores", {})}
    save_or_stop({"state_dict": problem.host.state_dict(), "summary": summary, "identity": settings.identity()}, path,
                 "the warm host")
    return summary


def train_and_score(problem: Problem, model: nn.Module, limit: Budget) -> tuple[dict[str, Any], float, dict[str, float]]:
    """Train ``model`` within ``limit``, then evaluate it: (what the training reports, its seconds, the checked
    metrics). The warm host and every trial go through this one sequence."""
    start = time.perf_counter()
    facts = problem.train(model, limit) or {}
    seconds = time.perf_counter() - start
    return facts, seconds, check_metrics(problem.evaluate(model), problem.directions)


def budget(settings: SearchSettings, label: str) -> Budget:
    """A trial's (or the host's) training budget from the settings."""
    return Budget(settings.budget_steps, settings.budget_seconds, label, settings.progress)


def is_out_of_memory(error: BaseException) -> bool:
    """GPU or CPU allocation failure (CUDA's OutOfMemoryError, the CPU allocator's RuntimeError, MemoryError)."""
    text = str(error).lower()
    return isinstance(error, (torch.cuda.OutOfMemoryError, MemoryError)) or (
        isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text))
