"""Which IndexNet choices each pair may take in each rewrite mode, and why others are ruled out.

A *site* is one transition as a mode sees it: whether the mode can rewrite its downs, which feature
the IndexNet reads (its channels) and which features its encoder map pools. Modes:

- ``pool``: pooling downs become IP; the IndexNet reads the pool's input.
- ``stride``: pools as in ``pool``; strided ``nn.Conv2d`` downs become stride 1 followed by IP, and
  the IndexNet reads the main path's stride-1 output. All parallel downs of a residual block (main
  path and shortcut) are rewritten together and pooled by the same encoder map, so they stay aligned.
- ``decoder``: every down is kept; the IndexNet reads the main down's high-resolution input and only
  the ups change.

A transition's *rate* k is its measured factor (out = in / k, floored or ceiled, on both axes): the
IndexNet there works on k x k regions (``RATES``: 2, the paper's, and 4, the x4 stems of ConvNeXt, PVT,
MiT and space-to-depth). The rate is derived here, never written in a choice's string form.

A depthwise map (``max``, M2O, O2O) has the channels of the feature the IndexNet reads, so it may
only meet features with that many channels: the pooled features and the up's decoder feature.
Holistic maps (``holistic``, ``hmi``, ``avg``) broadcast over any width. With
``channel_fit="group"`` a depthwise map also meets a feature whose width divides, or is a multiple
of, its own: the map is averaged over groups of consecutive channels, or each channel repeated.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.fx
from torch import nn

from indexnas.errors import UserError
from indexnas.names import did_you_mean
from indexnas.spec import KEEP, IndexSpec, all_choices, summarise_choices
from indexnas.surgery.pairs import Down, Pair, PairReport, Transition, Up

MODES: tuple[str, ...] = ("pool", "stride", "decoder")
# Rates surgery offers: a rate-k map has k*k positions per region, so an M2O stage holds k**4 C^2 weights
# (k = 4: 256 C^2); rate 16 (a ViT patchify) would hold 65,536 C^2 and is reported, not offered.
RATES: tuple[int, ...] = (2, 4)
CHANNEL_FITS: tuple[str, ...] = ("strict", "group")
POOL_KINDS = ("maxpool", "avgpool")
IU_KINDS = ("unpool", "interpolate", "upsample")  # replaced by IU
MODULATED_KINDS = ("convtranspose", "pixel_shuffle")  # kept, output multiplied by the decoder map
FLOOR, CEIL = "floor", "ceil"


@dataclass(frozen=True)
class Site:
    """One transition as a mode rewrites it."""

    transition: Transition
    mode: str
    reason: str  # why the mode cannot rewrite it; "" when it can
    index_channels: int = 0  # channels of the feature the IndexNet reads
    pooled_channels: tuple[int, ...] = ()  # channels each down's IP pools (pool/stride modes)
    rounding: tuple[str, str] = (FLOOR, FLOOR)  # how the replaced downs round sizes that are not multiples of the rate
    rate: int = 2  # the transition's measured factor: the IndexNet's k x k regions

    @property
    def supported(self) -> bool:
        return not self.reason


@dataclass(frozen=True)
class PairOptions:
    """The choices one pair may take, and why the others are ruled out."""

    pair: Pair
    sites: tuple[Site, ...]
    allowed: tuple[IndexSpec, ...]
    reason: str  # "" when every choice is allowed

    @property
    def up_action(self) -> str:
        """How the up changes: 'iu' (replaced by IU) or 'modulate' (kept, output times the map)."""
        return "modulate" if self.pair.up.kind in MODULATED_KINDS else "iu"


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise UserError(f"unknown rewrite mode {mode!r}", f"use one of: {', '.join(MODES)}")
    return mode


def check_channel_fit(channel_fit: str) -> str:
    if channel_fit not in CHANNEL_FITS:
        raise UserError(f"unknown channel fit {channel_fit!r}", f"use one of: {', '.join(CHANNEL_FITS)}")
    return channel_fit


def nodes_by_name(gm: torch.fx.GraphModule) -> dict[str, torch.fx.Node]:
    return {node.name: node for node in gm.graph.nodes}


def call_arg(node: torch.fx.Node, index: int, name: str, default: object = None) -> object:
    """A call's argument by keyword or position."""
    if name in node.kwargs:
        return node.kwargs[name]
    return node.args[index] if len(node.args) > index else default


def _pair_of(value: object) -> tuple[int, int] | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return (int(value[0]), int(value[1]))
    return None


def _window_out(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool, extra: int = 0) -> int:
    """torch's output-size rule for convolution and pooling windows (``extra``: padding added before the call)."""
    size += extra
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def _axis_rounding(kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool, extra: int,
                   rate: int) -> str | None:
    """FLOOR or CEIL when the window (after ``extra`` padding) divides every size by ``rate`` that way; None otherwise."""
    if stride != rate:
        return None
    outs = [(n, _window_out(n, kernel, stride, padding, dilation, ceil_mode, extra)) for n in range(4 * rate, 20 * rate)]
    if all(out == n // rate for n, out in outs):
        return FLOOR
    if all(out == -(-n // rate) for n, out in outs):
        return CEIL
    return None


def _window(gm: torch.fx.GraphModule, node: torch.fx.Node, down: Down) -> tuple | str:
    """(kernel, stride, padding, dilation, ceil_mode) pairs per axis of a conv/pool down, or why not known."""
    if node.op == "call_module":
        module = gm.get_submodule(str(node.target))
        if type(module).__name__.endswith("Conv2dSame"):  # timm's TF "same": pads so that out = ceil(in / 2)
            return "same"
        if isinstance(module, nn.Conv2d):
            padding = (0, 0) if module.padding == "valid" else _pair_of(module.padding)
            return module.kernel_size, module.stride, padding, module.dilation, False
        if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
            kernel = _pair_of(module.kernel_size)
            stride = _pair_of(module.stride if module.stride is not None else module.kernel_size)
            dilation = _pair_of(getattr(module, "dilation", 1))
            return kernel, stride, _pair_of(module.padding), dilation, bool(module.ceil_mode)
        return f"{type(module).__name__} is not a convolution or a max/avg pool"
    if node.op == "call_function" and down.kind in POOL_KINDS:
        kernel = _pair_of(call_arg(node, 1, "kernel_size"))
        stride = _pair_of(call_arg(node, 2, "stride") or call_arg(node, 1, "kernel_size"))
        padding = _pair_of(call_arg(node, 3, "padding", 0))
        if down.kind == "maxpool":
            dilation, ceil_mode = _pair_of(call_arg(node, 4, "dilation", 1)), call_arg(node, 5, "ceil_mode", False)
        else:
            dilation, ceil_mode = (1, 1), call_arg(node, 4, "ceil_mode", False)
        if None in (kernel, stride, padding, dilation) or not isinstance(ceil_mode, bool):
            return "its window arguments are computed at run time"
        return kernel, stride, padding, dilation, ceil_mode
    return f"a functional {down.kind} call: this mode rewrites nn.Conv2d modules and max/avg pools"


def _rounding(gm: torch.fx.GraphModule, node: torch.fx.Node, down: Down, rate: int) -> tuple[str, str] | str:
    window = _window(gm, node, down)
    if window == "same":
        return (CEIL, CEIL)
    if isinstance(window, str):
        return window
    kernel, stride, padding, dilation, ceil_mode = window
    if padding is None:
        return "its padding is not a pair of ints"
    if down.padding is None:
        return "the padding before it is computed at run time"
    axes = tuple(_axis_rounding(k, s, p, d, ceil_mode, e, rate)
                 for k, s, p, d, e in zip(kernel, stride, padding, dilation, down.padding))
    if None in axes:
        before = f", padded by {down.padding} before it" if any(down.padding) else ""
        return (f"it does not divide the resolution by {rate} (kernel {kernel}, stride {stride}, "
                f"padding {padding}{before})")
    return axes  # type: ignore[return-value]


def site(gm: torch.fx.GraphModule, transition: Transition, mode: str) -> Site:
    """How ``mode`` rewrites one transition, or why it cannot."""
    check_mode(mode)
    nodes = nodes_by_name(gm)
    main = transition.downs[0]
    rate = transition_rate(transition)
    if isinstance(rate, str):
        return Site(transition, mode, rate)
    if mode == "decoder":
        return Site(transition, mode, "", index_channels=main.in_channels, rate=rate)
    allowed_kinds = POOL_KINDS if mode == "pool" else (*POOL_KINDS, "conv")
    roundings: list[tuple[str, str]] = []
    for down in transition.downs:
        if down.kind not in allowed_kinds:
            hint = "use --mode stride or decoder" if down.kind == "conv" else "use --mode decoder"
            return Site(transition, mode, f"{down.target} is a {down.kind} down: {mode} mode cannot replace it ({hint})")
        node = nodes[down.node]
        if down.kind == "conv" and node.op == "call_module" and _calls_of(gm, node.target) > 1:
            return Site(transition, mode, f"{down.target} is called at several places: making it stride 1 would change all")
        found = _rounding(gm, node, down, rate)
        if isinstance(found, str):
            return Site(transition, mode, f"{down.target}: {found}")
        roundings.append(found)
    if len(set(roundings)) > 1:
        return Site(transition, mode, "its parallel downs round odd sizes differently: they cannot share one map")
    pooled = tuple(d.out_channels if d.kind == "conv" else d.in_channels for d in transition.downs)
    return Site(transition, mode, "", index_channels=pooled[0], pooled_channels=pooled, rounding=roundings[0], rate=rate)


def transition_rate(transition: Transition) -> int | str:
    """The rate k of a transition, measured before any folded padding (out = in / k, floored or ceiled, the
    same k on both axes, k in ``RATES``), or why it has none: the reason states the measured sizes."""
    (height, width), (out_h, out_w) = transition.in_size, transition.out_size
    sizes = f"{height}x{width} -> {out_h}x{out_w}"
    rates = {_axis_rate(n, out) for n, out in ((height, out_h), (width, out_w))}
    if None in rates or len(rates) != 1:
        return f"it maps {sizes}: not one whole factor k on both axes (out = in / k), so no k x k regions fit it"
    (rate,) = rates
    if rate not in RATES:
        offered = " and ".join(map(str, RATES))
        return (f"a x{rate} transition ({sizes}): IndexNet is offered at rates {offered}, not at rate {rate} "
                f"({rate}x{rate} regions, {rate * rate} positions per map channel); one strided op cannot be split "
                "into smaller steps")
    return rate  # type: ignore[return-value]


def _axis_rate(size: int, out: int) -> int | None:
    """k when ``out`` is ``size / k`` floored or ceiled for a whole k >= 2 (at least one region), else None."""
    rate = round(size / max(out, 1))
    return rate if rate >= 2 and size >= rate and out in (size // rate, -(-size // rate)) else None


def _calls_of(gm: torch.fx.GraphModule, target: object) -> int:
    return sum(1 for n in gm.graph.nodes if n.op == "call_module" and n.target == target)


def up_factor(up: Up) -> int:
    """An up's measured factor (output over input height, rounded)."""
    return round(up.out_size[0] / max(up.in_size[0], 1))


def widths_fit(map_channels: int, feature_channels: int, channel_fit: str) -> bool:
    """Whether a depthwise map of ``map_channels`` can weight a ``feature_channels`` feature."""
    if map_channels == feature_channels:
        return True
    small, large = sorted((map_channels, feature_channels))
    return channel_fit == "group" and small > 0 and large % small == 0


def pair_options(
    gm: torch.fx.GraphModule, report: PairReport, mode: str, channel_fit: str = "strict"
) -> dict[str, PairOptions]:
    """The allowed choices of every pair in ``mode`` (``keep`` is always allowed)."""
    check_channel_fit(channel_fit)
    sites = {t.name: site(gm, t, mode) for t in report.transitions}
    for pair in report.pairs:  # a pair may name a transition the report's list lacks: judge it too
        for t in pair.transitions:
            sites.setdefault(t.name, site(gm, t, mode))
    return {pair.name: _options(pair, tuple(sites[t.name] for t in pair.transitions), channel_fit) for pair in report.pairs}


def _options(pair: Pair, pair_sites: tuple[Site, ...], channel_fit: str) -> PairOptions:
    """One pair's allowed choices: keep only when a site or the up rules it out; depthwise maps where widths fit."""
    reason = _ruled_out(pair, pair_sites)
    if reason:
        return PairOptions(pair, pair_sites, (IndexSpec(KEEP),), reason)
    up = pair.up
    mismatch = [
        f"{s.transition.name} reads {s.index_channels} channels but {what} has {c}"
        for s in pair_sites
        for what, c in ((f"the up {up.target}", up.out_channels), *(("a pooled feature", p) for p in s.pooled_channels))
        if not widths_fit(s.index_channels, c, channel_fit)
    ]
    other_rates = sorted({s.rate for s in pair_sites if s.rate != 2})
    allowed = tuple(spec for spec in all_choices()
                    if spec.keep or ((spec.holistic or not mismatch) and not (spec.modelwise and other_rates)))
    why = ["depthwise maps ruled out: " + "; ".join(mismatch)] if mismatch else []
    if other_rates and not mismatch:  # one modelwise module serves every stage: its region size is fixed, rate 2
        why.append(f"o2o-modelwise ruled out: the pair's transition works at rate {other_rates[0]}, and the one "
                   "modelwise IndexNet the model shares works at rate 2")
    return PairOptions(pair, pair_sites, allowed, "; ".join(why))


def _ruled_out(pair: Pair, pair_sites: tuple[Site, ...]) -> str:
    """Why no IndexNet choice fits the pair (a site the mode cannot rewrite, an up without IU); "" if some does."""
    reason = next((s.reason for s in pair_sites if not s.supported), "")
    up = pair.up
    if not reason and up.kind not in (*IU_KINDS, *MODULATED_KINDS):
        reason = f"{up.target} is a {up.kind} up: no IU replacement is defined for it"
    if not reason and pair.part is not None:
        rate, (coarsening, factor) = pair_sites[0].rate, pair.part
        if rate % (coarsening * factor):
            reason = (f"the x{factor} up {up.target} lands at 1/{coarsening} of the x{rate} transition "
                      f"{pair_sites[0].transition.name}'s input: its regions do not split the rate-{rate} ones")
    if not reason and pair.compound and up.kind in MODULATED_KINDS:
        reason = f"{up.target} is a compound x{up_factor(up)} {up.kind}: only IU ups chain maps"
    return reason


def resolve(options: dict[str, PairOptions], choice: object) -> dict[str, IndexSpec]:
    """One IndexSpec per pair from a single choice or a {pair: choice} dict ('*' = every other pair).

    A single (or '*') choice applies where a pair allows it and leaves the other pairs as they are;
    a pair named explicitly with a choice it does not allow, an unknown pair name, and different
    learned choices on pairs that share a transition raise UserError.
    """
    if isinstance(choice, dict):
        unknown = sorted(set(choice) - set(options) - {"*"})
        if unknown:
            raise UserError(
                f"no pair named {', '.join(map(repr, unknown))} in this model",
                f"{did_you_mean(unknown[0], options)}pairs are: {', '.join(options) or '(none)'}",
            )
        default = IndexSpec.parse(choice.get("*", KEEP))  # type: ignore[arg-type]
        chosen = {
            name: IndexSpec.parse(choice[name]) if name in choice else _fallback(default, opts)  # type: ignore[arg-type]
            for name, opts in options.items()
        }
    else:
        spec = IndexSpec.parse(choice)  # type: ignore[arg-type]
        chosen = {name: _fallback(spec, opts) for name, opts in options.items()}
    for name, spec in chosen.items():
        opts = options[name]
        if not any(_same_family(spec, a) for a in opts.allowed):
            raise UserError(
                f"pair {name!r} cannot take {str(spec)!r}: {opts.reason}",
                f"choose one of: {', '.join(sorted({str(a) for a in opts.allowed}))}",
            )
    _check_shared_transitions(options, chosen)
    return chosen


def _same_family(spec: IndexSpec, allowed: IndexSpec) -> bool:
    """Allowed-ness ignores the normalisation variant (allowed lists use the default one)."""
    return (spec.family, spec.nonlinear, spec.context) == (allowed.family, allowed.nonlinear, allowed.context)


def _fallback(spec: IndexSpec, options: PairOptions) -> IndexSpec:
    """A single choice for every pair: pairs that cannot take it keep their operators (a report says so)."""
    return spec if any(_same_family(spec, a) for a in options.allowed) else IndexSpec(KEEP)


def _check_shared_transitions(options: dict[str, PairOptions], chosen: dict[str, IndexSpec]) -> None:
    users: dict[str, list[tuple[str, IndexSpec]]] = {}
    for name, spec in chosen.items():
        if not spec.keep:
            for t in options[name].pair.transitions:
                users.setdefault(t.name, []).append((name, spec))
    for transition, uses in users.items():
        if len({spec for _, spec in uses}) > 1:
            listing = ", ".join(f"{name}={spec}" for name, spec in uses)
            raise UserError(
                f"pairs sharing transition {transition!r} were given different choices ({listing})",
                "ups that invert the same down share its IndexNet: give them one choice (or 'keep')",
            )


def transition_choices(options: dict[str, PairOptions], chosen: dict[str, IndexSpec]) -> dict[str, IndexSpec]:
    """The one choice each rewritten transition takes (its non-keep pairs agree, see resolve)."""
    result: dict[str, IndexSpec] = {}
    for name, spec in chosen.items():
        if not spec.keep:
            for t in options[name].pair.transitions:
                result[t.name] = spec
    return result


def remedies(gm: torch.fx.GraphModule, report: PairReport, mode: str, channel_fit: str,
             options: dict[str, PairOptions]) -> dict[str, str]:
    """What would make each limited pair take more choices: another mode, another channel fit, both; or, where
    none does, why (a rate not offered names the rate). Pairs that allow every choice get ""."""
    others = {(m, f): pair_options(gm, report, m, f) for m in MODES for f in CHANNEL_FITS if (m, f) != (mode, channel_fit)}
    result = {}
    for name, opts in options.items():
        if not opts.reason:
            result[name] = ""
            continue
        have = {str(a) for a in opts.allowed}
        better = [(m, f, alt[name]) for (m, f), alt in others.items() if {str(a) for a in alt[name].allowed} > have]
        better.sort(key=lambda b: ((b[0] != mode) + (b[1] != channel_fit), -len(b[2].allowed), MODES.index(b[0])))
        if better:
            fewest = (better[0][0] != mode) + (better[0][1] != channel_fit)
            fixes = [f"{_flags(m, f, mode, channel_fit)} allows {summarise_choices(list(alt.allowed))}"
                     for m, f, alt in better if (m != mode) + (f != channel_fit) == fewest]
            result[name] = "; or ".join(fixes[:2])
            continue
        rateless = [t for t in opts.pair.transitions if isinstance(transition_rate(t), str)]
        result[name] = "no --mode or --channel-fit allows more" + (f"; {_rate_needed(rateless[0])}" if rateless else "")
    return result


def _rate_needed(transition: Transition) -> str:
    """What rate a transition without an offered one would need: its factor, or one factor on both axes."""
    rates = {_axis_rate(n, out) for n, out in zip(transition.in_size, transition.out_size)}
    if None in rates or len(rates) != 1:
        return f"{transition.name} would need one whole factor on both axes"
    (rate,) = rates
    return f"{transition.name} would need rate {rate}, not offered (rates {', '.join(map(str, RATES))})"


def _flags(mode: str, fit: str, current_mode: str, current_fit: str) -> str:
    """The command-line flags that switch to ``mode`` and ``fit``."""
    flags = ([f"--mode {mode}"] if mode != current_mode else []) + ([f"--channel-fit {fit}"] if fit != current_fit else [])
    return " ".join(flags)


def allowed_table(model: nn.Module, example_input: object, mode: str, channel_fit: str = "strict"):
    """A DataFrame of every pair with the choices ``mode`` allows there, the reason for any limit, and what
    would lift it (``remedies``)."""
    import pandas as pd

    from indexnas.surgery.analysis import analyze

    gm, report = analyze(model, example_input)  # type: ignore[arg-type]
    options = pair_options(gm, report, mode, channel_fit)
    fixes = remedies(gm, report, mode, channel_fit, options)
    rows = [
        {
            "pair": name,
            "up": opts.pair.up.target,
            "allowed": " ".join(str(s) for s in opts.allowed),
            "reason": opts.reason,
            "fix": fixes[name],
        }
        for name, opts in options.items()
    ]
    return pd.DataFrame(rows, columns=["pair", "up", "allowed", "reason", "fix"])
