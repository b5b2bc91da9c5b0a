"""DnCNN (Zhang et al., TIP 2017) and the Index Networks paper's DnCNN-SegNet: denoisers that
predict the noise (residual learning); the restored image is ``noisy - model(noisy)``.
"""

from __future__ import annotations

from torch import Tensor, nn

from indexnas.zoo.guard import guard_input
from indexnas.zoo.layers import PoolStage, UnpoolStage, check_width, conv_bn_act, scaled


class DnCNN(nn.Module):
    """17-layer DnCNN: conv+ReLU, 15 x (conv+BN+ReLU), conv; 3x3 kernels, 64 channels, no resizing.

    Paper baseline (Index Networks, Table 5): 0.56M parameters, 25.89 GFLOPs at 224x224x1.
    Measured here at width 1.0: 0.556M parameters; fvcore counts 27.80e9 multiply-adds, and
    27.80e9 / 2**30 = 25.89: the paper's GFLOPs are multiply-adds in units of 2**30.
    Differences from the DnCNN paper: none in the layers; the output is the noise estimate
    (residual learning) and the caller subtracts it. Input: any size (B, in_chans, H, W);
    output: the same shape.
    """

    def __init__(self, in_chans: int = 1, width: float = 1.0) -> None:
        super().__init__()
        channels = scaled(64, check_width(width))
        layers = [conv_bn_act(in_chans, channels, bias=True, norm=False)]
        layers += [conv_bn_act(channels, channels) for _ in range(15)]
        layers.append(conv_bn_act(channels, in_chans, bias=False, norm=False, act=None))
        self.body = nn.Sequential(*layers)
        guard_input(self, "dncnn", in_chans, 1, "any height and width work")

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


def _vgg_convs(channels: list[int], *, first_norm: bool = True) -> nn.Sequential:
    """3x3 conv(+bias)+BN+ReLU layers along ``channels`` (VGG style); the first may skip BN."""
    return nn.Sequential(
        *(
            conv_bn_act(cin, cout, bias=True, norm=first_norm or i > 0)
            for i, (cin, cout) in enumerate(zip(channels[:-1], channels[1:]))
        )
    )


class DnCNNSegNet(nn.Module):
    """The paper's 17-layer DnCNN-SegNet: 9 VGG-16 encoder layers with 3 max-pool stages,
    7 decoder layers with max unpooling, and the prediction layer.

    Layers (channels at width 1.0): encoder.stage1 1->64->64, pool; encoder.stage2 ->128->128,
    pool; encoder.stage3 ->256->256->256, pool (pooled channels 64, 128, 256); bottleneck
    ->512->512 (VGG conv4_1, conv4_2) and ->256 (first decoder layer); decoder.stage3 unpool,
    ->128->128; decoder.stage2 unpool, ->64->64; decoder.stage1 unpool, ->64->64; head ->1.
    Paper baseline (Table 5): 7.09M parameters, 18.14 GFLOPs at 224x224x1. Measured here:
    7.088M parameters and 19.48e9 multiply-adds = 18.14 x 2**30.
    The paper only says "the first 9 layers follow VGG-16 ... 7 decoding layers"; the decoder
    widths above (channel reduction in the first conv after each unpooling) are the choice that
    reproduces both published figures; convolutions keep VGG's biases (7.09M needs them) and,
    as in DnCNN, the first layer has no BN. The output is the noise estimate, like DnCNN.
    Input: any H, W >= 8 (odd sizes round-trip through unpooling with the recorded size).
    """

    def __init__(self, in_chans: int = 1, width: float = 1.0) -> None:
        super().__init__()
        c64, c128, c256, c512 = (scaled(c, check_width(width)) for c in (64, 128, 256, 512))
        self.encoder = nn.ModuleDict(
            {
                "stage1": PoolStage(_vgg_convs([in_chans, c64, c64], first_norm=False)),
                "stage2": PoolStage(_vgg_convs([c64, c128, c128])),
                "stage3": PoolStage(_vgg_convs([c128, c256, c256, c256])),
            }
        )
        self.bottleneck = _vgg_convs([c256, c512, c512, c256])
        self.decoder = nn.ModuleDict(
            {
                "stage3": UnpoolStage(_vgg_convs([c256, c128, c128])),
                "stage2": UnpoolStage(_vgg_convs([c128, c64, c64])),
                "stage1": UnpoolStage(_vgg_convs([c64, c64, c64])),
            }
        )
        self.head = nn.Conv2d(c64, in_chans, 3, padding=1)
        guard_input(self, "dncnn_segnet", in_chans, 8, "3 max-pool stages need height and width >= 8")

    def forward(self, x: Tensor) -> Tensor:
        saved = []
        for stage in self.encoder.values():
            x, indices, size = stage(x)
            saved.append((indices, size))
        x = self.bottleneck(x)
        for stage, (indices, size) in zip(self.decoder.values(), reversed(saved)):
            x = stage(x, indices, size)
        return self.head(x)
