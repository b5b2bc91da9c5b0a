"""Insert IndexNet at a model's down/up pairs by rewriting its torch.fx graph (modes: pool, stride, decoder).

Per rewritten transition one index module (``indexnet.<transition>``; one shared
``indexnet.modelwise`` for modelwise O2O) reads the high-resolution feature X and returns the
encoder and decoder maps. In ``pool``/``stride`` mode each down of the transition becomes IP of its
high-resolution feature with the encoder map (a strided conv first becomes stride 1); in
``decoder`` mode the downs stay. Each transition's rate k is its measured factor (compat.Site.rate):
its IndexNet, IP and IU work on k x k regions. Each paired up becomes IU with the decoder map (a
compound x4 up: two IUs, innermost map first; an up that undoes part of a larger transition: IU at
its own factor with the part of that transition's map at its resolution, ``ops.coarsen_map``). Transposed convolutions and pixel shuffles keep their learned
weights: their output is multiplied by the decoder map instead, so a pretrained decoder keeps its
weights and IndexNet adds only the index guidance. Rounding: a replaced down that rounds odd
sizes up (3x3/2 convs, "same" padding) has its feature zero-padded to a multiple of the rate first, so every tensor
keeps the size the original model gave it. Nothing reads a Python int off a tensor: the result
runs at any input size the original accepts.
"""

from __future__ import annotations

import copy
import heapq
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx
import torch.nn.functional as F
from torch import Tensor, nn

from indexnas import ops
from indexnas.errors import UserError
from indexnas.indexnet import build_index_module
from indexnas.spec import IndexSpec
from indexnas import cost
from indexnas.surgery import compat
from indexnas.surgery.pairs import Down, Pair, PairReport, Transition

INDEX_ROOT = "indexnet"  # the submodule holding every inserted index module
SITE = "indexnas_site"  # node.meta key: the transition or pair an inserted/changed node belongs to


# --- leaf functions the rewritten graph calls (one readable node each, never traced into) ----------


def fit_for_pool(feature: Tensor, reference: Tensor, ceil_h: bool, ceil_w: bool, rate: int = 2) -> Tensor:
    """Zero-pad/crop ``feature`` to ``reference``'s H x W, then pad to a multiple of ``rate`` on axes the down rounded up."""
    height, width = reference.shape[-2], reference.shape[-1]
    height, width = height + (-height % rate if ceil_h else 0), width + (-width % rate if ceil_w else 0)
    if feature.shape[-2] == height and feature.shape[-1] == width:
        return feature
    return F.pad(feature, (0, width - feature.shape[-1], 0, height - feature.shape[-2]))


def fit_to_double(feature: Tensor, low: Tensor, rate: int = 2) -> Tensor:
    """Zero-pad/crop ``feature`` to ``rate`` times ``low``'s H x W (decoder mode: ``low`` is the kept down's output;
    twice it at the paper's rate 2)."""
    height, width = rate * low.shape[-2], rate * low.shape[-1]
    if feature.shape[-2] == height and feature.shape[-1] == width:
        return feature
    return F.pad(feature, (0, width - feature.shape[-1], 0, height - feature.shape[-2]))


def crop_padding(feature: Tensor, reference: Tensor, top: int, left: int) -> Tensor:
    """``feature`` without the padding a pad added before pointwise ops: rows from ``top`` and columns from
    ``left``, ``reference``'s H x W of them (the unpadded feature a strided conv without padding reads)."""
    return feature[..., top : top + reference.shape[-2], left : left + reference.shape[-1]]


def fit_channels(index_map: Tensor, channels: int) -> Tensor:
    """A depthwise map for a ``channels``-wide feature: group means, or repeats (``channel_fit='group'``)."""
    have = index_map.shape[1]
    if have == 1 or have == channels:
        return index_map
    if have > channels:
        return index_map.unflatten(1, (channels, have // channels)).mean(2)
    return index_map.repeat_interleave(channels // have, dim=1)


def modulate(y: Tensor, dec_map: Tensor) -> Tensor:
    """A learned up's output weighted by the decoder map (rows/columns the map lacks keep weight 1)."""
    dh, dw = y.shape[-2] - dec_map.shape[-2], y.shape[-1] - dec_map.shape[-1]
    if dh or dw:
        dec_map = F.pad(dec_map, (0, dw, 0, dh), value=1.0)
    return y * dec_map


def fit_to_size(y: Tensor, size: Sequence[int]) -> Tensor:
    """Zero-pad/crop ``y`` to ``size[-2:]``: the output size the replaced up had."""
    if y.shape[-2] == size[-2] and y.shape[-1] == size[-1]:
        return y
    return F.pad(y, (0, size[-1] - y.shape[-1], 0, size[-2] - y.shape[-2]))


def scaled_size(x: Tensor, factor: int) -> tuple[int, int]:
    """``factor`` times ``x``'s H x W: the natural output size of a x``factor`` up."""
    return (x.shape[-2] * factor, x.shape[-1] * factor)


for _name in ("fit_for_pool", "fit_to_double", "crop_padding", "fit_channels", "modulate", "fit_to_size", "scaled_size"):
    torch.fx.wrap(_name)


# --- the report ---------------------------------------------------------------------------------


@dataclass
class PairRow:
    """What happened at one pair."""

    pair: str
    downs: str
    up: str
    kind: str  # "maxpool->unpool", ...
    resolution: str  # "224x224 -> 112x112"
    channels: str  # "64 / 64": channels of the feature the down pools (per transition) / of the up's output
    choice: str
    action: str  # "IP; IU", "IP; up x map", "downs kept; IU", "downs kept; up x map", "kept[: reason]"
    params_added: int = 0
    flops_added: int | None = None


@dataclass
class RewriteReport:
    """Per-pair rows and totals before/after; ``choices`` and ``mode`` make the recipe.

    Parameters on both sides are those the traced graph uses (``indexnas.cost.count_parameters``): a
    submodule the forward never calls (an unused backbone) counts on neither side.
    """

    mode: str
    channel_fit: str
    rows: list[PairRow]
    choices: dict[str, str]
    params_before: int
    params_after: int
    flops_before: int | None = None
    flops_after: int | None = None
    input_shape: tuple[int, ...] = ()
    unpaired: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "channel_fit": self.channel_fit,
            "input_shape": list(self.input_shape),
            "pairs": [vars(row) for row in self.rows],
            "params_before": self.params_before,
            "params_after": self.params_after,
            "flops_before": self.flops_before,
            "flops_after": self.flops_after,
            "unpaired": self.unpaired,
            "notes": self.notes,
        }


# --- the rewrite ------------------------------------------------------------------------------------


def _safe(name: str) -> str:
    return name.replace(".", "_").replace(":", "_")


def _rate_args(rate: int) -> tuple[int, ...]:
    """IP/IU's rate argument: none at the default rate 2 (graphs read as before), else the rate."""
    return () if rate == ops.RATE else (rate,)


def _returns_indices(gm: torch.fx.GraphModule, node: torch.fx.Node) -> bool:
    """Whether a pooling node returns (values, indices)."""
    if node.op == "call_module":
        return bool(getattr(gm.get_submodule(str(node.target)), "return_indices", False))
    if node.target is F.max_pool2d_with_indices:
        return True
    return bool(node.kwargs.get("return_indices", False)) or (len(node.args) > 6 and bool(node.args[6]))


class _Rewriter:
    """Edits one traced graph in place; every node it adds or changes is tagged with its site."""

    def __init__(self, gm: torch.fx.GraphModule, mode: str, options: dict[str, compat.PairOptions]) -> None:
        self.gm, self.graph, self.mode, self.options = gm, gm.graph, mode, options
        self.nodes = compat.nodes_by_name(gm)
        self.dec_maps: dict[str, torch.fx.Node] = {}  # transition -> decoder map node
        self.sites: dict[str, compat.Site] = {s.transition.name: s for o in options.values() for s in o.sites}
        self.removable: set[torch.fx.Node] = set()
        self.modelwise: IndexSpec | None = None
        self.index_targets: dict[str, str] = {}  # transition -> index module target
        self.current: set[torch.fx.Node] = set()  # nodes added for the transition being rewritten

    def _add(self, site: str, anchor: torch.fx.Node, op: str, target: Any, args: tuple, kwargs: dict | None = None) -> torch.fx.Node:
        with self.graph.inserting_after(anchor):
            node = self.graph.create_node(op, target, args, kwargs or {})
        node.meta[SITE] = site
        self.current.add(node)
        return node

    def _index_module(self, transition: Transition, spec: IndexSpec, channels: int, rate: int) -> str:
        if spec.modelwise:  # compat allows it at rate 2 only: one module serves every stage
            if self.modelwise is not None and self.modelwise != spec:
                raise UserError(
                    f"two modelwise choices ({self.modelwise} and {spec}): modelwise O2O is one module for the model",
                    "give every modelwise pair the same variant",
                )
            target = f"{INDEX_ROOT}.modelwise"
            if self.modelwise is None:
                self.gm.add_submodule(target, build_index_module(spec, channels))
            self.modelwise = spec
        else:
            target = f"{INDEX_ROOT}.{_safe(transition.name)}"
            self.gm.add_submodule(target, build_index_module(spec, channels, rate))
        self.index_targets[transition.name] = target
        return target

    def transition(self, transition: Transition, spec: IndexSpec) -> None:
        self.current = set()
        site = self.sites[transition.name]
        tag = f"transition:{transition.name}"
        main = self.nodes[transition.downs[0].node]
        if self.mode == "decoder":
            low = self._low_output(main, tag)
            feature = self._index_input(transition.downs[0], tag)
            x = self._add(tag, low, "call_function", fit_to_double, (feature, low, *_rate_args(site.rate)))
            target = self._index_module(transition, spec, site.index_channels, site.rate)
            maps = self._add(tag, x, "call_module", target, (x,))
            self.dec_maps[transition.name] = self._add(tag, maps, "call_function", operator.getitem, (maps, 1))
            return
        features = [self._high_feature(down, site, tag) for down in transition.downs]
        target = self._index_module(transition, spec, site.index_channels, site.rate)
        maps = self._add(tag, features[0], "call_module", target, (features[0],))
        enc = self._add(tag, maps, "call_function", operator.getitem, (maps, 0))
        self.dec_maps[transition.name] = self._add(tag, enc, "call_function", operator.getitem, (maps, 1))
        for down, feature, channels in zip(transition.downs, features, site.pooled_channels):
            enc_map = enc
            if not spec.holistic and channels != site.index_channels:
                enc_map = self._add(tag, enc, "call_function", fit_channels, (enc, channels))
            pooled = self._add(tag, enc_map, "call_function", ops.indexed_pool, (feature, enc_map, *_rate_args(site.rate)))
            self._reweight_skips(self.nodes[down.node], feature, enc_map, tag)
            self._replace_down(self.nodes[down.node], pooled)

    def _reweight_skips(self, down: torch.fx.Node, feature: torch.fx.Node, enc_map: torch.fx.Node, tag: str) -> None:
        """A feature the host weights by this max pool's index map (`ops.max_index_weighted`, e.g. the matting
        host's skip="indexed") is weighted by the encoder map that replaces the pool: ``I_enc * X``."""
        if not _returns_indices(self.gm, down):
            return
        for indices in [u for u in down.users if u.target is operator.getitem and u.args[1] == 1]:
            for user in [u for u in indices.users if u.target is ops.max_index_weighted]:
                weighted = self._add(tag, enc_map, "call_function", operator.mul, (feature, enc_map))
                user.replace_all_uses_with(weighted)
                self.graph.erase_node(user)

    def _low_output(self, down: torch.fx.Node, tag: str) -> torch.fx.Node:
        """The low-resolution tensor a kept down produces (its values, when it also returns indices)."""
        if not _returns_indices(self.gm, down):
            return down
        for user in down.users:
            if user.target is operator.getitem and user.args[1] == 0:
                return user
        return self._add(tag, down, "call_function", operator.getitem, (down, 0))

    def _high_feature(self, down: Down, site: compat.Site, tag: str) -> torch.fx.Node:
        """The high-resolution feature IP pools in place of ``down`` (a conv: its stride-1 output)."""
        node = self.nodes[down.node]
        source = self._unpadded(down)
        ceil_h, ceil_w = (r == compat.CEIL for r in site.rounding)
        rate = _rate_args(site.rate)
        if down.kind == "conv":
            self._stride_one(str(node.target))
            node.meta[SITE] = tag
            return self._add(tag, node, "call_function", fit_for_pool, (node, source, ceil_h, ceil_w, *rate))
        feature = self._index_input(down, tag)
        if ceil_h or ceil_w:
            return self._add(tag, node, "call_function", fit_for_pool, (feature, feature, ceil_h, ceil_w, *rate))
        return feature

    def _unpadded(self, down: Down) -> torch.fx.Node:
        """The high-resolution input of a down, before the padding folded into it (its size is the transition's)."""
        return self.nodes[down.source] if down.source else self.nodes[down.node].args[0]

    def _index_input(self, down: Down, tag: str) -> torch.fx.Node:
        """The unpadded feature a down reads: its padded input's source, or where pointwise ops lie between the pad
        and the down (pad, 1x1 conv, BN, ReLU6, strided conv), the down's own input cropped to the source's size."""
        if down.crop is None:
            return self._unpadded(down)
        read = self.nodes[down.node].args[0]
        return self._add(tag, read, "call_function", crop_padding, (read, self._unpadded(down), *down.crop))

    def _stride_one(self, target: str) -> None:
        """Swap the conv at ``target`` for a shallow copy with stride 1 (same weights; the user's model untouched)."""
        conv = self.gm.get_submodule(target)
        clone = copy.copy(conv)
        clone.stride = (1, 1)
        parent, _, attr = target.rpartition(".")
        setattr(self.gm.get_submodule(parent) if parent else self.gm, attr, clone)

    def _replace_down(self, node: torch.fx.Node, pooled: torch.fx.Node) -> None:
        """Route the down's consumers to IP; a pool that also returns indices stays for any kept unpool."""
        if node.op == "call_module" and isinstance(self.gm.get_submodule(str(node.target)), nn.Conv2d):
            node.replace_all_uses_with(pooled, delete_user_cb=lambda user: user not in self.current)
            return
        if _returns_indices(self.gm, node):
            for user in list(node.users):
                if user.target is operator.getitem and user.args[1] == 0:
                    user.replace_all_uses_with(pooled)
                    self.graph.erase_node(user)
        else:
            node.replace_all_uses_with(pooled, delete_user_cb=lambda user: user not in self.current)
        self.removable.add(node)

    def pair(self, pair: Pair, spec: IndexSpec) -> None:
        tag = f"pair:{pair.name}"
        up = self.nodes[pair.up.node]
        decs = [self.dec_maps[t.name] for t in pair.transitions]
        rates = [self.sites[t.name].rate for t in pair.transitions]
        if pair.part is not None:  # part of one transition: its map at the up's output resolution, IU at the up's factor
            coarsening, rates = pair.part[0], [pair.part[1]]
            if coarsening > 1:
                decs = [self._add(tag, decs[0], "call_function", ops.coarsen_map, (decs[0], coarsening))]
        channels = pair.up.out_channels
        if not spec.holistic:
            decs = [
                d if self.sites[t.name].index_channels == channels
                else self._add(tag, d, "call_function", fit_channels, (d, channels))
                for d, t in zip(decs, pair.transitions)
            ]
        if self.options[pair.name].up_action == "modulate":
            out = self._add(tag, up, "call_function", modulate, (up, decs[0]))
            up.replace_all_uses_with(out, delete_user_cb=lambda user: user is not out)
            return
        y = source = up.args[0]
        inner = list(reversed(pair.transitions))
        for level, (transition, dec, rate) in enumerate(zip(inner, reversed(decs), reversed(rates))):
            y = self._add(tag, up, "call_function", ops.indexed_upsample, (y, dec, *_rate_args(rate)))
            if level < len(inner) - 1:  # compound: back to this transition's own high-resolution size
                high = self._unpadded(transition.downs[0])
                size = self._add(tag, up, "call_function", getattr, (high, "shape"))
                y = self._add(tag, up, "call_function", fit_to_size, (y, size))
        size = self._explicit_size(up)
        if size is None:
            size = self._add(tag, up, "call_function", scaled_size, (source, math.prod(rates)))
        y = self._add(tag, up, "call_function", fit_to_size, (y, size))
        up.replace_all_uses_with(y)
        self.graph.erase_node(up)

    def _explicit_size(self, up: torch.fx.Node) -> Any:
        """The output size the original up was told (``size=``/``output_size=``), else None."""
        if up.op == "call_module":
            module = self.gm.get_submodule(str(up.target))
            if isinstance(module, nn.MaxUnpool2d):
                return compat.call_arg(up, 2, "output_size")
            size = getattr(module, "size", None)
            return None if size is None else (size, size) if isinstance(size, int) else tuple(size)
        if up.target is F.max_unpool2d:
            return compat.call_arg(up, 5, "output_size")
        return compat.call_arg(up, 1, "size")

    def finish(self) -> None:
        """Drop what the rewrite left unused, restore a topological order, and check the graph."""
        pure_targets = (operator.getitem, getattr)
        changed = True
        while changed:
            changed = False
            for node in reversed(list(self.graph.nodes)):
                if node.users or node.op == "output":
                    continue
                pure = (node.op == "call_function" and node.target in pure_targets) or (
                    node.op == "call_method" and node.target in ("size", "dim")
                )
                if pure or node in self.removable:
                    self.graph.erase_node(node)
                    changed = True
        _toposort(self.graph)
        self.graph.lint()
        self.gm.recompile()


def _toposort(graph: torch.fx.Graph) -> None:
    """Reorder nodes topologically, keeping the existing order wherever it is already valid."""
    order = {node: i for i, node in enumerate(graph.nodes)}
    waiting = {node: len(set(node.all_input_nodes)) for node in graph.nodes}
    ready = [(order[n], n.name) for n in graph.nodes if waiting[n] == 0]
    by_name = {n.name: n for n in graph.nodes}
    heapq.heapify(ready)
    output = next(n for n in graph.nodes if n.op == "output")
    while ready:
        _, name = heapq.heappop(ready)
        node = by_name[name]
        if node is not output:
            output.prepend(node)
        for user in node.users:
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(ready, (order[user], user.name))


def _original_cost_nodes(chosen: dict[str, IndexSpec], options: dict[str, compat.PairOptions], mode: str) -> dict[str, str]:
    """Original node -> site tag, for the nodes the rewrite removes or changes (their flops are given back)."""
    tags: dict[str, str] = {}
    for name, spec in chosen.items():
        if spec.keep:
            continue
        pair = options[name].pair
        if options[name].up_action == "iu":
            tags[pair.up.node] = f"pair:{name}"
        if mode != "decoder":
            for t in pair.transitions:
                for down in t.downs:
                    tags[down.node] = f"transition:{t.name}"
    return tags


def _row(pair: Pair, opts: compat.PairOptions, spec: IndexSpec, mode: str) -> PairRow:
    t0, tn = pair.transitions[0], pair.transitions[-1]
    down_kinds = "+".join(sorted({d.kind for t in pair.transitions for d in t.downs}))
    site_channels = ", ".join(str(s.index_channels or t.channels) for s, t in zip(opts.sites, pair.transitions))
    if spec.keep:
        action = f"kept: {opts.reason}" if opts.reason else "kept"
    elif mode == "decoder":
        action = "downs kept; " + ("up x map" if opts.up_action == "modulate" else "IU")
    else:
        action = "IP; " + ("up x map" if opts.up_action == "modulate" else "IU")
    return PairRow(
        pair=pair.name,
        downs=", ".join(d.target for t in pair.transitions for d in t.downs),
        up=pair.up.target,
        kind=f"{down_kinds}->{pair.up.kind}",
        resolution=f"{t0.in_size[0]}x{t0.in_size[1]} -> {tn.out_size[0]}x{tn.out_size[1]}",
        channels=f"{site_channels} / {pair.up.out_channels}",
        choice=str(spec),
        action=action,
    )


@dataclass(frozen=True)
class Plan:
    """What a rewrite will do: each pair's options and resolved choice, in one mode."""

    mode: str
    channel_fit: str
    options: dict[str, compat.PairOptions]
    chosen: dict[str, IndexSpec]

    def transitions(self) -> list[tuple[Transition, IndexSpec]]:
        """Each rewritten transition once, with its choice, in pair order."""
        specs = compat.transition_choices(self.options, self.chosen)
        seen: dict[str, Transition] = {}
        for opts in self.options.values():
            for t in opts.pair.transitions:
                if t.name in specs:
                    seen.setdefault(t.name, t)
        return [(t, specs[name]) for name, t in seen.items()]


def plan(gm: torch.fx.GraphModule, report: PairReport, choice: object, mode: str = "pool", channel_fit: str = "strict") -> Plan:
    """Resolve ``choice`` against what ``mode`` allows at each pair of an analysed graph."""
    options = compat.pair_options(gm, report, compat.check_mode(mode), channel_fit)
    chosen = compat.resolve(options, choice)
    if not isinstance(choice, dict) and not IndexSpec.parse(choice).keep and all(s.keep for s in chosen.values()):  # type: ignore[arg-type]
        reasons = "; ".join(f"{n}: {o.reason}" for n, o in options.items()) or _why_no_pairs(report)
        raise UserError(f"no pair can take {choice!s} in {mode} mode ({reasons})", _other_modes_fix(gm, report, choice, mode, channel_fit))
    return Plan(mode, channel_fit, options, chosen)


def _why_no_pairs(report: PairReport) -> str:
    if not report.unpaired:
        return "the model has no down/up pairs: it has no upsampling"
    reasons = dict.fromkeys(f"{u.up.target}: {u.reason}" for u in report.unpaired[:3])
    return f"the model has no down/up pairs: none of its {len(report.unpaired)} ups pairs with a down: " + "; ".join(reasons)


def _other_modes_fix(gm: torch.fx.GraphModule, report: PairReport, choice: object, mode: str, channel_fit: str) -> str:
    """A fix line naming the modes (and the choices) that do rewrite some pair of this model."""
    spec = IndexSpec.parse(choice)  # type: ignore[arg-type]
    taking = [m for m in compat.MODES if m != mode
              and any(not s.keep for s in compat.resolve(compat.pair_options(gm, report, m, channel_fit), spec).values())]
    if taking:
        return f"use --mode {' or --mode '.join(taking)}, where {spec} applies"
    holistic = compat.pair_options(gm, report, mode, channel_fit)
    if not spec.holistic and any(len(o.allowed) > 1 for o in holistic.values()):
        return "choose a holistic variant (holistic, hmi, avg): the depthwise maps do not fit this model's widths"
    return "this model has no pair IndexNet can rewrite; it is unsupported as it is (see the reasons)"


def apply(gm: torch.fx.GraphModule, the_plan: Plan) -> _Rewriter:
    """Rewrite an analysed graph in place according to ``the_plan``."""
    rewriter = _Rewriter(gm, the_plan.mode, the_plan.options)
    for transition, spec in the_plan.transitions():
        rewriter.transition(transition, spec)
    for name, spec in the_plan.chosen.items():
        if not spec.keep:
            rewriter.pair(the_plan.options[name].pair, spec)
    rewriter.finish()
    return rewriter


def insert_indexnet(
    model: nn.Module,
    example_input: Tensor | tuple[Tensor, ...],
    choice: IndexSpec | str | dict[str, IndexSpec | str],
    mode: str = "pool",
    *,
    channel_fit: str = "strict",
    flops: bool = True,
) -> tuple[torch.fx.GraphModule, RewriteReport]:
    """Rewrite ``model``'s down/up pairs with IndexNet; returns the rewritten GraphModule and a report.

    ``choice``: one choice for every pair that allows it (others keep their operators), or
    ``{pair_name: choice}`` with ``'*'`` for the rest. ``mode``: ``pool``, ``stride`` or
    ``decoder`` (see surgery.compat). The model itself is not modified; the result shares its
    submodules (and weights). ``flops`` counts FLOPs at the example input (fvcore + handlers).
    """
    from indexnas.surgery.analysis import analyze

    inputs = cost.as_inputs(example_input)
    gm, report = analyze(model, inputs)
    return rewrite_analyzed(model, gm, report, inputs, choice, mode, channel_fit=channel_fit, flops=flops)


def rewrite_analyzed(
    model: nn.Module,
    gm: torch.fx.GraphModule,
    report: PairReport,
    inputs: tuple[Tensor, ...],
    choice: IndexSpec | str | dict[str, IndexSpec | str],
    mode: str,
    *,
    channel_fit: str = "strict",
    flops: bool = True,
) -> tuple[torch.fx.GraphModule, RewriteReport]:
    """insert_indexnet on a graph that ``surgery.analyze(model, inputs)`` returned (rewritten in place)."""
    params_before = cost.count_parameters(gm)  # the traced host: what its forward uses, as params_after
    flops_before = cost.count_flops(model, inputs).total if flops else None
    the_plan = plan(gm, report, choice, mode, channel_fit)
    options, chosen = the_plan.options, the_plan.chosen
    given_back: dict[str, int] = {}
    if flops:
        tags = _original_cost_nodes(chosen, options, mode)
        for node, value in cost.node_flops(gm, inputs, tags).items():
            given_back[tags[node]] = given_back.get(tags[node], 0) + value
    want = _output_shapes(gm)
    rewriter = apply(gm, the_plan)
    gm.training = model.training
    for module in gm.get_submodule(INDEX_ROOT).modules() if rewriter.index_targets else ():
        module.train(model.training)
    _check_outputs(gm, want, inputs)
    site_flops: dict[str, int] = {}
    if flops:
        tagged = {n.name: n.meta[SITE] for n in gm.graph.nodes if SITE in n.meta}
        for node, value in cost.node_flops(gm, inputs, tagged).items():
            site_flops[tagged[node]] = site_flops.get(tagged[node], 0) + value
    rows = _rows(gm, report, the_plan, rewriter, site_flops if flops else None, given_back)
    result = RewriteReport(
        mode=mode,
        channel_fit=channel_fit,
        rows=rows,
        choices={name: str(spec) for name, spec in chosen.items()},
        params_before=params_before,
        params_after=cost.count_parameters(gm),
        flops_before=flops_before,
        flops_after=cost.count_flops(gm, inputs).total if flops else None,
        input_shape=tuple(inputs[0].shape),
        unpaired=[f"{u.up.target}: {u.reason}" for u in report.unpaired],
        notes=list(report.warnings),
    )
    return gm, result


def _rows(gm: torch.fx.GraphModule, report: PairReport, the_plan: Plan, rewriter: _Rewriter,
          site_flops: dict[str, int] | None, given_back: dict[str, int]) -> list[PairRow]:
    """One row per pair; each index module's parameters and each site's FLOPs counted at the first pair using it."""
    rows, counted, modelwise_counted = [], set(), False
    for pair in report.pairs:
        opts, spec = the_plan.options[pair.name], the_plan.chosen[pair.name]
        row = _row(pair, opts, spec, the_plan.mode)
        if not spec.keep:
            tags = [f"pair:{pair.name}"]
            for t in pair.transitions:
                if t.name in counted:
                    continue
                counted.add(t.name)
                tags.append(f"transition:{t.name}")
                target = rewriter.index_targets[t.name]
                if target.endswith(".modelwise"):
                    if modelwise_counted:
                        continue
                    modelwise_counted = True
                row.params_added += cost.count_parameters(gm.get_submodule(target))
            if site_flops is not None:
                row.flops_added = sum(site_flops.get(tag, 0) - given_back.get(tag, 0) for tag in tags)
        rows.append(row)
    return rows


def _output_shapes(gm: torch.fx.GraphModule) -> list[torch.Size]:
    """The output tensor shapes shape propagation recorded on an analysed graph (before rewriting)."""
    from torch.utils._pytree import tree_flatten

    from torch.fx.passes.shape_prop import TensorMetadata

    output = next(n for n in gm.graph.nodes if n.op == "output")
    leaves = [n.meta.get("tensor_meta") for n in tree_flatten(output.args[0])[0] if isinstance(n, torch.fx.Node)]
    metas = tree_flatten(leaves, is_leaf=lambda m: isinstance(m, TensorMetadata))[0]
    return [m.shape for m in metas if isinstance(m, TensorMetadata)]


def _check_outputs(gm: torch.fx.GraphModule, want: list[torch.Size], inputs: tuple[Tensor, ...]) -> None:
    """The rewritten model must give the original's output shapes at the example input."""
    from torch.utils._pytree import tree_flatten

    from indexnas.surgery.trace import eval_mode

    with eval_mode(gm):
        try:
            have = [t.shape for t in tree_flatten(gm(*inputs))[0] if isinstance(t, Tensor)]
        except Exception as error:
            raise UserError(
                f"the rewritten model failed at the example input: {error!s:.300}",
                "report this model; meanwhile 'keep' the pair named in the message or try --mode decoder",
            ) from error
    if want != have:
        raise UserError(f"the rewritten model returns shapes {have}, the original {want}", "report this model")
