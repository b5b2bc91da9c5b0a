"""A supernet: one host where every rewritable pair holds all its allowed IndexNet choices, one path active.

Weight sharing: the host's weights are one copy for every path; each (transition, choice) owns one
index module, and each o2o-modelwise variant one module shared by every pair that picks it (as in a
stand-alone rewrite). A path is not a second rewriter: it is the ordinary rewrite
(`surgery.rewrite.apply`) of a copy of the analysed graph whose modules are the supernet's own, with
the rewrite's fresh index modules swapped for the shared ones. So the active path computes exactly what
`SearchSpace.rewrite(choices)` builds, ``keep`` is the host's own operators (in stride mode too: a kept
conv down is never made stride 1), and a path's state dict loads key for key into the stand-alone model.
"""

from __future__ import annotations

import copy
import json
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.fx
from torch import nn

from indexnas import cost
from indexnas.errors import UserError
from indexnas.indexnet import build_index_module
from indexnas.spec import IndexSpec
from indexnas.surgery import compat
from indexnas.surgery.pairs import PairReport
from indexnas.surgery.rewrite import Plan, _safe, apply

PATH_CACHE = 64  # paths kept built; a path costs one graph copy + rewrite (~10 ms), a training step more


def _key(spec: IndexSpec) -> str:
    """A choice as a module name (no dots)."""
    return str(spec).replace(".", "_")


class Supernet(nn.Module):
    """An analysed host (copied: `surgery.analyze`'s graph) with an index module per allowed choice per transition.

    ``activate({pair: choice})`` sets the path (pairs not named keep their operators); ``sample_paths(draw)``
    makes every training-mode forward activate ``draw()`` first, so an ordinary training loop trains the
    supernet one path per batch (`search.oneshot.path_drawer` draws uniformly per pair).
    """

    def __init__(self, host: nn.Module, graph: torch.fx.GraphModule, report: PairReport, mode: str) -> None:
        super().__init__()
        _, self.graph = copy.deepcopy((host, graph))  # registered: the shared host weights
        self.mode, self.report = mode, report
        self.params_before = cost.count_parameters(self.graph)
        self.options = compat.pair_options(self.graph, report, mode)
        self.bank = nn.ModuleDict()  # transition -> {choice: index module}
        variants: dict[str, IndexSpec] = {}  # the o2o-modelwise variants some pair allows: one module each
        for opts in self.options.values():
            for site in opts.sites if len(opts.allowed) > 1 else ():
                if _safe(site.transition.name) not in self.bank:
                    self.bank[_safe(site.transition.name)] = nn.ModuleDict()
                per_choice = self.bank[_safe(site.transition.name)]
                for spec in opts.allowed:
                    if spec.modelwise:
                        variants.setdefault(_key(spec), spec)
                    elif not spec.keep and _key(spec) not in per_choice:
                        per_choice[_key(spec)] = build_index_module(spec, site.index_channels, site.rate)
        self.modelwise = nn.ModuleDict({key: build_index_module(spec, 1) for key, spec in variants.items()})
        # Plain attributes (not submodules): built paths hold the same modules, which must count once.
        self.__dict__["_paths"] = OrderedDict()
        self.__dict__["_draw"] = None
        self.choices: dict[str, str] = {}
        self.activate({})

    # --- the switch: which path runs ------------------------------------------------------------

    def activate(self, choices: Mapping[str, IndexSpec | str]) -> None:
        """Make ``choices`` (pair -> choice; unnamed pairs keep) the path every forward runs: the switch a
        scorer sets from outside. Built paths are kept (`PATH_CACHE`) so that scoring one twice rebuilds nothing."""
        wanted = {name: str(IndexSpec.parse(c)) for name, c in choices.items()}
        key = json.dumps(wanted, sort_keys=True)
        paths: OrderedDict[str, torch.fx.GraphModule] = self.__dict__["_paths"]
        if key not in paths:
            paths[key] = self._build(wanted)
            if len(paths) > PATH_CACHE:
                paths.popitem(last=False)
        paths.move_to_end(key)
        self.__dict__["active"] = paths[key]
        self.choices = wanted

    def sample_paths(self, draw: Callable[[], Mapping[str, IndexSpec | str]] | None) -> None:
        """Training-mode forwards each activate ``draw()`` first (the per-batch switch of supernet training),
        or not (None): the path then stays as activated."""
        self.__dict__["_draw"] = draw

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        draw = self.__dict__["_draw"]
        if self.training and draw is not None:  # one path per batch while the supernet trains
            self.activate(draw())
        return self.__dict__["active"](*args, **kwargs)

    # --- what the active path is ----------------------------------------------------------------

    @property
    def path(self) -> torch.fx.GraphModule:
        """The active path: a GraphModule over the supernet's own modules (its state dict fits the stand-alone model)."""
        return self.__dict__["active"]

    def params_added(self) -> int:
        """Parameters the active path adds to the host (as a stand-alone rewrite counts them)."""
        return cost.count_parameters(self.path) - self.params_before

    # --- building a path ---------------------------------------------------------------------------

    def _build(self, wanted: dict[str, str]) -> torch.fx.GraphModule:
        """The ordinary rewrite of a graph copy sharing the supernet's modules, its index modules the shared ones."""
        unknown = sorted(set(wanted) - set(self.options))
        if unknown:
            raise UserError(f"no pair named {', '.join(map(repr, unknown))} in this supernet",
                            f"pairs are: {', '.join(self.options)}")
        the_plan = Plan(self.mode, "strict", self.options, compat.resolve(self.options, {**wanted, "*": "keep"}))
        gm = torch.fx.GraphModule(self.graph, copy.deepcopy(self.graph.graph))  # shares every host module
        with torch.random.fork_rng(devices=[]):  # the rewrite's own index modules are built and dropped
            rewriter = apply(gm, the_plan)
        specs = compat.transition_choices(self.options, the_plan.chosen)
        for transition, target in rewriter.index_targets.items():
            gm.add_submodule(target, self._shared_module(transition, specs[transition]))
        gm.train(self.training)
        return gm

    def _shared_module(self, transition: str, spec: IndexSpec) -> nn.Module:
        bank = self.modelwise if spec.modelwise else self.bank[_safe(transition)]
        if _key(spec) not in bank:
            raise UserError(f"the supernet holds no {spec} module at {transition}",
                            "use a choice the search space offers there (default normalisations)")
        return bank[_key(spec)]

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> Supernet:
        """Moving or casting the weights: built paths may hold replaced tensors (buffers), so rebuild them."""
        result = super()._apply(fn, *args, **kwargs)
        self.__dict__["_paths"].clear()
        self.activate(self.choices)
        return result

    def train(self, mode: bool = True) -> Supernet:
        super().train(mode)
        self.__dict__["active"].train(mode)
        return self
