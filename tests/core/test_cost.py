"""The one cost counter (indexnas.cost): parameters the forward uses, FLOPs with the IP/IU handlers,
per-pair attribution, and the FlopCounterMode cross-check."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from indexnas import cost, ops, zoo
from indexnas.indexnet import build_index_module
from indexnas.surgery.rewrite import insert_indexnet


class _Op(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)


def test_ip_and_iu_are_counted_by_the_handlers():
    x, enc = torch.randn(1, 4, 8, 8), torch.rand(1, 1, 8, 8)
    ip = cost.count_flops(_Op(ops.indexed_pool), (x, enc))
    assert ip.uncounted == {}
    assert ip.total == 4 * 64 + 4 * 64 + 4 * 16  # X * I_enc, the 2x2 sums, the x4 rescale
    d, dec = torch.randn(1, 4, 4, 4), torch.rand(1, 1, 8, 8)
    iu = cost.count_flops(_Op(ops.indexed_upsample), (d, dec))
    assert iu.uncounted == {}
    assert iu.total == 4 * 64 + 4 * 64  # nearest upsampling (fvcore's own count) and the multiply


def _rewritten(name: str, choice: str, mode: str):
    torch.manual_seed(0)
    model = zoo.create_model(name, width=0.25).eval()
    x = zoo.example_input(name, size=64)
    return model, x, *insert_indexnet(model, x, choice, mode)


@pytest.mark.parametrize(
    ("name", "choice", "mode"),
    [("segnet", "m2o-nl-c", "pool"), ("fastdepth", "o2o-shared-nl", "stride"), ("dncnn_segnet", "holistic", "decoder")],
)
def test_per_pair_flops_add_up_to_the_total_change(name, choice, mode):
    """Exactly in pool/stride mode. In decoder mode each index network still normalises an encoder map
    that nothing reads: the per-node count includes that work, jit's dead-code elimination drops it
    from the whole-model total, so the pairs' sum is a little larger."""
    model, x, gm, report = _rewritten(name, choice, mode)
    assert report.flops_before == cost.count_flops(model, x).total
    assert report.flops_after == cost.count_flops(gm, x).total
    added, change = sum(row.flops_added for row in report.rows), report.flops_after - report.flops_before
    if mode == "decoder":
        assert change < added < 1.05 * change
    else:
        assert added == change
    assert all(row.flops_added > 0 for row in report.rows)
    assert cost.count_flops(gm, x).uncounted == {}


@pytest.mark.parametrize(
    ("name", "choice", "mode"),
    [("segnet", "m2o-nl-c", "pool"), ("fastdepth", "holistic-nl", "stride"), ("fastdepth_p", "o2o-unshared", "pool")],
)
def test_fvcore_matmul_part_is_half_of_flop_counter_mode(name, choice, mode):
    model, x, gm, _ = _rewritten(name, choice, mode)
    for counted in (model, gm):
        check = cost.cross_check(counted, x)
        assert check.agrees, check
        assert check.fvcore_total > check.fvcore_matmul > 0


class _HoldsAnUnusedBackbone(nn.Module):
    """A pool/unpool host that also holds a backbone its forward never calls (as a model kept for its weights)."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 64, 3), nn.Conv2d(64, 64, 3))  # never called
        self.encode = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2)
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled, indices = self.pool(self.encode(x))
        return self.head(self.unpool(pooled, indices, output_size=x.shape[-2:]))


def test_parameters_count_what_the_graph_uses():
    model, x = _HoldsAnUnusedBackbone(), torch.randn(1, 3, 16, 16)
    unused = sum(p.numel() for p in model.backbone.parameters())
    used = sum(p.numel() for p in model.parameters()) - unused
    assert cost.count_parameters(model) == used + unused  # a plain module: everything it holds
    gm, _ = insert_indexnet(model, x, "keep")
    assert cost.count_parameters(gm) == used


@pytest.mark.parametrize("choice", ["keep", "holistic-nl", "m2o"])
def test_a_rewrite_adds_exactly_its_index_networks_parameters(choice):
    """Both sides are counted on the traced graph: an unused backbone shows as +0, not as -N."""
    model, x = _HoldsAnUnusedBackbone(), torch.randn(1, 3, 16, 16)
    _, report = insert_indexnet(model, x, choice)
    added = 0 if choice == "keep" else cost.count_parameters(build_index_module(choice, 8))
    assert report.params_after - report.params_before == added
    assert sum(row.params_added for row in report.rows) == added


def test_frozen_and_shared_parameters_count_once():
    shared = nn.Conv2d(4, 4, 3, bias=False)
    model = nn.Sequential(shared, nn.ReLU(), shared).requires_grad_(False)
    assert cost.count_parameters(model) == 4 * 4 * 9
    assert cost.count_parameters(torch.fx.symbolic_trace(model)) == 4 * 4 * 9


def test_the_zoo_listing_and_the_rewrite_report_count_the_same_gflops():
    """One counter: `indexnas models` and `indexnas insert` print the same figure for the same host."""
    model, x, _, report = _rewritten("dncnn_segnet", "keep", "pool")
    figures = cost.measure(model, x)
    assert figures["gflops"] == report.flops_before / 1e9
    assert figures["params"] == report.params_before
    assert figures["gflops_paper_unit"] == cost.count_flops(model, x).matmul_part / 2**30
