"""IP and IU under autograd: exact gradients, the spec formula's values, and only inputs + maps saved.

The operators' eager kernels and hand-written backward must agree with the formulas of docs/indexnet-spec.md
(``avg_pool2d(X * I_enc, 2) * 4`` and ``nearest_upsample(D, 2) * I_dec``) in value and gradient,
and keep no activation beyond the tensors they were given.
"""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck

from indexnas import ops
from indexnas.indexnet import IndexNet
from indexnas.ops import index_maps, indexed_pool, indexed_upsample, normalize_regions, pad_remainder, regions_to_map

SIZES = [(6, 4), (5, 7)]  # even, odd x odd
MAP_CHANNELS = {"depthwise": 3, "holistic": 1}


def _spec_pool(x, enc):
    return F.avg_pool2d(x * enc, 2) * 4


def _spec_upsample(d, dec):
    return pad_remainder(F.interpolate(d, scale_factor=2.0, mode="nearest"), dec) * dec


def _tensors(size, map_channels, dtype=torch.float64, seed=0):
    """X, a map at X's size and a low-resolution D, all requiring grad."""
    gen = torch.Generator().manual_seed(seed)
    h, w = size
    x = torch.randn(2, 3, h, w, generator=gen, dtype=dtype)
    index_map = torch.rand(2, map_channels, h, w, generator=gen, dtype=dtype)
    d = torch.randn(2, 3, h // 2, w // 2, generator=gen, dtype=dtype)
    return x.requires_grad_(), index_map.requires_grad_(), d.requires_grad_()


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("maps", MAP_CHANNELS)
def test_gradients_match_finite_differences_in_float64(size, maps):
    x, index_map, d = _tensors(size, MAP_CHANNELS[maps])
    assert gradcheck(indexed_pool, (x, index_map))
    assert gradcheck(indexed_upsample, (d, index_map))


@pytest.mark.parametrize("maps", MAP_CHANNELS)
def test_second_derivatives_match_finite_differences(maps):
    x, index_map, d = _tensors((5, 6), MAP_CHANNELS[maps])
    assert gradgradcheck(indexed_pool, (x, index_map))
    assert gradgradcheck(indexed_upsample, (d, index_map))


@pytest.mark.parametrize("block_bytes", [ops.CPU_BLOCK_BYTES, 1], ids=["one block", "a block per channel"])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("maps", MAP_CHANNELS)
def test_values_and_gradients_equal_the_spec_formulas(size, maps, block_bytes, monkeypatch):
    monkeypatch.setattr(ops, "CPU_BLOCK_BYTES", block_bytes)
    x, index_map, d = _tensors(size, MAP_CHANNELS[maps], dtype=torch.float32, seed=1)
    cases = [(indexed_pool, _spec_pool, (x, index_map)), (indexed_upsample, _spec_upsample, (d, index_map))]
    for op, spec, args in cases:
        out, expected = op(*args), spec(*args)
        torch.testing.assert_close(out, expected)
        upstream = torch.randn_like(out)
        grads = torch.autograd.grad(out, args, upstream)
        for got, want in zip(grads, torch.autograd.grad(expected, args, upstream)):
            torch.testing.assert_close(got, want)


def test_without_grad_the_values_equal_the_spec_formulas():
    x, index_map, d = _tensors((9, 7), 1, dtype=torch.float32, seed=2)
    with torch.inference_mode():
        torch.testing.assert_close(indexed_pool(x, index_map), _spec_pool(x, index_map))
        torch.testing.assert_close(indexed_upsample(d, index_map), _spec_upsample(d, index_map))


def _saved_tensors(fn, *args):
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        fn(*args)
    return saved


def _same(a, b):
    return a.data_ptr() == b.data_ptr() and a.shape == b.shape and a.stride() == b.stride()


@pytest.mark.parametrize("maps", MAP_CHANNELS)
def test_ip_and_iu_save_only_their_inputs_and_maps(maps):
    x, index_map, d = _tensors((8, 6), MAP_CHANNELS[maps], dtype=torch.float32)
    for op, first in [(indexed_pool, x), (indexed_upsample, d)]:
        saved = _saved_tensors(op, first, index_map)
        assert len(saved) == 2 and _same(saved[0], first) and _same(saved[1], index_map)


def test_fixed_maps_save_only_the_map():
    x, index_map, d = _tensors((8, 6), 3, dtype=torch.float32)
    fixed = index_map.detach()  # max/avg maps: the input's gradient needs the map only
    for op, first in [(indexed_pool, x), (indexed_upsample, d)]:
        saved = _saved_tensors(op, first, fixed)
        assert len(saved) == 1 and _same(saved[0], fixed)


def test_a_pooling_unpooling_pair_saves_x_both_maps_and_the_pooled_feature_only():
    x, enc, _ = _tensors((8, 6), 3, dtype=torch.float32)
    dec = torch.rand_like(enc).requires_grad_()
    pooled = []
    saved = _saved_tensors(lambda: indexed_upsample(pooled.append(indexed_pool(x, enc)) or pooled[0], dec))
    assert [t.data_ptr() for t in saved] == [t.data_ptr() for t in (x, enc, pooled[0], dec)]
    assert sum(t.numel() for t in saved) == 3 * x.numel() + x.numel() // 4


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precisions_stay_close_to_float32_and_gradients_keep_each_input_dtype(dtype):
    x, index_map, d = _tensors((8, 6), 3, dtype=torch.float32, seed=3)
    low = [t.detach().to(dtype).requires_grad_() for t in (x, index_map, d)]
    pooled = indexed_pool(low[0], low[1])
    assert pooled.dtype == dtype
    torch.testing.assert_close(pooled.float(), _spec_pool(x, index_map), rtol=2e-2, atol=2e-2)
    up = indexed_upsample(low[2], low[1])
    torch.testing.assert_close(up.float(), _spec_upsample(d, index_map), rtol=2e-2, atol=2e-2)
    mixed = indexed_upsample(d, low[1])  # float32 feature, low-precision map: float32 out, map grad in its dtype
    assert mixed.dtype == torch.float32
    assert torch.autograd.grad(mixed.sum(), low[1])[0].dtype == dtype


def test_a_compiled_pair_matches_eager_in_value_and_gradient():
    x, index_map, d = _tensors((10, 6), 3, dtype=torch.float32, seed=4)

    def pair(x, enc, dec):
        return indexed_upsample(indexed_pool(x, enc), dec)

    compiled = torch.compile(pair, backend="aot_eager", fullgraph=True)
    out = compiled(x, index_map, index_map)
    torch.testing.assert_close(out, pair(x, index_map, index_map))
    grads = torch.autograd.grad(out.sum(), (x, index_map))
    for got, want in zip(grads, torch.autograd.grad(pair(x, index_map, index_map).sum(), (x, index_map))):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("spec", ["o2o-shared", "o2o-shared-nl", "o2o-modelwise-nl-c"])
def test_a_slicewise_indexnet_is_its_one_channel_body_on_every_slice(spec):
    net = IndexNet(spec, 5).train()
    x = torch.randn(2, 5, 8, 6, generator=torch.Generator().manual_seed(5))
    slices_net = copy.deepcopy(net)
    logits = net.region_logits(x)
    slices = slices_net.body(x.flatten(0, 1).unsqueeze(1))  # BN statistics over all B*C slices
    torch.testing.assert_close(logits, slices.unflatten(0, (2, 5)).flatten(1, 2))
    if len(net.body) > 1:  # and the running statistics moved exactly as the slice-batched body's did
        torch.testing.assert_close(net.body[1].running_mean, slices_net.body[1].running_mean)


@pytest.mark.parametrize("enc_norm", ["sigmoid_softmax", "softmax", "sigmoid"])
@pytest.mark.parametrize("dec_norm", ["sigmoid", "softmax"])
def test_index_maps_share_work_but_equal_each_normalisation_on_its_own(enc_norm, dec_norm):
    logits = torch.randn(2, 12, 3, 4, generator=torch.Generator().manual_seed(6))
    like = torch.empty(2, 3, 7, 8)  # odd height: a zero last row
    enc, dec = index_maps(logits, enc_norm, dec_norm, like)
    assert enc.shape == dec.shape == (2, 3, 7, 8)
    torch.testing.assert_close(enc, regions_to_map(normalize_regions(logits, enc_norm), like))
    torch.testing.assert_close(dec, regions_to_map(normalize_regions(logits, dec_norm), like))
    torch.testing.assert_close(regions_to_map(logits, like)[..., :6, :], F.pixel_shuffle(logits, 2))
    assert (enc is dec) == (enc_norm == dec_norm)


def _rate_tensors(size, map_channels, rate, dtype=torch.float64, seed=7):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, *size, generator=gen, dtype=dtype)
    index_map = torch.rand(2, map_channels, *size, generator=gen, dtype=dtype)
    d = torch.randn(2, 3, size[0] // rate, size[1] // rate, generator=gen, dtype=dtype)
    return x.requires_grad_(), index_map.requires_grad_(), d.requires_grad_()


@pytest.mark.parametrize("rate", [3, 4])
@pytest.mark.parametrize("maps", MAP_CHANNELS)
def test_at_rate_k_gradients_and_second_derivatives_match_finite_differences(rate, maps):
    x, index_map, d = _rate_tensors((9, 8), MAP_CHANNELS[maps], rate)
    assert gradcheck(indexed_pool, (x, index_map, rate))
    assert gradcheck(indexed_upsample, (d, index_map, rate))
    assert gradgradcheck(indexed_pool, (x, index_map, rate))
    assert gradgradcheck(indexed_upsample, (d, index_map, rate))


@pytest.mark.parametrize("block_bytes", [ops.CPU_BLOCK_BYTES, 1], ids=["one block", "a block per channel"])
@pytest.mark.parametrize("maps", MAP_CHANNELS)
def test_at_rate_4_values_and_gradients_equal_the_spec_formulas(maps, block_bytes, monkeypatch):
    monkeypatch.setattr(ops, "CPU_BLOCK_BYTES", block_bytes)
    x, index_map, d = _rate_tensors((13, 10), MAP_CHANNELS[maps], 4, dtype=torch.float32)

    def spec_pool(x, enc):
        return F.avg_pool2d(x * enc, 4) * 16

    def spec_upsample(d, dec):
        return pad_remainder(F.interpolate(d, scale_factor=4.0, mode="nearest"), dec, 4) * dec

    for op, spec, args in [(indexed_pool, spec_pool, (x, index_map)), (indexed_upsample, spec_upsample, (d, index_map))]:
        out, expected = op(*args, 4), spec(*args)
        torch.testing.assert_close(out, expected)
        upstream = torch.randn_like(out)
        for got, want in zip(torch.autograd.grad(out, args, upstream), torch.autograd.grad(expected, args, upstream)):
            torch.testing.assert_close(got, want)


def test_at_rate_4_the_logit_layout_is_pixel_shuffle_order_and_softmax_runs_over_16_positions():
    logits = torch.randn(2, 32, 3, 2, generator=torch.Generator().manual_seed(8))  # 2 channels x 16 positions
    like = torch.empty(2, 2, 14, 9)  # remainders 2 and 1
    enc, dec = index_maps(logits, "sigmoid_softmax", "sigmoid", like, rate=4)
    torch.testing.assert_close(regions_to_map(logits, like, 4)[..., :12, :8], F.pixel_shuffle(logits, 4))
    torch.testing.assert_close(F.avg_pool2d(enc, 4) * 16, torch.ones(2, 2, 3, 2))
    torch.testing.assert_close(dec, regions_to_map(normalize_regions(logits, "sigmoid", 4), like, 4))
