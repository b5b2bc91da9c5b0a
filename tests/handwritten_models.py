"""Hand-written encoder-decoders in the styles found in the wild, for the pair-finder tests.

Each is small (a few channels) and written the way people write them: module vs functional
ops, max pooling with indices, transposed convolutions, ``size=skip.shape`` interpolation,
a pooling module reused at every stage, residual blocks whose shortcut also downsamples,
squeeze-and-excitation gates, channels-last blocks, pixel (un)shuffle, ASPP image pooling.
"""

from __future__ import annotations

import functools

import torch
import torch.utils._pytree
import torch.nn.functional as F
from torch import Tensor, nn


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SegNetModules(nn.Module):
    """SegNet with nn.MaxPool2d(return_indices=True) / nn.MaxUnpool2d modules and output_size."""

    def __init__(self, widths: tuple[int, ...] = (8, 16, 32)) -> None:
        super().__init__()
        chans = (3, *widths)
        self.enc = nn.ModuleList(conv_bn_relu(a, b) for a, b in zip(chans[:-1], chans[1:]))
        self.pools = nn.ModuleList(nn.MaxPool2d(2, 2, return_indices=True) for _ in widths)
        self.unpools = nn.ModuleList(nn.MaxUnpool2d(2, 2) for _ in widths)
        self.dec = nn.ModuleList(conv_bn_relu(b, max(a, 8)) for a, b in reversed(list(zip(chans[:-1], chans[1:]))))
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x: Tensor) -> Tensor:
        indices, sizes = [], []
        for block, pool in zip(self.enc, self.pools):
            x = block(x)
            sizes.append(x.shape[-2:])
            x, index = pool(x)
            indices.append(index)
        for block, unpool, index, size in zip(self.dec, reversed(self.unpools), reversed(indices), reversed(sizes)):
            x = block(unpool(x, index, output_size=size))
        return self.head(x)


class SegNetFunctional(nn.Module):
    """SegNet written with F.max_pool2d(return_indices=True) and F.max_unpool2d."""

    def __init__(self) -> None:
        super().__init__()
        self.enc1, self.enc2 = conv_bn_relu(3, 8), conv_bn_relu(8, 16)
        self.dec2, self.dec1 = conv_bn_relu(16, 8), nn.Conv2d(8, 2, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        e1 = self.enc1(x)
        p1, i1 = F.max_pool2d(e1, 2, 2, return_indices=True)
        e2 = self.enc2(p1)
        p2, i2 = F.max_pool2d(e2, 2, 2, return_indices=True)
        d2 = self.dec2(F.max_unpool2d(p2, i2, 2, 2, output_size=e2.shape[-2:]))
        return self.dec1(F.max_unpool2d(d2, i1, 2, 2, output_size=e1.shape[-2:]))


class UNetSharedPool(nn.Module):
    """The textbook UNet: one ``self.pool`` reused at every stage, F.interpolate(size=skip), concat."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.e1, self.e2, self.e3 = conv_bn_relu(3, 8), conv_bn_relu(8, 16), conv_bn_relu(16, 32)
        self.d2, self.d1 = conv_bn_relu(48, 16), conv_bn_relu(24, 8)
        self.head = nn.Conv2d(8, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        a = self.e1(x)
        b = self.e2(self.pool(a))
        c = self.e3(self.pool(b))
        d = self.d2(torch.cat([F.interpolate(c, size=b.shape[-2:], mode="bilinear", align_corners=False), b], 1))
        return self.head(self.d1(torch.cat([F.interpolate(d, size=a.shape[-2:]), a], 1)))


class UpTransposed(nn.Module):
    """milesial-style up block: ConvTranspose2d x2, pad to the skip's size, concat, conv."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cin // 2, 2, stride=2)
        self.conv = conv_bn_relu(cin // 2 + cout, cout)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = self.up(x)
        dy, dx = skip.size(2) - x.size(2), skip.size(3) - x.size(3)
        x = F.pad(x, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([skip, x], dim=1))


class UNetTransposed(nn.Module):
    """UNet with stride-2 convolution downs and transposed-convolution ups (any input size)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = conv_bn_relu(3, 8)
        self.down1, self.down2 = conv_bn_relu(8, 16, stride=2), conv_bn_relu(16, 32, stride=2)
        self.up2, self.up1 = UpTransposed(32, 16), UpTransposed(16, 8)

    def forward(self, x: Tensor) -> Tensor:
        s0 = self.stem(x)
        s1 = self.down1(s0)
        s2 = self.down2(s1)
        return self.up1(self.up2(s2, s1), s0)


class ResidualDown(nn.Module):
    """A ResNet basic block whose main path and shortcut both downsample (one transition)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, 2, bias=False), nn.BatchNorm2d(cout))
        self.conv1 = conv_bn_relu(cin, cout, stride=2)
        self.conv2 = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        shortcut = self.shortcut(x)  # computed first: graph order does not decide the main path
        return F.relu(self.conv2(self.conv1(x)) + shortcut)


class SqueezeExcite(nn.Module):
    """An SE gate: a global pool whose input size may equal an up's output size."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.fc(x.mean((2, 3), keepdim=True))) * x


class ResUNetSE(nn.Module):
    """Residual downs with shortcuts, SE gates at every level, nn.Upsample ups added to skips."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(conv_bn_relu(3, 8), SqueezeExcite(8))
        self.layer1 = nn.Sequential(ResidualDown(8, 16), SqueezeExcite(16))
        self.layer2 = nn.Sequential(ResidualDown(16, 32), SqueezeExcite(32))
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.lat2, self.lat1 = nn.Conv2d(32, 16, 1), nn.Conv2d(16, 8, 1)
        self.head = nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        s0 = self.stem(x)
        s1 = self.layer1(s0)
        s2 = self.layer2(s1)
        y = self.up(self.lat2(s2)) + s1
        y = self.up(self.lat1(y)) + s0
        return self.head(y)


class StackedHourglass(nn.Module):
    """Two hourglasses in sequence: each up pairs with its own hourglass's down, not the first one."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = conv_bn_relu(3, 8)
        self.down_a, self.down_b = conv_bn_relu(8, 8, 2), conv_bn_relu(8, 8, 2)
        self.mid_a, self.mid_b = conv_bn_relu(8, 8), conv_bn_relu(8, 8)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        x = x + F.interpolate(self.mid_a(self.down_a(x)), scale_factor=2.0)
        return x + F.interpolate(self.mid_b(self.down_b(x)), scale_factor=2.0)


class CompoundHead(nn.Module):
    """Two x2 downs undone by one x4 bilinear up (compound), and a x4 patchify down undone by a x4 up."""

    def __init__(self) -> None:
        super().__init__()
        self.down1, self.down2 = conv_bn_relu(3, 8, 2), conv_bn_relu(8, 16, 2)
        self.patchify = nn.Conv2d(3, 16, 4, stride=4)
        self.head = nn.Conv2d(16, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        a = F.interpolate(self.down2(self.down1(x)), scale_factor=4.0, mode="bilinear", align_corners=False)
        b = F.interpolate(self.patchify(x), scale_factor=4.0, mode="nearest")
        return self.head(a + b)


class PixelShuffleUNet(nn.Module):
    """PixelUnshuffle down and PixelShuffle up (module form), and the functional pair."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = conv_bn_relu(3, 4)
        self.unshuffle, self.shuffle = nn.PixelUnshuffle(2), nn.PixelShuffle(2)
        self.mid = conv_bn_relu(16, 16)
        self.inner = conv_bn_relu(64, 64)

    def forward(self, x: Tensor) -> Tensor:
        s0 = self.stem(x)
        s1 = self.mid(self.unshuffle(s0))
        s2 = self.inner(F.pixel_unshuffle(s1, 2))
        y = F.pixel_shuffle(s2, 2) + s1
        return self.shuffle(y) + s0


class ChannelsLastEncoder(nn.Module):
    """ConvNeXt-style blocks that permute to channels-last for LayerNorm + MLP, then back."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 2, stride=2)
        self.dw = nn.Conv2d(16, 16, 7, padding=3, groups=16)
        self.norm = nn.LayerNorm(16)
        self.mlp = nn.Linear(16, 16)
        self.head = nn.Conv2d(16, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        y = self.dw(x).permute(0, 2, 3, 1)
        y = self.mlp(self.norm(y)).permute(0, 3, 1, 2)
        return F.interpolate(self.head(x + y), scale_factor=2.0)


class ASPPNet(nn.Module):
    """An ASPP-style image-pooling branch (global pool, 1x1 conv, upsample to the feature size)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = conv_bn_relu(3, 8, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.proj = nn.Conv2d(8, 8, 1)
        self.head = nn.Conv2d(16, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        f = self.down(x)
        image = F.interpolate(self.proj(self.pool(f)), size=f.shape[-2:], mode="bilinear", align_corners=False)
        return F.interpolate(self.head(torch.cat([f, image], 1)), size=x.shape[-2:], mode="bilinear", align_corners=False)


class SuperResolution(nn.Module):
    """Upsamples its input: an up with nothing to invert."""

    def __init__(self) -> None:
        super().__init__()
        self.body = conv_bn_relu(3, 8)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.up(self.body(x))


class TwoEncoders(nn.Module):
    """Two input branches downsampled separately and fused: the up after fusion is ambiguous
    unless it is concatenated with one branch's skip (``fuse_skip=True``)."""

    def __init__(self, fuse_skip: bool) -> None:
        super().__init__()
        self.fuse_skip = fuse_skip
        self.a0, self.b0 = conv_bn_relu(3, 8), conv_bn_relu(3, 8)
        self.a1, self.b1 = conv_bn_relu(8, 8, 2), conv_bn_relu(8, 8, 2)
        self.head = nn.Conv2d(16 if fuse_skip else 8, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.a0(x), self.b0(x)
        up = F.interpolate(self.a1(a) + self.b1(b), scale_factor=2.0)
        return self.head(torch.cat([up, a], 1) if self.fuse_skip else up)


class FunctionalPoolUNet(nn.Module):
    """Downs written as F.avg_pool2d and F.max_pool2d (no indices, no modules), F.interpolate ups."""

    def __init__(self) -> None:
        super().__init__()
        self.e1, self.e2, self.e3 = conv_bn_relu(3, 8), conv_bn_relu(8, 8), conv_bn_relu(8, 8)
        self.head = nn.Conv2d(8, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        a = self.e1(x)
        b = self.e2(F.avg_pool2d(a, 2))
        c = self.e3(F.max_pool2d(b, kernel_size=2, stride=2))
        b = b + F.interpolate(c, scale_factor=2.0)
        return self.head(a + F.interpolate(b, size=a.shape[-2:], mode="bilinear", align_corners=False))


class ListBackbone(nn.Module):
    """A backbone returning a list of features (kept whole when registered as a leaf)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = conv_bn_relu(3, 8, 2), conv_bn_relu(8, 8, 2)

    def forward(self, x: Tensor) -> list[Tensor]:
        a = self.a(x)
        return [a, self.b(a)]


class MaskedFPN(nn.Module):
    """A list-returning backbone, a mask cast with ``type_as``, and a tensor constant made in forward."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = ListBackbone()
        self.head = nn.Conv2d(8, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.backbone(x)
        mask = (a[:, :1] > 0).type_as(x)
        y = (a + F.interpolate(b, scale_factor=2.0)) * mask * torch.tensor([0.5]).sum()
        return F.interpolate(self.head(y), scale_factor=2.0)


class TokenAttention(nn.Module):
    """Spatial-reduction attention (PVT/Segformer style): keys and values from a strided conv of the map."""

    def __init__(self, dim: int, reduction: int) -> None:
        super().__init__()
        self.q, self.kv = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim)
        self.sr = nn.Conv2d(dim, dim, reduction, reduction)

    def forward(self, x: Tensor, height: int, width: int) -> Tensor:
        batch, _, dim = x.shape
        q = self.q(x)
        reduced = self.sr(x.transpose(1, 2).reshape(batch, dim, height, width)).flatten(2).transpose(1, 2)
        k, v = self.kv(reduced).chunk(2, dim=-1)
        return (q @ k.transpose(1, 2)).softmax(-1) @ v


class TokenStage(nn.Module):
    """Overlapping patch embedding (stride-2 conv, channels-last), tokens, attention, back to a map."""

    def __init__(self, cin: int, dim: int, stride: int, reduction: int, grid_from_input: bool = False) -> None:
        super().__init__()
        self.embed = nn.Conv2d(cin, dim, 2 * stride - 1, stride, stride - 1)
        self.norm, self.attn = nn.LayerNorm(dim), TokenAttention(dim, reduction)
        self.stride, self.grid_from_input = stride, grid_from_input

    def forward(self, x: Tensor) -> Tensor:
        grid = (x.shape[2] // self.stride, x.shape[3] // self.stride)  # Twins computes the grid from its input
        x = self.norm(self.embed(x).permute(0, 2, 3, 1))
        batch, height, width, dim = x.shape
        if self.grid_from_input:
            height, width = grid
        tokens = x.reshape(batch, -1, dim)
        tokens = tokens + self.attn(tokens, height, width)
        return tokens.reshape(batch, height, width, -1).permute(0, 3, 1, 2)


class TokenPyramid(nn.Module):
    """A hierarchical ViT encoder (x2 token stages, reduction attention) under an FPN-style decoder."""

    def __init__(self) -> None:
        super().__init__()
        self.stage1, self.stage3 = TokenStage(3, 8, 2, 4), TokenStage(8, 8, 2, 1)
        self.stage2 = TokenStage(8, 8, 2, 2, grid_from_input=True)
        self.head = nn.Conv2d(8, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        s1 = self.stage1(x)
        s2 = self.stage2(s1)
        s3 = self.stage3(s2)
        y = s1 + F.interpolate(s2 + F.interpolate(s3, scale_factor=2.0), size=s1.shape[-2:])
        return F.interpolate(self.head(y), scale_factor=2.0, mode="bilinear", align_corners=False)


class SpaceToDepthStem(nn.Module):
    """A x4 space-to-depth stem written with view/permute (TResNet style), then x2 stages and x2 ups."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.down = conv_bn_relu(48, 16), conv_bn_relu(16, 16, 2)
        self.head = nn.Conv2d(16, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.size()
        s = x.view(n, c, h // 4, 4, w // 4, 4).permute(0, 3, 5, 1, 2, 4).contiguous()
        s = self.stem(s.view(n, c * 16, h // 4, w // 4))
        y = s + F.interpolate(self.down(s), scale_factor=2.0)
        return F.interpolate(F.interpolate(self.head(y), scale_factor=2.0), scale_factor=2.0)


class PaddedStrideUNet(nn.Module):
    """Strided convs on explicitly padded inputs: symmetric ``F.pad`` then a 3x3/2 conv without padding,
    and TF-"same" fixed padding (one more on the right and bottom) then a 3x3/2 conv."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = conv_bn_relu(3, 8)
        self.down1, self.down2 = nn.Conv2d(8, 8, 3, 2), nn.Conv2d(8, 8, 3, 2)
        self.head = nn.Conv2d(8, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        s0 = self.stem(x)
        s1 = self.down1(F.pad(s0, (1, 1, 1, 1)))
        s2 = self.down2(F.pad(s1, (0, 1, 0, 1)))
        s1 = s1 + F.interpolate(s2, size=s1.shape[-2:])
        return self.head(s0 + F.interpolate(s1, size=s0.shape[-2:]))


class SegmenterOutput(dict):
    """A HuggingFace-style output: a mapping whose fields read as attributes (``out.logits``)."""

    def __init__(self, logits: Tensor, hidden_states: tuple[Tensor, ...] | None = None) -> None:
        super().__init__(logits=logits, **({} if hidden_states is None else {"hidden_states": hidden_states}))

    def __getattr__(self, name: str) -> Tensor:
        return self[name]


torch.utils._pytree.register_pytree_node(
    SegmenterOutput,
    lambda out: (list(out.values()), list(out)),
    lambda values, keys: SegmenterOutput(**dict(zip(keys, values))),
)


def returns_tuple_on_request(forward):
    """A HuggingFace-style decorator: ``forward(self, *args, **kwargs)``, tuple output when asked."""

    @functools.wraps(forward)
    def wrapper(self, *args, **kwargs):
        return_dict = kwargs.pop("return_dict", None)
        output = forward(self, *args, **kwargs)
        return tuple(output.values()) if return_dict is False else output

    return wrapper


class ConfigSegmenter(nn.Module):
    """A model as HuggingFace writes them: optional keyword inputs, a decorated forward, a mapping output."""

    def __init__(self) -> None:
        super().__init__()
        self.down, self.mid = conv_bn_relu(3, 8, 2), conv_bn_relu(8, 8)
        self.classifier = nn.Conv2d(8, 2, 1)

    @returns_tuple_on_request
    def forward(self, pixel_values: Tensor, labels: Tensor | None = None, output_hidden_states: bool | None = None,
                **kwargs: object) -> SegmenterOutput:
        hidden = self.mid(self.down(pixel_values))
        logits = F.interpolate(self.classifier(hidden), scale_factor=2.0, mode="bilinear", align_corners=False)
        if labels is not None:
            raise ValueError("this test model computes no loss")
        return SegmenterOutput(logits, (hidden,) if output_hidden_states else None)


class WindowPadded(nn.Module):
    """Swin-style windows: pads to a multiple of the window only when needed (a Python condition on the
    size), mixes inside each window, crops back. Traced at a multiple of the window, the graph holds
    for multiples of the window only."""

    def __init__(self, window: int = 64) -> None:
        super().__init__()
        self.window = window
        self.stem, self.down = conv_bn_relu(3, 8), conv_bn_relu(8, 8, 2)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        b, c, h, w = x.shape
        if h % self.window or w % self.window:
            x = F.pad(x, (0, -w % self.window, 0, -h % self.window))
        hp, wp = x.shape[-2:]
        windows = x.view(b, c, hp // self.window, self.window, wp // self.window, self.window)
        x = (x + windows.mean((3, 5), keepdim=True).expand_as(windows).reshape(b, c, hp, wp))[..., :h, :w]
        return F.interpolate(self.down(x), size=(h, w))


class ExampleSizeOnly(nn.Module):
    """Takes another path at the size it was written for: its graph runs at that size only."""

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        if h == 64 and w == 64:
            return x.view(b, c, 64 * 64).mean(-1)
        return x.flatten(2).mean(-1)


class ZeroPadShortcut(nn.Module):
    """MONAI-style code: a pooling module made inside forward, a zero-padded shortcut sized from the
    traced shape, ``torch.as_tensor`` around a result and ``int()`` of a channel count."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.body = conv_bn_relu(3, 8), conv_bn_relu(8, 16, 2)
        self.head = nn.Conv2d(16, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        short = nn.AvgPool2d(kernel_size=1, stride=2)(x)
        zeros = torch.zeros(short.size(0), 16 - short.size(1), *short.shape[2:], dtype=short.dtype, device=short.device)
        y = self.body(x) + torch.as_tensor(torch.cat([short, zeros], dim=1))
        y = F.layer_norm(y.permute(0, 2, 3, 1), [int(y.shape[1])]).permute(0, 3, 1, 2)
        return F.interpolate(self.head(y), scale_factor=2.0)


class InvertedResidualNet(nn.Module):
    """A MobileNetV2 encoder of two stride-2 inverted residuals and a UNet decoder. ``padded=True`` writes the
    blocks as the IndexNet authors' released matting code does: the block pads its input before the 1x1
    expansion conv, then BN, ReLU6 and the 3x3 stride-2 depthwise conv without padding. At initialisation (BN
    shift 0) the two forms compute the same: the padded border stays 0 through the expansion."""

    def __init__(self, padded: bool = False) -> None:
        super().__init__()
        self.padded = padded
        self.stem = conv_bn_relu(3, 8)
        self.block1, self.block2 = self._block(8, 16), self._block(16, 24)
        self.fuse1, self.fuse0 = conv_bn_relu(24 + 16, 16), conv_bn_relu(16 + 8, 8)
        self.head = nn.Conv2d(8, 1, 1)

    def _block(self, cin: int, cout: int) -> nn.Sequential:
        hidden = cin * 6
        return nn.Sequential(
            nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, hidden, 3, 2, 0 if self.padded else 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True), nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def _run(self, block: nn.Sequential, x: Tensor) -> Tensor:
        return block(F.pad(x, (1, 1, 1, 1)) if self.padded else x)

    def forward(self, x: Tensor) -> Tensor:
        s0 = self.stem(x)
        s1 = self._run(self.block1, s0)
        s2 = self._run(self.block2, s1)
        y = self.fuse1(torch.cat([F.interpolate(s2, size=s1.shape[-2:]), s1], 1))
        return self.head(self.fuse0(torch.cat([F.interpolate(y, size=s0.shape[-2:]), s0], 1)))


class X4Stem(nn.Module):
    """A x4 patchify stem (ConvNeXt/PVT style) undone by one x4 up (``ups=1``), or by two x2 ups with a conv
    between them (``ups=2``); nearest ups, so ``avg`` in decoder mode leaves the model as it is. ``patch=16``
    makes it a ViT-style x16 patchify undone by one x16 up."""

    def __init__(self, ups: int = 2, patch: int = 4) -> None:
        super().__init__()
        self.ups = ups
        self.pre = conv_bn_relu(3, 8)
        self.stem = nn.Conv2d(8, 8, patch, stride=patch)
        self.body = conv_bn_relu(8, 8)
        self.mid = conv_bn_relu(8, 8)
        self.head = nn.Conv2d(8, 1, 1)
        self.factor = patch

    def forward(self, x: Tensor) -> Tensor:
        y = self.body(self.stem(self.pre(x)))
        if self.ups == 1:
            return self.head(F.interpolate(y, scale_factor=float(self.factor)))
        y = self.mid(F.interpolate(y, scale_factor=2.0))
        return self.head(F.interpolate(y, scale_factor=2.0))
