"""A UNet decoder over any timm backbone (``timm.create_model(name, features_only=True)``),
with nearest, bilinear or transposed-convolution upsampling, so surgery can be tried on every
timm family.
"""

from __future__ import annotations

import math
import os

import timm
import torch
from torch import Tensor, nn

from indexnas.errors import UserError
from indexnas.names import did_you_mean
from indexnas.zoo.guard import guard_input
from indexnas.zoo.layers import Resize, check_width, conv_bn_act, match_size, scaled

UPSAMPLE_MODES: tuple[str, ...] = ("nearest", "bilinear", "transposed")


def decoder_channels(level: int, width: float) -> int:
    """Output channels of the stage that upsamples from 1/2**level: 16 * 2**(level - 1) (smp's 256..16)."""
    return scaled(16 * 2 ** (level - 1), width)


def _backbone(name: str, in_chans: int, weights: str | None = None) -> nn.Module:
    """timm's feature extractor, random-init or from a local timm checkpoint of that model (never downloaded)."""
    if not isinstance(name, str) or not name:
        raise UserError(f"backbone must be a timm model name, got {name!r}", "e.g. backbone='resnet18'")
    if not timm.is_model(name):
        raise UserError(
            f"unknown timm model {name!r}",
            f"{did_you_mean(name, timm.list_models())}list names with `indexnas models 'timm:PATTERN*'` "
            "(timm.list_models), e.g. resnet18, efficientnet_b0, convnext_atto",
        )
    local = {}
    if weights is not None:
        if not os.path.isfile(weights):
            raise UserError(f"backbone_weights={weights!r} is not a local file",
                            f"save one with torch.save(timm.create_model({name!r}).state_dict(), PATH); nothing is downloaded")
        local = {"pretrained": True, "pretrained_cfg_overlay": {"file": os.fspath(weights)}}  # timm's local-file path
    try:
        return timm.create_model(name, features_only=True, in_chans=in_chans, **({"pretrained": False} | local))
    except (RuntimeError, TypeError, ValueError, AssertionError, KeyError) as error:
        if weights is not None:
            raise UserError(f"timm could not load {weights} into {name}: {str(error).splitlines()[0]}",
                            f"pass a checkpoint of the timm model {name!r} (its state_dict)") from error
        raise UserError(
            f"timm model {name!r} cannot be built as a feature extractor (features_only=True): {error}",
            "pick a backbone that supports features_only (most CNNs: resnet18, efficientnet_b0, convnext_atto, ...)",
        ) from error


def _levels(name: str, reductions: list[int]) -> list[int]:
    """log2 of each feature's reduction; they must be distinct powers of two, increasing."""
    levels = [int(math.log2(r)) if r > 0 and r & (r - 1) == 0 else -1 for r in reductions]
    if -1 in levels or levels != sorted(set(levels)):
        raise UserError(
            f"timm backbone {name!r} has feature reductions {reductions}; the UNet decoder needs "
            "distinct, increasing powers of two",
            "pick another backbone or pass out_indices that give reductions like 2, 4, 8, 16, 32",
        )
    return levels


class UpStage(nn.Module):
    """Upsample x2 (to the skip's size), concatenate the skip if any, two 3x3 conv+BN+ReLU."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, upsample: str) -> None:
        super().__init__()
        self.transposed = upsample == "transposed"
        self.up = nn.ConvTranspose2d(in_channels, in_channels, 2, 2) if self.transposed else Resize(upsample)
        self.has_skip = skip_channels > 0
        self.convs = nn.Sequential(
            conv_bn_act(in_channels + skip_channels, out_channels), conv_bn_act(out_channels, out_channels)
        )

    def forward(self, x: Tensor, target: Tensor | None) -> Tensor:
        """``target``: the skip (concatenated) or, without a skip, a tensor whose size to take (or None: x2)."""
        if self.transposed:
            x = self.up(x)
            if target is not None:
                x = match_size(x, target)
        else:
            x = self.up(x, target)
        if self.has_skip:
            x = torch.cat([x, target], 1)
        return self.convs(x)


class TimmUNet(nn.Module):
    """UNet over a timm ``features_only`` backbone.

    Decoder: ``decoder.stageN`` for N = log2(deepest reduction) down to 1; stage N upsamples
    from 1/2**N to 1/2**(N-1) (``up``: interpolation to the skip's size, or a 2x2 stride-2
    ConvTranspose2d then zero-pad/crop to it), concatenates the backbone feature at 1/2**(N-1)
    when there is one, and applies two 3x3 conv+BN+ReLU (channels 16 * 2**(N-1) x width: 256,
    128, 64, 32, 16 for a 5-level backbone). Stages below the shallowest feature have no skip:
    a backbone whose first feature is at 1/4 (ConvNeXt's stem) gets two x2 stages (stage2, stage1)
    rather than one x4; the last stage takes the input's size. ``head``: 3x3 conv to num_classes.
    No paper baseline (the paper has no UNet host); over resnet18 at width 1.0 it has 14.33M
    parameters and 4.15 fvcore GFLOPs at 224x224x3. Input: (B, in_chans, H, W), H, W >= the
    backbone's largest reduction (usually 32) and whatever the backbone itself requires; odd
    sizes work for all three upsampling modes. The backbone is random-init (pretrained=False), or loads
    ``backbone_weights``: a local timm checkpoint of the backbone (timm's ``pretrained_cfg_overlay=dict(file=...)``).
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        upsample: str = "nearest",
        num_classes: int = 1,
        in_chans: int = 3,
        width: float = 1.0,
        backbone_weights: str | None = None,
    ) -> None:
        super().__init__()
        width = check_width(width)
        if upsample not in UPSAMPLE_MODES:
            raise UserError(f"unknown upsample mode {upsample!r}", f"use one of: {', '.join(UPSAMPLE_MODES)}")
        self.encoder = _backbone(backbone, in_chans, backbone_weights)
        reductions = list(self.encoder.feature_info.reduction())
        levels = _levels(backbone, reductions)
        skip_index = {level: i for i, level in enumerate(levels)}
        channels = self.encoder.feature_info.channels()[-1]
        self.decoder = nn.ModuleDict()
        self.plan: list[tuple[str, int | None]] = []  # (stage name, index of its skip feature or None)
        for level in range(levels[-1], 0, -1):
            skip = skip_index.get(level - 1)
            skip_channels = self.encoder.feature_info.channels()[skip] if skip is not None else 0
            out = decoder_channels(level, width)
            self.decoder[f"stage{level}"] = UpStage(channels, skip_channels, out, upsample)
            self.plan.append((f"stage{level}", skip))
            channels = out
        self.head = nn.Conv2d(channels, num_classes, 3, padding=1)
        guard_input(
            self,
            f"unet over {backbone}",
            in_chans,
            max(reductions),
            f"the backbone reduces by up to {max(reductions)}, so height and width must be >= {max(reductions)}",
        )

    def forward(self, x: Tensor) -> Tensor:
        features = self.encoder(x)
        y = features[-1]
        last = len(self.plan) - 1
        for i, (name, skip) in enumerate(self.plan):
            target = features[skip] if skip is not None else (x if i == last else None)
            y = self.decoder[name](y, target)
        return self.head(y)
