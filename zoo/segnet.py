"""SegNet (Badrinarayanan et al., TPAMI 2017) as used by the Index Networks paper: a VGG-16-BN
encoder with five max-pool stages and a decoder that unpools with the stored indices.
"""

from __future__ import annotations

from torch import Tensor, nn

from indexnas.zoo.guard import guard_input
from indexnas.zoo.layers import PoolStage, UnpoolStage, check_width, conv_bn_act, scaled

# VGG-16 encoder: output channels of each conv, per pooling stage.
ENCODER_STAGES: tuple[tuple[int, ...], ...] = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
# Decoder: output channels of each conv after the unpooling of stage 5..1 (reduce in the first conv).
DECODER_STAGES: tuple[tuple[int, ...], ...] = ((512, 512, 512), (256, 256, 256), (128, 128, 128), (64, 64), (64, 64))


def _convs(in_channels: int, out_channels: tuple[int, ...], width: float) -> tuple[nn.Sequential, int]:
    layers = []
    for channels in out_channels:
        layers.append(conv_bn_act(in_channels, scaled(channels, width)))
        in_channels = scaled(channels, width)
    return nn.Sequential(*layers), in_channels


class SegNet(nn.Module):
    """VGG-16-BN SegNet with 5 pool/unpool stages (pooled channels 64, 128, 256, 512, 512).

    Names: ``encoder.stageK.pool`` pairs with ``decoder.stageK.unpool`` (K = 1..5).
    Paper baseline (Index Networks, Table 6, 37 SUN RGB-D classes): 24.96M parameters,
    24.76 GFLOPs at 224x224x3. Measured here at width 1.0 with 37 classes: 24.957M parameters
    and 26.59e9 multiply-adds = 24.76 x 2**30.
    Difference from the original SegNet: its decoder mirrors VGG exactly (the channel reduction
    in the last conv of each decoder stage, 29.4M parameters); the layout here reduces channels
    in the first conv after each unpooling and ends with two 64-channel convs and a 3x3
    classifier: the layout that reproduces both of the Index Networks paper's figures. Convs
    before BN carry no bias. Input: any H, W >= 32; output (B, num_classes, H, W) logits.
    """

    def __init__(self, num_classes: int = 37, in_chans: int = 3, width: float = 1.0) -> None:
        super().__init__()
        width = check_width(width)
        self.encoder = nn.ModuleDict()
        channels = in_chans
        for k, out_channels in enumerate(ENCODER_STAGES, start=1):
            convs, channels = _convs(channels, out_channels, width)
            self.encoder[f"stage{k}"] = PoolStage(convs)
        self.decoder = nn.ModuleDict()
        for k, out_channels in zip(range(5, 0, -1), DECODER_STAGES):
            convs, channels = _convs(channels, out_channels, width)
            self.decoder[f"stage{k}"] = UnpoolStage(convs)
        self.head = nn.Conv2d(channels, num_classes, 3, padding=1)
        guard_input(self, "segnet", in_chans, 32, "5 max-pool stages need height and width >= 32")

    def forward(self, x: Tensor) -> Tensor:
        saved = []
        for stage in self.encoder.values():
            x, indices, size = stage(x)
            saved.append((indices, size))
        for stage, (indices, size) in zip(self.decoder.values(), reversed(saved)):
            x = stage(x, indices, size)
        return self.head(x)
