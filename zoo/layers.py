"""Building blocks shared by the zoo's host models: conv-BN-activation, pooling and unpooling
stages that remember what the decoder needs, and size-following upsamplers.

Everything is plain PyTorch (nn.MaxPool2d / nn.MaxUnpool2d / F.interpolate /
nn.ConvTranspose2d), so torch.fx traces it and the surgery sees ordinary operators. No Python
int is ever read off a tensor: sizes travel as ``tensor.shape[-2:]`` into the op that needs them.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch.nn.functional as F
from torch import Size, Tensor, nn

from indexnas.errors import UserError

MIN_CHANNELS = 8  # the narrowest layer a width multiplier may produce


def check_width(width: float) -> float:
    """Validate a width multiplier: a finite number > 0."""
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not math.isfinite(width) or width <= 0:
        raise UserError(
            f"width must be a positive number, got {width!r}",
            "use 1.0 for the paper's channel counts, or e.g. 0.25 for a fast CPU model",
        )
    return float(width)


def scaled(channels: int, width: float) -> int:
    """``channels`` times the width multiplier, rounded, never below MIN_CHANNELS (exact at 1.0)."""
    return max(MIN_CHANNELS, int(round(channels * width)))


def conv_bn_act(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    *,
    stride: int = 1,
    groups: int = 1,
    dilation: int = 1,
    bias: bool = False,
    norm: bool = True,
    act: type[nn.Module] | None = nn.ReLU,
) -> nn.Sequential:
    """A "same"-padded convolution, optionally followed by BatchNorm and an activation.

    Submodules are named ``conv``, ``bn``, ``act`` so module paths read well in a traced graph.
    """
    padding = dilation * (kernel_size - 1) // 2
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        conv=nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding, dilation=dilation, groups=groups, bias=bias
        )
    )
    if norm:
        layers["bn"] = nn.BatchNorm2d(out_channels)
    if act is not None:
        layers["act"] = act()
    return nn.Sequential(layers)


class PoolStage(nn.Module):
    """Convolutions, then a 2x2/2 max pool that returns its indices and the pre-pool size.

    The size lets the paired ``UnpoolStage`` restore odd sizes exactly (the pool floors).
    """

    def __init__(self, convs: nn.Sequential) -> None:
        super().__init__()
        self.convs = convs
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Size]:
        x = self.convs(x)
        size = x.shape[-2:]
        x, indices = self.pool(x)
        return x, indices, size


class UnpoolStage(nn.Module):
    """A 2x2 max unpooling to the recorded pre-pool size, then convolutions (SegNet's decoder stage)."""

    def __init__(self, convs: nn.Sequential) -> None:
        super().__init__()
        self.unpool = nn.MaxUnpool2d(2, 2)
        self.convs = convs

    def forward(self, x: Tensor, indices: Tensor, size: Size) -> Tensor:
        return self.convs(self.unpool(x, indices, output_size=size))


class Resize(nn.Module):
    """Nearest or bilinear upsampling: to ``like``'s height and width when given, else x2.

    Following a skip tensor's size (rather than a fixed x2) makes odd input sizes work.
    """

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def forward(self, x: Tensor, like: Tensor | None = None) -> Tensor:
        align = False if self.mode == "bilinear" else None
        if like is None:
            return F.interpolate(x, scale_factor=2.0, mode=self.mode, align_corners=align)
        return F.interpolate(x, size=like.shape[-2:], mode=self.mode, align_corners=align)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


def match_size(x: Tensor, like: Tensor) -> Tensor:
    """Zero-pad or crop ``x`` at the bottom/right to ``like``'s height and width (no-op when equal)."""
    return F.pad(x, [0, like.shape[-1] - x.shape[-1], 0, like.shape[-2] - x.shape[-2]])
