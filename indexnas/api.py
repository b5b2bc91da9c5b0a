"""The Python ways in: `search` over your model and callables, `suggest` in your own Optuna objective,
`load` a searched trial as a ready model, `apply` a recipe (or a trial's) to a model you retrain.

All four use the machinery the CLI uses (search.run, search.space, surgery.recipe), not copies of it.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from indexnas.errors import UserError
from indexnas.search.export import rebuild
from indexnas.search.problem import Budget
from indexnas.search.record import RECIPE, TrialRecord
from indexnas.search.settings import SearchSettings, api_defaults, default_out
from indexnas.search.space import SearchSpace, Suggestion, suggest

__all__ = ["Budget", "SearchSpace", "Suggestion", "apply", "load", "rebuild", "search", "suggest"]

if TYPE_CHECKING:
    import optuna


def search(model: nn.Module, example_input: torch.Tensor, *, train: Callable[[nn.Module, Budget], Any],
           evaluate: Callable[[nn.Module], Mapping[str, float]], directions: Mapping[str, str], report: bool = True,
           name: str | None = None, **keywords: Any) -> optuna.Study:
    """Search per-pair IndexNet choices of ``model`` with your own training and evaluation.

    ``train(model, budget)`` trains a trial's rewritten copy in place (``budget.steps`` / ``budget.seconds``);
    ``evaluate(model)`` returns ``{metric: value}`` with every metric named in ``directions``
    (``{"accuracy": "maximize"}``). The study's objectives are those metrics, then parameters added
    (``objectives="metric,params,gflops"`` adds GFLOPs at ``example_input``). As `indexnas search`: the untouched host and the paper's uniform grid
    first, the host trained once (warm start), budgets checked before training, resumable under the same
    ``study`` name, Pareto-optimal weights kept in ``out`` (a path; default runs/STUDY) with a report.
    ``prune="halving"``: ``train`` calls ``budget.report(step, metrics)`` after each step in ``budget.rungs``
    (``rungs``: fractions of ``budget_steps``) and lets the `optuna.TrialPruned` it may raise propagate; a train
    that never reports stops the search with an error. ``retrain_seeds``: each trial of the final Pareto front
    is trained that many more times with other seeds (mean and sd of the metric in the report).
    The keywords after ``name`` are settings declared in search/settings.py (their help is there).
    """
    from indexnas.search.problem import CallableProblem, fingerprint
    from indexnas.search.run import run_search

    defaults = api_defaults()
    unknown = sorted(set(keywords) - set(defaults))
    if unknown:  # as Python says it of a function that spells its keywords out
        raise TypeError(f"search() got an unexpected keyword argument {unknown[0]!r}")
    options = {**defaults, **keywords}
    problem = CallableProblem(model, example_input, train, evaluate, directions, label=name)
    study = options["study"] or f"custom-{problem.label}-{options['mode']}"
    out = options["out"] if options["out"] is not None else default_out(study)
    settings = SearchSettings(**{**options, "study": study, "out": out}, task="custom", model=problem.label,
                              host_fingerprint=fingerprint(model))
    result = run_search(settings, problem)
    if report:
        from indexnas.reports import write_report

        write_report(result, settings.out_dir / "report", force=True)
    return result


def _signature_with_settings(function: Callable[..., Any]) -> inspect.Signature:
    """``function``'s signature with its ``**keywords`` spelt out: one per setting declared for the Python API,
    with its type and default (what help() and IDEs show)."""
    types = {field.name: field.type for field in dataclasses.fields(SearchSettings)}  # text, like this module's
    declared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                  annotation=f"{types[name]} | None" if default is None and "None" not in types[name]
                                  else types[name])
                for name, default in api_defaults().items()]
    fixed = [p for p in inspect.signature(function).parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD]
    return inspect.signature(function).replace(parameters=[*fixed, *declared])


search.__signature__ = _signature_with_settings(search)


def load(path: str | os.PathLike, model: nn.Module | None = None) -> nn.Module:
    """A searched trial's checkpoint as a ready model in eval mode: the host rebuilt from the checkpoint's
    source and arguments (or ``model``, a fresh instance of your own host), the recipe replayed, the weights loaded."""
    return rebuild(path, model)[0]


def apply(model: nn.Module, recipe_or_trial: Any, example_input: torch.Tensor) -> nn.Module:
    """``model`` rewritten as a recipe says: a recipe dict, a recipe file, or an Optuna trial of a search
    (its ``recipe`` user attribute). The new index modules start untrained; the model's own weights are kept."""
    from indexnas.surgery import recipe as recipes

    if isinstance(recipe_or_trial, (str, os.PathLike)):
        recipe = recipes.load(recipe_or_trial)
    elif hasattr(recipe_or_trial, "user_attrs"):
        recipe = TrialRecord.of(recipe_or_trial).get(RECIPE)
        if recipe is None:
            raise UserError(f"trial {getattr(recipe_or_trial, 'number', '?')} has no recipe",
                            "pass a trial that `indexnas.suggest` or a search rewrote")
    else:
        recipe = recipe_or_trial
    rewritten, _ = recipes.replay(recipe, model, example_input, flops=False)
    return rewritten
