"""One trial of the study: rewrite the warm host with the sampled configuration, check its budget, answer a
repeat from the cache, fine-tune and evaluate it, store everything (metrics, costs, timing, its checkpoint).

A trial's failure is the trial's: it is recorded (``failure``: kind and message) and raised as TrialFailure,
which the scheduling loop (search/schedule.py) lets Optuna catch, so the study goes on.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import time
from typing import Any, NoReturn

import optuna
import torch
from torch import nn

from indexnas.errors import UserError, describe
from indexnas.seeding import seed_everything
from indexnas.search import cache, halving, objectives, record, scoring
from indexnas.search.checkpoints import checkpoint, checkpoint_path, save_or_stop
from indexnas.search.context import SearchContext, budget, is_out_of_memory, train_and_score
from indexnas.search.problem import Budget, DivergedError, MetricNotFinite
from indexnas.search.record import TrialRecord
from indexnas.search.settings import SearchSettings
from indexnas.search.summary import describe_choices

log = logging.getLogger("indexnas.search")


class TrialFailure(Exception):
    """A trial that could not produce a result (diverged, out of memory, model error)."""


class TrialRun:
    """One trial: rewrite the warm host, check the budget, fine-tune, evaluate, store everything."""

    def __init__(self, context: SearchContext) -> None:
        self.context = context
        self.trained = False  # whether the last trial got past the budget gate into training

    def __call__(self, trial: optuna.Trial) -> tuple[float, ...]:

        ctx, settings, problem = self.context, self.context.settings, self.context.problem
        self.trained = False
        record.write(trial, record.WORKER, f"{socket.gethostname()}-{os.getpid()}")
        seed = scoring.trial_seed(settings.seed, trial.number)
        record.write(trial, record.SEED, seed)
        seed_everything(seed)  # the IndexNets' initial weights, like the trial's batches
        try:
            suggestion = ctx.space.suggest(trial, settings.max_params, settings.max_gflops)
        except optuna.TrialPruned:  # over budget: nothing was trained
            record.write(trial, record.TRAIN_STEPS, 0)
            raise
        except Exception as error:  # a choice the model cannot take, or the user's model failing in surgery
            self._fail(trial, "model_error", describe(error))
        if (original := cache.find_duplicate(trial, suggestion.choices, ctx.space.rewritable_pairs)) is not None:
            record.write(trial, record.TRAIN_STEPS, 0)
            return cache.answer(trial, original)
        if settings.prune != "off":
            prune_repeat(trial)
        model, self.trained = suggestion.model, True
        limit = trial_budget(settings, trial, seed, self.rung_reports(trial))
        try:
            seed_everything(seed)
            facts, train_seconds, metrics = train_and_score(problem, model, limit)
            device = str(next(model.parameters()).device)
            latency = measure_latency(model, ctx.space.inputs[0], device)
        except optuna.TrialPruned:
            pruned_at = TrialRecord.of(trial).get(record.PRUNED_AT)
            record.write(trial, record.TRAIN_STEPS, pruned_at)
            log.info("trial %d (%s) pruned at step %s: %s", trial.number, describe_choices(suggestion.choices),
                     pruned_at, halving.describe_rung_scores(TrialRecord.of(trial).get(record.RUNG_SCORES, {}),
                                                              next(iter(problem.directions))))
            raise
        except DivergedError as error:
            record.write(trial, record.TRAIN_STEPS, error.step)
            self._fail(trial, "diverged", str(error))
        except MetricNotFinite as error:  # Optuna would fail the trial without saying why
            self._fail(trial, "no_metric", f"{error}: the validation data gave nothing to score (e.g. depth maps "
                       "without a valid pixel) or the model's output was not finite")
        except Exception as error:  # out of memory, or the model raised (a UserError: e.g. a wrong output shape)
            self._fail(trial, "oom" if is_out_of_memory(error) else "model_error", describe(error))
        check_rungs_reported(limit, facts)
        record.write(trial, record.METRICS, metrics)
        record.write(trial, record.TRAIN_STEPS, facts.get("steps", settings.budget_steps))
        scoring.record(trial, getattr(problem, "item_scores", {}), ctx.host_summary)
        record.write(trial, record.TRAIN_SECONDS, train_seconds)
        record.write(trial, record.STEPS, facts.get("steps"))
        record.write(trial, record.DEVICE, facts.get("device", device))
        record.write(trial, record.LATENCY_MS, latency)
        path = checkpoint_path(settings.out_dir, trial.number)
        save_or_stop(checkpoint(model, suggestion.recipe, problem, metrics, suggestion.costs(), trial.number,
                                settings.study), path, "the checkpoint")
        record.write(trial, record.CHECKPOINT, str(path))
        primary = next(iter(problem.directions))
        log.info("trial %d (%s): %s %.4g, +%s parameters, %.3f GFLOPs, trained %.0f s", trial.number,
                 TrialRecord.of(trial).get(record.UNIFORM) or describe_choices(suggestion.choices), primary, metrics[primary],
                 f"{suggestion.params_added:,}", suggestion.gflops, train_seconds)
        return objectives.values(objectives.parse(settings.objectives), problem.directions, metrics, suggestion.costs())

    def rung_reports(self, trial: optuna.Trial) -> halving.RungReports | None:
        """The trial's rung reporter when the search prunes (None: it trains without rung scores)."""
        settings, problem = self.context.settings, self.context.problem
        if settings.prune == "off":
            return None
        return halving.RungReports(trial, objectives.parse(settings.objectives), problem.directions,
                                    settings.reduction_factor)

    @staticmethod
    def _fail(trial: optuna.Trial, kind: str, message: str) -> NoReturn:
        record.write(trial, record.FAILURE, {"kind": kind, "message": message[:2000]})
        log.warning("trial %d failed (%s): %s", trial.number, kind, message.splitlines()[0] if message else kind)
        raise TrialFailure(f"{kind}: {message}")


def prune_repeat(trial: optuna.Trial) -> None:
    """Prune a repeat of a configuration stopped at a rung at once (`duplicate_of` its number), as a repeat of
    a completed one is answered from it: no configuration is trained twice."""
    pruned = halving.pruned_original(trial, TrialRecord.of(trial)[record.CANONICAL])
    if pruned is None:
        return
    for attribute, value in ((record.DUPLICATE_OF, pruned.number), (record.TRAIN_STEPS, 0),
                             (record.PRUNED_AT, TrialRecord.of(pruned)[record.PRUNED_AT])):
        record.write(trial, attribute, value)
    log.info("trial %d repeats trial %d, pruned at a rung: pruned without training", trial.number, pruned.number)
    raise optuna.TrialPruned(f"a repeat of trial {pruned.number}, pruned at a rung")


def trial_budget(settings: SearchSettings, trial: optuna.Trial, seed: int,
                 reports: halving.RungReports | None) -> Budget:
    """Trial ``trial``'s budget: its own seed, and the rung steps it reports at when the search prunes."""
    limit = dataclasses.replace(budget(settings, f"trial {trial.number}"), seed=seed)
    if reports is None:
        return limit
    return dataclasses.replace(limit, rungs=halving.rung_steps(settings.budget_steps, settings.rungs), report=reports)


def check_rungs_reported(limit: Budget, facts: dict[str, Any]) -> None:
    """A trial that trained past a rung without reporting it: the problem's train() cannot take part in pruning."""
    if not limit.rungs or limit.report is None:
        return
    passed = [step for step in limit.rungs if step < facts.get("steps", limit.steps or 0)]
    if passed and not limit.report.scores:
        raise UserError(f"pruning needs the training to report its metrics at the rung steps "
                        f"({', '.join(map(str, limit.rungs))}), and train() did not",
                        "call budget.report(step, metrics) in train() after each step in budget.rungs (metrics as "
                        "evaluate() returns them), or search with prune='off'")


def measure_latency(model: nn.Module, example: torch.Tensor, device: str, repeats: int = 5) -> float:
    """Median inference time in milliseconds for batch 1 at the example's size."""
    model = model.eval().to(device)
    x = example[:1].to(device)
    times = []
    with torch.no_grad():
        model(x)  # warm-up
        for _ in range(repeats):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(x)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append((time.perf_counter() - start) * 1000)
    return sorted(times)[len(times) // 2]
