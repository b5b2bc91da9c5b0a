"""A user's own model file: a two-stage SegNet-style denoiser (2 pool/unpool pairs), grey input."""

import torch
from torch import nn


class TwoStageDenoiser(nn.Module):
    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.enc1 = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU())
        self.pool1 = nn.MaxPool2d(2, 2, return_indices=True)
        self.enc2 = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
        self.pool2 = nn.MaxPool2d(2, 2, return_indices=True)
        self.mid = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
        self.unpool2 = nn.MaxUnpool2d(2, 2)
        self.dec2 = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
        self.unpool1 = nn.MaxUnpool2d(2, 2)
        self.head = nn.Conv2d(width, 1, 3, padding=1)

    def forward(self, x):
        a = self.enc1(x)
        p1, i1 = self.pool1(a)
        b = self.enc2(p1)
        p2, i2 = self.pool2(b)
        y = self.mid(p2)
        y = self.dec2(self.unpool2(y, i2, output_size=b.shape[-2:]))
        return self.head(self.unpool1(y, i1, output_size=a.shape[-2:]))


def build():
    """The model and an example input (the search counts FLOPs at it)."""
    torch.manual_seed(0)
    return TwoStageDenoiser(), torch.rand(1, 1, 40, 40)
