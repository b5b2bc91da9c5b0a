"""Index networks: modules mapping a feature ``X`` to its encoder and decoder index maps, at rate k.

Every index module returns ``(I_enc, I_dec)`` at ``X``'s resolution (0 on the last ``H % k`` rows and
``W % k`` columns) for k x k regions at stride k (k = 2, the paper's, by default). The five learned
families follow ``docs/indexnet-spec.md`` exactly (no bias, BN, ReLU6, grouped convs); the k*k columns
of a depthwise family are fused into one convolution with the same weights count (a grouped 1x1 head
keeps them independent). Baselines (``max``, ``hmi``, ``avg``) are parameter-free index functions
behind the same interface.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from indexnas import ops
from indexnas.errors import UserError
from indexnas.spec import IndexSpec

@dataclass(frozen=True)
class _Layout:
    """How one family shapes its convolutions for a C-channel feature (docs/indexnet-spec.md, the families' table)."""

    in_channels: int
    out_channels: int  # region logits: Ci * k*k
    hidden: int  # nonlinear width (all columns together)
    conv_groups: int
    head_groups: int
    column_major: bool  # output ordered (column, channel): needs a reorder to (channel, column)


def _layout(family: str, channels: int, rate: int) -> _Layout:
    c, columns = channels, rate * rate  # one column per position of the k x k region
    if family == "holistic":  # Conv(C->k*k) | Conv(C->2C), BN, ReLU6, Conv1x1(2C->k*k)
        return _Layout(c, columns, 2 * c, 1, 1, column_major=False)
    if family == "m2o":  # k*k columns of Conv(C->C) | Conv(C->2C), BN, ReLU6, Conv1x1(2C->C)
        return _Layout(c, columns * c, columns * 2 * c, 1, columns, column_major=True)
    if family == "o2o-unshared":  # the same with groups=C: channel c only sees slice c
        return _Layout(c, columns * c, columns * 2 * c, c, columns * c, column_major=False)
    if family in ("o2o-shared", "o2o-modelwise"):  # Conv(1->1) | Conv(1->2), BN, ReLU6, Conv1x1(2->1)
        return _Layout(1, columns, columns * 2, 1, columns, column_major=False)
    raise ValueError(f"{family!r} is not a learned IndexNet family")


class IndexNet(nn.Module):
    """A learned index network of one family (holistic, M2O, O2O unshared/shared/modelwise) at rate ``rate``."""

    def __init__(self, spec: IndexSpec | str, channels: int, rate: int = ops.RATE) -> None:
        super().__init__()
        spec = IndexSpec.parse(spec)
        if not spec.learned:
            raise UserError(f"{str(spec)!r} is not a learned IndexNet family", "use build_index_module()")
        if channels < 1:
            raise UserError(f"an IndexNet needs at least one input channel, got {channels}")
        self.spec_text = str(spec)
        self.channels = channels
        self.rate = ops.check_rate(rate)
        self.enc_norm = spec.enc_norm
        self.dec_norm = spec.dec_norm
        self.slicewise = spec.family in ("o2o-shared", "o2o-modelwise")
        lay = _layout(spec.family, channels, rate)
        self.column_major = lay.column_major
        k, pad = spec.first_conv(rate)

        def first(out: int) -> nn.Conv2d:
            return nn.Conv2d(lay.in_channels, out, k, stride=rate, padding=pad, groups=lay.conv_groups, bias=False)

        if spec.nonlinear:
            self.body = nn.Sequential(
                first(lay.hidden),
                nn.BatchNorm2d(lay.hidden),
                nn.ReLU6(inplace=True),
                nn.Conv2d(lay.hidden, lay.out_channels, 1, groups=lay.head_groups, bias=False),
            )
        else:
            self.body = nn.Sequential(first(lay.out_channels))

    def extra_repr(self) -> str:
        return f"{self.spec_text}, channels={self.channels}" + (f", rate={self.rate}" if self.rate != ops.RATE else "")

    def region_logits(self, x: Tensor) -> Tensor:
        """Raw logits ``(B, Ci*k*k, h, w)``, channel-major: position j of channel c at c*k*k+j."""
        if self.slicewise:
            return self._slicewise_logits(x)
        logits = self.body(x)
        if self.column_major:
            logits = logits.unflatten(1, (self.rate * self.rate, -1)).transpose(1, 2).flatten(1, 2)
        return logits

    def _slicewise_logits(self, x: Tensor) -> Tensor:
        """The 1-channel index function on every slice of ``x``: ``body`` on ``(B*C, 1, H, W)``.

        The first convolution runs as one convolution over ``(B, C, H, W)`` grouped by slice, its
        weights tiled C times: several times faster than a one-channel convolution over a B*C batch.
        The rest of the body (BN over all slices, ReLU6, the 1x1 head) runs on the B*C batch.
        """
        slices = x.shape[1]
        first, *rest = self.body
        tiled = first.weight.unsqueeze(0).expand(slices, -1, -1, -1, -1).flatten(0, 1)
        logits = F.conv2d(x, tiled, stride=first.stride, padding=first.padding, groups=slices)
        if rest:
            logits = logits.unflatten(1, (slices, -1)).flatten(0, 1)
            for layer in rest:
                logits = layer(logits)
            logits = logits.unflatten(0, (x.shape[0], slices)).flatten(1, 2)
        return logits

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return ops.index_maps(self.region_logits(x), self.enc_norm, self.dec_norm, x, self.rate)


def _one_hot_max(x: Tensor, rate: int) -> Tensor:
    """One-hot map of each k x k region's maximum, with max_pool2d's own tie-breaking."""
    pooled, indices = F.max_pool2d(x, rate, return_indices=True)
    return F.max_unpool2d(torch.ones_like(pooled), indices, rate, output_size=x.shape[-2:])


class _FixedIndex(nn.Module):
    """A parameter-free index function at rate ``rate``."""

    def __init__(self, rate: int = ops.RATE) -> None:
        super().__init__()
        self.rate = ops.check_rate(rate)

    def extra_repr(self) -> str:
        return f"rate={self.rate}" if self.rate != ops.RATE else ""


class MaxIndex(_FixedIndex):
    """``max``: max-pooling indices; IP is then max pooling and IU max unpooling, bit for bit."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        one_hot = _one_hot_max(x.detach(), self.rate)
        return one_hot, one_hot


class HolisticMaxIndex(_FixedIndex):
    """``hmi``: max-pooling indices of the channel-wise maximum, shared by all channels."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        one_hot = _one_hot_max(x.detach().amax(1, keepdim=True), self.rate)
        return one_hot, one_hot


class UniformIndex(_FixedIndex):
    """``avg``: uniform indices; IP is average pooling and IU nearest upsampling."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        k = self.rate
        ones = ops.pad_remainder(F.interpolate(torch.ones_like(F.avg_pool2d(x[:, :1], k)), scale_factor=float(k)), x, k)
        return ones / (k * k), ones


def build_index_module(spec: IndexSpec | str, channels: int, rate: int = ops.RATE) -> nn.Module:
    """The index module for one choice at a C-channel feature and a rate-``rate`` transition (``keep`` has none)."""
    spec = IndexSpec.parse(spec)
    if spec.learned:
        return IndexNet(spec, channels, rate)
    fixed = {"max": MaxIndex, "hmi": HolisticMaxIndex, "avg": UniformIndex}
    if spec.family not in fixed:
        raise UserError(f"{str(spec)!r} leaves the operators in place: it has no index module")
    return fixed[spec.family](rate)
