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
import random
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
import torch.fx
from torch import nn

from indexnas import cost
from indexnas.errors import UserError
from indexnas.indexnet import build_index_module
from indexnas.spec import IndexSpec
from indexnas.surgery import compat
from indexnas.surgery.rewrite import Plan, _safe, apply

if TYPE_CHECKING:
    from indexnas.search.suggest import SearchSpace

PATH_CACHE = 64  # paths kept built; a path costs one graph copy + rewrite (~10 ms), a training step more


def _key(spec: IndexSpec) -> str:
    """A choice as a module name (no dots)."""
    return str(spec).replace(".", "_")


class Supernet(nn.Module):
    """The analysed host of a `search.suggest.SearchSpace` (copied) with an index module per choice per transition.

    ``activate({pair: choice})`` sets the path (pairs not named keep their operators); ``sample_paths(seed)``
    makes every training-mode forward draw a new path first (uniform per pair, independently), so an
    ordinary training loop trains the supernet one path per batch.
    """

    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        from indexnas.search import space as search_space

        _, self.graph = copy.deepcopy((space.host, space.graph))  # registered: the shared host weights
        self.mode, self.report, self.spaces = space.mode, space.report, space.spaces
        self.params_before = space.params_before
        self.options = compat.pair_options(self.graph, self.report, self.mode)
        self.bank = nn.ModuleDict()  # transition -> {choice: index module}
        for name in (s.name for s in self.spaces):
            opts = self.options[name]
            for site in opts.sites:
                if _safe(site.transition.name) not in self.bank:
                    self.bank[_safe(site.transition.name)] = nn.ModuleDict()
                per_choice = self.bank[_safe(site.transition.name)]
                for spec in opts.allowed:
                    if not spec.keep and not spec.modelwise and _key(spec) not in per_choice:
                        per_choice[_key(spec)] = build_index_module(spec, site.index_channels)
        self.modelwise_variants = search_space.modelwise_variants(self.spaces)
        self.modelwise = nn.ModuleDict({_key(IndexSpec.parse(v)): build_index_module(v, 1)
                                        for v in self.modelwise_variants})
        # Plain attributes (not submodules): built paths hold the same modules, which must count once.
        self.__dict__["_paths"] = OrderedDict()
        self.__dict__["_sampler"] = None
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

    def sample_paths(self, seed: int | None) -> None:
        """Training-mode forwards each draw a path first (seeded), or not (None): the path stays as activated."""
        self.__dict__["_sampler"] = None if seed is None else random.Random(seed)

    def sample(self, rng: random.Random) -> dict[str, str]:
        """One path: a uniform choice per pair, one o2o-modelwise variant for all pairs that pick it; pairs that
        share a transition are drawn again until they agree (a rewrite gives a transition one choice)."""
        from indexnas.search.space import MODELWISE

        for _ in range(100):
            picked = {space.name: rng.choice(space.choices) for space in self.spaces}
            variant = rng.choice(self.modelwise_variants) if MODELWISE in picked.values() else None
            choices = {name: variant if choice == MODELWISE else choice for name, choice in picked.items()}
            try:
                compat.resolve(self.options, {**choices, "*": "keep"})
            except UserError:
                continue
            return choices  # type: ignore[return-value]
        raise UserError("could not draw a path whose pairs agree on their shared transitions in 100 tries",
                        "search this model with --strategy trials")

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        sampler = self.__dict__["_sampler"]
        if self.training and sampler is not None:  # one path per batch while the supernet trains
            self.activate(self.sample(sampler))
        return self.__dict__["active"](*args, **kwargs)

    # --- what the active path is ----------------------------------------------------------------

    @property
    def path(self) -> torch.fx.GraphModule:
        """The active path: a GraphModule over the supernet's own modules (its state dict fits the stand-alone model)."""
        return self.__dict__["active"]

    def params_added(self) -> int:
        """Parameters the active path adds to the host (as `SearchSpace.rewrite` counts them)."""
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
