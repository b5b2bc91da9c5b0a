"""What the pair finder reports: resolution changes in a traced model and how they pair.

A *transition* is one downsampling step between two resolutions (parallel downs between the
same two resolutions, e.g. a residual block's main path and shortcut, form one transition).
An *up* is one upsampling. A *pair* ties an up to the transitions it inverts: one for an exact
inverse, several for a compound factor (a x4 up undoing two x2 downs), or part of one (each of two
x2 ups undoing a x4 down). Names are the traced
graph's qualified node names, the ones a user recognises from ``model.named_modules()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Size = tuple[int, int]


@dataclass(frozen=True)
class Down:
    """One node that lowers the resolution."""

    node: str  # fx node name in the traced graph
    target: str  # qualified module name ("encoder.stage2.pool") or function name ("max_pool2d")
    kind: str  # "maxpool" | "avgpool" | "conv" | "pixel_unshuffle" | "interpolate" | ...
    in_size: Size
    out_size: Size
    in_channels: int
    out_channels: int
    source: str = ""  # fx node name of the high-resolution input, before any padding folded into the down
    padding: tuple[int, int] | None = (0, 0)  # that folded padding, total per axis (H, W); None if computed at run time
    # (top, left) of that padding where pointwise ops (1x1 conv, BN, activation) lie between the pad and the down:
    # the feature the down reads, cropped by these to ``in_size``, is the unpadded feature; None when the pad feeds
    # the down directly (``source`` is then that feature).
    crop: tuple[int, int] | None = None


@dataclass(frozen=True)
class Transition:
    """One downsampling step: all downs that take the same tensor resolution to the next one."""

    name: str  # the main-path down's target: a stable, readable id
    downs: tuple[Down, ...]  # main path first, then parallel shortcuts
    in_size: Size
    out_size: Size
    channels: int  # channels of the high-resolution feature the IndexNet reads (the main down's input)

    @property
    def factor(self) -> int:
        return round(self.in_size[0] / max(self.out_size[0], 1))


@dataclass(frozen=True)
class Up:
    """One node that raises the resolution."""

    node: str
    target: str
    kind: str  # "interpolate" | "upsample" | "unpool" | "convtranspose" | "pixel_shuffle"
    in_size: Size
    out_size: Size
    in_channels: int  # channels of the low-resolution decoder feature IU would upsample
    out_channels: int
    mode: str = ""  # interpolation mode where there is one ("nearest", "bilinear", ...)


@dataclass(frozen=True)
class Pair:
    """An up and the transitions it inverts, in encoder order (highest resolution first)."""

    name: str  # stable id used in recipes and search parameters, e.g. "encoder.stage2.pool"
    up: Up
    transitions: tuple[Transition, ...]
    # An up that undoes part of one transition (a x4 down undone by two x2 ups): (c, f), the up lands at 1/c of
    # the transition's input resolution and enlarges f times; it takes the transition's decoder map coarsened c
    # times. None for an up that undoes whole transitions.
    part: tuple[int, int] | None = None

    @property
    def compound(self) -> bool:
        return len(self.transitions) > 1


@dataclass(frozen=True)
class Unpaired:
    """An up with no partner, or an ambiguous one, and why: reported, never guessed."""

    up: Up
    reason: str
    candidates: tuple[str, ...] = ()
    code: str = ""  # short category: "no-down" | "global-pool" | "partial" | "ambiguous"


@dataclass
class PairReport:
    """Everything find_pairs learned about a model."""

    pairs: list[Pair] = field(default_factory=list)
    unpaired: list[Unpaired] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)  # all downs, paired or not
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (node, why) e.g. SE global pools
    warnings: list[str] = field(default_factory=list)  # e.g. ops without a resampling handler
