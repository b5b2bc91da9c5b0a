"""One trial's IndexNet configuration: ask an Optuna trial for every pair's choices, rewrite, gate the budget.

`SearchSpace` analyses a host once (trace, checks at two sizes, pairing, host cost) and then serves
any number of trials: each gets a deep copy of the analysed host rewritten with the trial's choices.
The CLI's study and `indexnas.suggest` in a user's own objective both go through `SearchSpace.suggest`,
so a trial's parameters, user attributes and budget pruning are the same whoever runs it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import optuna
import torch
from torch import nn

from indexnas.errors import UserError
from indexnas.spec import IndexSpec
from indexnas.search import pair_space, record


@dataclass
class Suggestion:
    """A trial's rewritten model and what it costs; ``recipe`` replays it onto a fresh host."""

    model: nn.Module
    choices: dict[str, str]
    recipe: dict[str, Any]
    params_added: int
    params_total: int
    gflops: float  # the whole model at the example input (multiply-adds / 1e9, fvcore's convention)
    gflops_added: float

    def costs(self) -> dict[str, Any]:
        return {cost.key: getattr(self, cost.key) for cost in record.COSTS}


class SearchSpace:
    """A host analysed once, and the choices each of its pairs allows in ``mode``."""

    def __init__(self, host: nn.Module, example_input: torch.Tensor, mode: str = "pool", name: str | None = None) -> None:
        from indexnas import cost
        from indexnas.surgery import analyze
        from indexnas.surgery.compat import check_mode, pair_options

        self.host, self.mode, self.name = host, check_mode(mode), name
        self.inputs = cost.as_inputs(example_input)
        self.graph, self.report = analyze(host, self.inputs)
        options = pair_options(self.graph, self.report, mode)
        self.pairs = [_describe(pair, options[pair.name]) for pair in self.report.pairs]
        rewritable = [p for p in self.pairs if len(p["allowed"]) > 1]
        if not rewritable:
            raise UserError(f"{name or type(host).__name__} has no down/up pairs that mode {mode!r} can rewrite",
                            "run `indexnas pairs MODEL` to see what was found, or try another mode")
        self.spaces = [pair_space.PairSpace.from_allowed(p["name"], p["allowed"]) for p in rewritable]
        self.params_before = cost.count_parameters(self.graph)  # as the rewrite counts: what the forward uses
        self.flops_before = cost.count_flops(host, self.inputs).total

    @property
    def rewritable_pairs(self) -> list[dict[str, Any]]:
        """The pairs the search chooses for (those allowing more than `keep`), as a study stores them."""
        names = {space.name for space in self.spaces}
        return [p for p in self.pairs if p["name"] in names]

    def suggest(self, trial: optuna.Trial, max_params: float | None = None,
                max_gflops: float | None = None) -> Suggestion:
        """Ask ``trial`` for every pair's choices, rewrite a copy of the host, store recipe and costs on the
        trial; over a budget, raise `optuna.TrialPruned` (nothing was trained)."""
        choices = pair_space.suggest_choices(trial, self.spaces)
        record.write(trial, record.CHOICES, {name: str(spec) for name, spec in choices.items()})
        suggestion = self.rewrite(choices)
        record.write(trial, record.RECIPE, suggestion.recipe)
        for cost in record.COSTS:
            record.write(trial, cost, getattr(suggestion, cost.key))
        over = over_budget(suggestion, max_params, max_gflops)
        if over:
            record.write(trial, record.FAILURE, {"kind": "over_budget", "message": over})
            raise optuna.TrialPruned(over)
        return suggestion

    def rewrite(self, choices: dict[str, IndexSpec | str]) -> Suggestion:
        """A deep copy of the analysed host (graph and weights) rewritten with ``choices``; the host is untouched."""
        from indexnas import cost
        from indexnas.surgery import recipe
        from indexnas.surgery.rewrite import rewrite_analyzed

        model, graph = copy.deepcopy((self.host, self.graph))  # one copy: the graph keeps the copy's submodules
        wanted = {name: str(spec) for name, spec in choices.items()}
        rewritten, report = rewrite_analyzed(model, graph, self.report, self.inputs, wanted, self.mode, flops=False)
        flops = cost.count_flops(rewritten, self.inputs).total
        return Suggestion(
            model=rewritten, choices=wanted,
            recipe=recipe.from_report(report, model=self.name),
            params_added=int(report.params_after - report.params_before), params_total=int(report.params_after),
            gflops=flops / 1e9, gflops_added=(flops - self.flops_before) / 1e9,
        )


def over_budget(suggestion: Suggestion, max_params: float | None, max_gflops: float | None) -> str | None:
    """Why a rewrite is over budget, or None."""
    if max_params is not None and suggestion.params_added > max_params:
        return f"adds {suggestion.params_added:,} parameters, over max_params {max_params:,.0f}"
    if max_gflops is not None and suggestion.gflops > max_gflops:
        return f"{suggestion.gflops:.3f} GFLOPs, over max_gflops {max_gflops}"
    return None


def _describe(pair: Any, options: Any) -> dict[str, Any]:
    """One pair as the study stores it: where it is, its size, and what it allows (and why not more)."""
    high = pair.transitions[0]
    return {"name": pair.name, "up": pair.up.target, "downs": [t.name for t in pair.transitions],
            "channels": high.channels, "in_size": list(high.in_size), "out_size": list(pair.transitions[-1].out_size),
            "up_channels": pair.up.in_channels, "allowed": [str(s) for s in options.allowed],
            "down_kinds": sorted({d.kind for t in pair.transitions for d in t.downs}), "up_kind": pair.up.kind,
            "why_limited": options.reason}


def suggest(trial: optuna.Trial, model: nn.Module, example_input: torch.Tensor, mode: str = "pool",
            max_params: float | None = None, max_gflops: float | None = None) -> Suggestion:
    """In your own Optuna objective: this trial's IndexNet configuration of ``model`` (a rewritten copy).

    Asks ``trial`` for each pair's choice (the CLI search's parameter names, `search.pair_space`), stores
    the recipe and costs as the trial's user attributes, and raises `optuna.TrialPruned` before any training
    when the copy adds more than ``max_params`` parameters or costs more than ``max_gflops`` GFLOPs.
    To analyse a host once for many trials, build a `SearchSpace` and call its `suggest`.
    """
    return SearchSpace(model, example_input, mode, name=type(model).__name__).suggest(trial, max_params, max_gflops)
