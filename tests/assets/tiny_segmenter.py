"""A user's own segmentation model file whose factory takes the class count (``--model-arg classes=N``)."""

import torch
from torch import nn


class TinySegmenter(nn.Module):
    def __init__(self, classes: int, in_channels: int) -> None:
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU())
        self.pool = nn.MaxPool2d(2)
        self.mid = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.up = nn.Upsample(scale_factor=2)
        self.head = nn.Conv2d(8, classes, 3, padding=1)

    def forward(self, x):
        return self.head(self.up(self.mid(self.pool(self.enc(x)))))


def build(classes: int = 1, in_channels: int = 3):
    torch.manual_seed(0)
    return TinySegmenter(classes, in_channels), torch.rand(1, in_channels, 32, 32)
