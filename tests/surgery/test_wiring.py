"""Tests that catch wiring bugs: shapes and parameter counts stay right when outputs go to the wrong place.

Each learned family's last convolution is fixed to drive one output column alone; the column must light
one pixel position of every 2x2 region (position j at row j // 2, column j % 2) in one channel, as
docs/indexnet-spec.md lays the logits out. A rewrite that keeps every pair must still be the traced graph.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from indexnas.indexnet import IndexNet
from indexnas.spec import IndexSpec, all_choices
from indexnas.surgery import insert_indexnet

C = 3  # channels: more than one, so a channel/column mix-up shows


def expected_target(family: str, column: int, lit_channel: int) -> tuple[int, int]:
    """(channel, position) the last conv's output ``column`` drives, by the spec's layout."""
    if family == "holistic":  # Conv(C->4): column j is position j of the single map
        return 0, column
    if family == "m2o":  # 4 column convs of C outputs each, concatenated column-major
        return column % C, column // C
    if family == "o2o-unshared":  # groups=C: channel c's four outputs are adjacent
        return column // 4, column % 4
    return lit_channel, column  # o2o-shared/modelwise: one Conv(1->4) on every channel slice


def _drive_one_column(net: IndexNet, column: int) -> None:
    """Zero the last conv except output ``column`` (every weight 1); a nonlinear body passes a positive value."""
    convs = [m for m in net.body if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        for conv in convs[:-1]:
            conv.weight.fill_(0.1)
        convs[-1].weight.zero_()
        convs[-1].weight[column] = 1.0


@pytest.mark.parametrize("spec", [s for s in all_choices() if s.learned], ids=str)
def test_each_output_column_drives_one_position_in_one_channel(spec: IndexSpec):
    net = IndexNet(spec, C).eval()
    lit_channel = 1
    x = torch.zeros(1, C, 4, 4)
    x[:, lit_channel if spec.family in ("o2o-shared", "o2o-modelwise") else slice(None)] = 1.0
    outputs = net.body[-1].out_channels
    for column in range(outputs):
        _drive_one_column(net, column)
        with torch.no_grad():
            _, dec = net(x)
        regions = dec.unflatten(2, (2, 2)).unflatten(4, (2, 2))  # (B, Ci, h, i, w, j)
        positions = regions.permute(0, 1, 2, 4, 3, 5).flatten(4, 5)  # (B, Ci, h, w, position)
        lit = positions > positions.amin(dim=4, keepdim=True) + 1e-6  # the position above its region's floor
        channel, position = expected_target(spec.family, column, lit_channel)
        want = torch.zeros_like(lit)
        want[:, channel, :, :, position] = True
        assert torch.equal(lit, want), f"{spec}: output {column} should drive channel {channel}, position {position}"


def test_keeping_every_pair_returns_the_traced_graph_not_the_original():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.MaxPool2d(2), nn.Upsample(scale_factor=2))
    x = torch.randn(1, 1, 8, 8)
    rewritten, report = insert_indexnet(model, x, "keep")
    assert isinstance(rewritten, torch.fx.GraphModule) and rewritten is not model
    assert report.params_after == report.params_before
    assert torch.equal(rewritten(x), model(x))
