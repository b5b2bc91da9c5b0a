"""The Index Networks paper's matting baseline B11 (Table 2): a MobileNetV2 encoder whose
stride-2 convs are stride 1 with a 2x2 max pool after each stage, ASPP context, and a UNet
decoder that unpools with the stored indices and concatenates encoder features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from indexnas import ops
from indexnas.errors import UserError
from indexnas.names import did_you_mean
from indexnas.zoo.guard import guard_input
from indexnas.zoo.layers import check_width, conv_bn_act, scaled

# MobileNetV2 (Sandler et al.) inverted-residual groups: (expansion, out channels, blocks).
# Encoder stage k ends with the k-th 2x2 max pool; a stage may hold several groups, and each
# group's output is a skip for the decoder (the pooled channels are the last group's: 32, 24,
# 32, 64, 160). The stem is a 3x3 conv to 32 channels.
STAGE_GROUPS: dict[int, tuple[tuple[int, int, int], ...]] = {
    2: ((1, 16, 1), (6, 24, 2)),
    3: ((6, 32, 3),),
    4: ((6, 64, 4),),
    5: ((6, 96, 3), (6, 160, 3)),
}
BOTTLENECK_GROUP = (6, 320, 1)
ASPP_CHANNELS, CONTEXT_CHANNELS = 256, 160
ASPP_DILATIONS = (2, 4, 8)  # at output stride 32
# Decoder stage k: output channels after fusing each skip of encoder stage k, deepest first.
DECODER_CHANNELS: dict[int, tuple[int, ...]] = {5: (96, 64), 4: (32,), 3: (24,), 2: (16, 32), 1: (32,)}
DECODER_KERNEL = 5
# What each decoder stage concatenates from the encoder: the raw feature (this host's reading of B11), or the
# feature weighted by the pool's encoder index map, I_enc * X, as the authors' released IndexNet Matting code does.
SKIPS = ("raw", "indexed")
# How an inverted-residual block pads its 3x3 depthwise conv: "same" (the conv pads its own input, torchvision's
# MobileNetV2), or "padded" (the block pads its input before the 1x1 expansion conv and the depthwise conv has no
# padding, as the authors' released IndexNet Matting code writes it). Same parameters; at initialisation (BN
# shift 0) the same outputs, since the padded border stays 0 through the expansion conv, BN and ReLU6.
BLOCKS = ("same", "padded")


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expansion, 3x3 depthwise, linear 1x1 projection; identity skip
    when the channel count is kept (every block here has stride 1). ``block``: one of ``BLOCKS``."""

    def __init__(self, in_channels: int, out_channels: int, expansion: int, dilation: int = 1, block: str = "same") -> None:
        super().__init__()
        hidden = in_channels * expansion
        layers = [conv_bn_act(in_channels, hidden, 1, act=nn.ReLU6)] if expansion != 1 else []
        depthwise = conv_bn_act(hidden, hidden, 3, groups=hidden, dilation=dilation, act=nn.ReLU6)
        self.pad = dilation if block == "padded" else 0  # F.pad before the expansion: (k - 1) * dilation / 2 a side
        if self.pad:
            depthwise[0].padding = (0, 0)
        layers += [depthwise, conv_bn_act(hidden, out_channels, 1, act=None)]
        self.conv = nn.Sequential(*layers)
        self.residual = in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(F.pad(x, (self.pad,) * 4) if self.pad else x)
        return x + y if self.residual else y


def _group(in_channels: int, expansion: int, out_channels: int, blocks: int, block: str) -> nn.Sequential:
    return nn.Sequential(*(InvertedResidual(in_channels if i == 0 else out_channels, out_channels, expansion, block=block)
                           for i in range(blocks)))


class EncoderStage(nn.Module):
    """Groups of blocks at one resolution, then a 2x2 max pool with indices; returns the pooled
    feature, the indices and every group's output (the decoder's skips, shallowest first). With
    ``skip="indexed"`` the pooled group's skip is weighted by the pool's index map
    (`ops.max_index_weighted`: ``I_enc * X``, which IndexNet surgery turns into its own ``I_enc``)."""

    def __init__(self, groups: list[nn.Sequential], skip: str = "raw") -> None:
        super().__init__()
        self.groups = nn.ModuleList(groups)
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)
        self.indexed_skip = skip == "indexed"

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, list[Tensor]]:
        skips = []
        for group in self.groups:
            x = group(x)
            skips.append(x)
        pooled, indices = self.pool(x)
        if self.indexed_skip:
            skips[-1] = ops.max_index_weighted(x, indices)
        return pooled, indices, skips


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling (DeepLabv3): 1x1 conv, three dilated depthwise-separable
    3x3 convs, image pooling broadcast back over the map; concatenated and projected."""

    def __init__(self, in_channels: int, branch_channels: int, out_channels: int) -> None:
        super().__init__()
        branches = [conv_bn_act(in_channels, branch_channels, 1, act=nn.ReLU6)]
        for dilation in ASPP_DILATIONS:
            branches.append(
                nn.Sequential(
                    conv_bn_act(in_channels, in_channels, 3, groups=in_channels, dilation=dilation, act=nn.ReLU6),
                    conv_bn_act(in_channels, branch_channels, 1, act=nn.ReLU6),
                )
            )
        self.branches = nn.ModuleList(branches)
        self.image_pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), conv_bn_act(in_channels, branch_channels, 1, act=nn.ReLU6)
        )
        self.project = conv_bn_act(branch_channels * (len(branches) + 1), out_channels, 1, act=nn.ReLU6)

    def forward(self, x: Tensor) -> Tensor:
        outputs = [branch(x) for branch in self.branches]
        outputs.append(self.image_pool(x).expand_as(outputs[0]))  # broadcast: not an upsampling
        return self.project(torch.cat(outputs, 1))


class DecoderStage(nn.Module):
    """Max unpooling to the skip's size, then for each skip (deepest first): concat + 5x5 conv."""

    def __init__(self, in_channels: int, skip_channels: list[int], out_channels: list[int]) -> None:
        super().__init__()
        self.unpool = nn.MaxUnpool2d(2, 2)
        fuse = []
        for skip, out in zip(skip_channels, out_channels):
            fuse.append(conv_bn_act(in_channels + skip, out, DECODER_KERNEL, act=nn.ReLU6))
            in_channels = out
        self.fuse = nn.ModuleList(fuse)

    def forward(self, x: Tensor, indices: Tensor, skips: list[Tensor]) -> Tensor:
        x = self.unpool(x, indices, output_size=skips[-1].shape[-2:])
        for conv, skip in zip(self.fuse, reversed(skips)):
            x = conv(torch.cat([x, skip], 1))
        return x


class MattingB11(nn.Module):
    """B11: MobileNetV2 UNet with max-pooling indices, ASPP, output stride 32, RGB+trimap input.

    ``encoder.stage1`` is the stem (3x3 conv to 32 channels, stride 1) and its pool; stages
    2..5 hold the MobileNetV2 groups whose first block had stride 2 (24, 32, 64, 160-channel
    groups; the 16 and 96 groups join the stage of the group that follows them); each ends in
    ``encoder.stageK.pool`` (pooled channels 32, 24, 32, 64, 160). Then the 320-channel group,
    ASPP (dilations 2, 4, 8, image pooling; 320 -> 160), and ``decoder.stage5..1``: unpool
    (paired with ``encoder.stageK.pool``), concatenate each group output of that stage and apply
    a 5x5 conv+BN+ReLU6 (channels 96, 64 | 32 | 24 | 16, 32 | 32); ``head`` is a 5x5 conv to
    one alpha channel (raw; the task applies sigmoid or clamps).
    Paper baseline: Table 2 (B11) gives errors only, no parameter or GFLOP figures. Measured
    here at width 1.0 on 224x224x4: 3.753M parameters, 4.03 GFLOPs as conv multiply-adds / 2**30
    (4.37 fvcore GFLOPs).
    Differences from the paper's description: none in the layout above (the paper follows
    MobileNetV2 and DeepLabv3's ASPP with depthwise-separable dilated branches); the head is a
    single 5x5 conv, ASPP has no dropout, and channel counts are not rounded to multiples of 8
    at widths below 1. Input: (B, 4, H, W), H, W >= 32 (odd sizes round-trip through unpooling).
    ``skip``: what the decoder concatenates from each pooled group. "raw" (default): the feature as
    the encoder computed it. "indexed": the feature weighted by its pool's encoder index map,
    ``I_enc * X``, as the authors' released IndexNet Matting code concatenates it; on this max-pooling
    host that is the feature at each region's maximum and 0 elsewhere, and once IndexNet surgery
    replaces a pool it is that IndexNet's ``I_enc * X``. Parameters and the paper's GFLOPs are the same
    either way; the full count adds the skips' elementwise products (4.374 vs 4.372 at 224x224).
    ``block``: "same" (default) or "padded", the authors' released block layout (``BLOCKS``): each inverted
    residual pads its input before the 1x1 expansion conv and runs the depthwise conv unpadded.
    """

    def __init__(self, in_chans: int = 4, width: float = 1.0, skip: str = "raw", block: str = "same") -> None:
        super().__init__()
        width = check_width(width)
        if skip not in SKIPS:
            raise UserError(f"unknown matting skip {skip!r}", f"{did_you_mean(str(skip), SKIPS)}use one of: {', '.join(SKIPS)}")
        if block not in BLOCKS:
            raise UserError(f"unknown matting block layout {block!r}",
                            f"{did_you_mean(str(block), BLOCKS)}use one of: {', '.join(BLOCKS)}")
        stem = scaled(32, width)
        self.encoder = nn.ModuleDict({"stage1": EncoderStage([conv_bn_act(in_chans, stem, act=nn.ReLU6)], skip)})
        skip_channels = {1: [stem]}
        channels = stem
        for k, groups in STAGE_GROUPS.items():
            built = []
            skip_channels[k] = []
            for expansion, out_channels, blocks in groups:
                out = scaled(out_channels, width)
                built.append(_group(channels, expansion, out, blocks, block))
                skip_channels[k].append(out)
                channels = out
            self.encoder[f"stage{k}"] = EncoderStage(built, skip)
        expansion, out_channels, blocks = BOTTLENECK_GROUP
        self.bottleneck = _group(channels, expansion, scaled(out_channels, width), blocks, block)
        self.context = ASPP(scaled(out_channels, width), scaled(ASPP_CHANNELS, width), scaled(CONTEXT_CHANNELS, width))
        channels = scaled(CONTEXT_CHANNELS, width)
        self.decoder = nn.ModuleDict()
        for k, outs in DECODER_CHANNELS.items():
            outs_scaled = [scaled(c, width) for c in outs]
            self.decoder[f"stage{k}"] = DecoderStage(channels, skip_channels[k][::-1], outs_scaled)
            channels = outs_scaled[-1]
        self.head = nn.Conv2d(channels, 1, DECODER_KERNEL, padding=DECODER_KERNEL // 2)
        guard_input(self, "matting", in_chans, 32, "5 max-pool stages need height and width >= 32")

    def forward(self, x: Tensor) -> Tensor:
        saved = []
        for stage in self.encoder.values():
            x, indices, skips = stage(x)
            saved.append((indices, skips))
        x = self.context(self.bottleneck(x))
        for stage, (indices, skips) in zip(self.decoder.values(), reversed(saved)):
            x = stage(x, indices, skips)
        return self.head(x)
