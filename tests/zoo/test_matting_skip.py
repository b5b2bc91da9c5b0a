"""The matting host's two skip readings: the raw encoder feature (default) or the feature weighted by its pool's
encoder index map, I_enc * X, as the authors' released IndexNet Matting code concatenates it."""

from __future__ import annotations

import operator

import pytest
import torch
import torch.nn.functional as F

from indexnas import ops, zoo
from indexnas.errors import UserError
from indexnas.surgery import analyze, insert_indexnet
from indexnas.cost import count_parameters, measure

SIZE = 64


def _pair(width: float = 0.25) -> tuple[torch.nn.Module, torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    raw = zoo.create_model("matting", width=width).eval()
    indexed = zoo.create_model("matting", width=width, skip="indexed").eval()
    indexed.load_state_dict(raw.state_dict())  # same weights: only the skips differ
    return raw, indexed, zoo.example_input("matting", SIZE)


def test_raw_is_the_default_and_a_wrong_skip_is_a_user_error():
    assert not zoo.create_model("matting", width=0.25).encoder["stage1"].indexed_skip
    with pytest.raises(UserError, match="did you mean 'indexed'"):
        zoo.create_model("matting", skip="indexd")


def test_the_hosts_indexed_skip_is_the_feature_where_the_max_pool_took_its_maximum():
    stage = _pair()[1].encoder["stage2"]
    x = torch.rand(2, stage.groups[0][0].conv[0][0].in_channels, 16, 16)
    pooled, indices, skips = stage(x)
    raw = stage.groups[1](stage.groups[0](x))
    kept = F.max_unpool2d(pooled, indices, 2, output_size=raw.shape[-2:])  # I_enc * X for max pooling
    assert torch.equal(skips[-1], kept) and torch.equal(skips[0], stage.groups[0](x))  # only the pooled group
    assert int((skips[-1] != 0).sum()) <= raw.numel() // 4


def test_parameters_flops_and_pairs_are_the_same_for_both_skips():
    raw, indexed, x = _pair(width=1.0)
    assert count_parameters(raw) == count_parameters(indexed) == 3_753_233  # 3.753M, as `indexnas models` prints
    assert measure(raw, x)["gflops_paper_unit"] == measure(indexed, x)["gflops_paper_unit"]
    pairs = [[(p.name, p.up.target) for p in analyze(m, x)[1].pairs] for m in (raw, indexed)]
    assert pairs[0] == pairs[1] and len(pairs[0]) == 5
    with torch.no_grad():
        assert not torch.allclose(raw(x), indexed(x))  # the skips do differ


@pytest.mark.parametrize("choice", ["m2o", "holistic-nl"])
def test_after_surgery_the_indexed_skip_is_the_indexnets_encoder_map_times_the_feature(choice):
    raw, indexed, x = _pair()
    rewritten, _ = insert_indexnet(indexed, x, choice, "pool", flops=False)
    graph = rewritten.graph
    assert not any(n.target is ops.max_index_weighted for n in graph.nodes)
    weighted = [n for n in graph.nodes if n.target is operator.mul and any(u.target is torch.cat for u in n.users)]
    assert len(weighted) == 5
    for node in weighted:  # I_enc * X with the very X and I_enc that IP pools
        feature, enc_map = node.args
        assert any(u.target is ops.indexed_pool and u.args == (feature, enc_map) for u in enc_map.users)
    plain, _ = insert_indexnet(raw, x, choice, "pool", flops=False)
    assert not [n for n in plain.graph.nodes if n.target is operator.mul and any(u.target is torch.cat for u in n.users)]
    with torch.no_grad():
        assert rewritten(x).shape == plain(x).shape == (1, 1, SIZE, SIZE)


def test_a_kept_pool_keeps_its_max_weighted_skip():
    _, indexed, x = _pair()
    rewritten, _ = insert_indexnet(indexed, x, {"encoder.stage1.pool": "m2o", "*": "keep"}, "pool", flops=False)
    kept = [n for n in rewritten.graph.nodes if n.target is ops.max_index_weighted]
    assert len(kept) == 4  # stages 2..5 keep max pooling and their max-weighted skips
