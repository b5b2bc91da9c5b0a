"""FastDepth-NNConv5 (Wofk et al., ICRA 2019) and the Index Networks paper's FastDepth-P:
a MobileNet (v1) encoder and a decoder of 5x5 depthwise-separable convs, nearest x2 upsampling
and additive skips.
"""

from __future__ import annotations

from torch import Tensor, nn

from indexnas.zoo.guard import guard_input
from indexnas.zoo.layers import Resize, check_width, conv_bn_act, scaled

# MobileNet stages: (channels of the downsampling block, channels of the blocks after it, count).
# Stage k ends at 1/2**k resolution; the downsampling block is the first of the stage.
MOBILENET_STAGES: tuple[tuple[int, int, int], ...] = ((32, 64, 1), (128, 128, 1), (256, 256, 1), (512, 512, 5), (1024, 1024, 1))
# Decoder stage k: output channels (its 5x5 conv runs at 1/2**k, then x2 upsampling).
DECODER_CHANNELS: dict[int, int] = {5: 512, 4: 256, 3: 128, 2: 64, 1: 32}


def separable(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1) -> nn.Sequential:
    """Depthwise kxk conv + BN + ReLU, then pointwise 1x1 conv + BN + ReLU (MobileNet's block)."""
    return nn.Sequential(
        conv_bn_act(in_channels, in_channels, kernel_size, stride=stride, groups=in_channels),
        conv_bn_act(in_channels, out_channels, 1),
    )


class EncoderStage(nn.Module):
    """A downsampling block (stride 2; or stride 1 plus a 2x2 max pool after it), then blocks."""

    def __init__(self, down: nn.Module, blocks: nn.Sequential, pool: bool) -> None:
        super().__init__()
        self.down = down
        self.pool = nn.MaxPool2d(2, 2) if pool else None
        self.blocks = blocks

    def forward(self, x: Tensor) -> Tensor:
        x = self.down(x)
        if self.pool is not None:
            x = self.pool(x)
        return self.blocks(x)


class DecoderStage(nn.Module):
    """NNConv5: 5x5 depthwise-separable conv, nearest upsampling to the skip's size, optional add."""

    def __init__(self, in_channels: int, out_channels: int, add_skip: bool) -> None:
        super().__init__()
        self.conv = separable(in_channels, out_channels, 5)
        self.up = Resize("nearest")
        self.add_skip = add_skip

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = self.up(self.conv(x), skip)
        return x + skip if self.add_skip else x


class FastDepth(nn.Module):
    """FastDepth-NNConv5 (``pooled=False``) or FastDepth-P-NNConv5 (``pooled=True``).

    Encoder: MobileNet v1, 5 stages (``encoder.stage1..5``), outputs 64/128/256/512/1024 channels
    at 1/2..1/32. FastDepth downsamples with stride-2 convs; FastDepth-P makes them stride 1
    and puts ``encoder.stageK.pool`` (2x2 max pool) right after that block's pointwise conv,
    so the pooled channels are 32, 128, 256, 512, 1024. Decoder: ``decoder.stage5..1`` each a
    5x5 depthwise-separable conv then ``up`` (nearest, to the skip's size); stages 4, 3, 2 add
    the encoder outputs of stages 3, 2, 1; ``head`` is a 1x1 conv to one depth channel.
    Paper baselines (Index Networks, Table 7, 224x224x3): FastDepth 3.96M parameters,
    0.69 GFLOPs; FastDepth-P 3.96M, 1.01 GFLOPs. Measured here at width 1.0: 3.961M parameters;
    0.737e9 and 1.088e9 multiply-adds = 0.69 and 1.01 x 2**30.
    Differences from FastDepth: no pruning (the paper's baseline is unpruned), and the head
    has no BN/ReLU (one bias instead; the raw depth is returned). Input: FastDepth any H, W
    (stride-2 convs round up, upsampling follows the skip sizes); FastDepth-P H, W >= 32.
    """

    def __init__(self, in_chans: int = 3, width: float = 1.0, pooled: bool = False) -> None:
        super().__init__()
        width = check_width(width)
        stride = 1 if pooled else 2
        self.encoder = nn.ModuleDict()
        channels = in_chans
        for k, (down_channels, channels_after, count) in enumerate(MOBILENET_STAGES, start=1):
            down_out, out = scaled(down_channels, width), scaled(channels_after, width)
            down = (
                conv_bn_act(channels, down_out, stride=stride)
                if k == 1
                else separable(channels, down_out, stride=stride)
            )
            blocks = nn.Sequential(*(separable(down_out if i == 0 else out, out) for i in range(count)))
            self.encoder[f"stage{k}"] = EncoderStage(down, blocks, pooled)
            channels = out
        self.decoder = nn.ModuleDict()
        for k, out_channels in DECODER_CHANNELS.items():
            out = scaled(out_channels, width)
            self.decoder[f"stage{k}"] = DecoderStage(channels, out, add_skip=k in (4, 3, 2))
            channels = out
        self.head = nn.Conv2d(channels, 1, 1)
        name, min_size, rule = (
            ("fastdepth_p", 32, "5 max-pool stages need height and width >= 32")
            if pooled
            else ("fastdepth", 1, "any height and width work")
        )
        guard_input(self, name, in_chans, min_size, rule)

    def forward(self, x: Tensor) -> Tensor:
        features = [x]  # features[k]: the encoder output at 1/2**k
        for stage in self.encoder.values():
            features.append(stage(features[-1]))
        y = features[-1]
        for k, stage in zip(DECODER_CHANNELS, self.decoder.values()):
            y = stage(y, features[k - 1])
        return self.head(y)
