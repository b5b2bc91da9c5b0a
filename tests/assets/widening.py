"""A model file whose pooled and upsampled features differ in width: depthwise index maps cannot serve both."""

import torch
from torch import nn


class Widening(nn.Module):
    """Pools 8 channels and upsamples 16: depthwise index maps cannot meet both."""

    def __init__(self):
        super().__init__()
        self.c1, self.pool = nn.Conv2d(1, 8, 3, padding=1), nn.MaxPool2d(2)
        self.c2, self.up, self.head = nn.Conv2d(8, 16, 3, padding=1), nn.Upsample(scale_factor=2), nn.Conv2d(16, 1, 1)

    def forward(self, x):
        return self.head(self.up(self.c2(self.pool(self.c1(x)))))


def widening():
    return Widening(), torch.rand(1, 1, 40, 40)


def wrong_rank():
    return Widening(), torch.rand(1, 40, 40)


def wrong_channels():
    return Widening(), torch.rand(1, 3, 40, 40)
