"""FLOP counting: fvcore plus IP/IU handlers, per-pair attribution, and the FlopCounterMode cross-check."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from indexnas import zoo
from indexnas import ops
from indexnas.surgery import cost
from indexnas.surgery.rewrite import insert_indexnet


class _Op(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)


def test_ip_and_iu_are_counted_by_the_handlers():
    x, enc = torch.randn(1, 4, 8, 8), torch.rand(1, 1, 8, 8)
    ip = cost.fvcore_flops(_Op(ops.indexed_pool), (x, enc))
    assert ip.uncounted == {}
    assert ip.total == 4 * 64 + 4 * 64 + 4 * 16  # X * I_enc, the 2x2 sums, the x4 rescale
    d, dec = torch.randn(1, 4, 4, 4), torch.rand(1, 1, 8, 8)
    iu = cost.fvcore_flops(_Op(ops.indexed_upsample), (d, dec))
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
    assert report.flops_before == cost.fvcore_flops(model, x).total
    assert report.flops_after == cost.fvcore_flops(gm, x).total
    added, change = sum(row.flops_added for row in report.rows), report.flops_after - report.flops_before
    if mode == "decoder":
        assert change < added < 1.05 * change
    else:
        assert added == change
    assert all(row.flops_added > 0 for row in report.rows)
    assert cost.fvcore_flops(gm, x).uncounted == {}


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
