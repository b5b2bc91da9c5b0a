"""The operators' identities: IP and IU reduce to max/average pooling and unpooling/nearest."""

import pytest
import torch
import torch.nn.functional as F

from indexnas.indexnet import HolisticMaxIndex, IndexNet, MaxIndex, UniformIndex, build_index_module
from indexnas.ops import indexed_pool, indexed_upsample
from indexnas.spec import IndexSpec, all_choices, paper_variants

SIZES = [(8, 8), (9, 7), (5, 12)]  # even, odd x odd, odd x even


def _feature(h: int, w: int, c: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.randn(2, c, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("size", SIZES)
def test_one_hot_max_indices_give_max_pooling_and_unpooling_bit_for_bit(size):
    x = _feature(*size)
    enc, dec = MaxIndex()(x)
    pooled, indices = F.max_pool2d(x, 2, return_indices=True)
    assert torch.equal(indexed_pool(x, enc), pooled)
    d = torch.randn_like(pooled)
    expected = F.max_unpool2d(d, indices, 2, output_size=x.shape[-2:])
    assert torch.equal(indexed_upsample(d, dec), expected)


@pytest.mark.parametrize("size", SIZES)
def test_uniform_indices_give_average_pooling_and_nearest_upsampling(size):
    x = _feature(*size)
    enc, dec = UniformIndex()(x)
    torch.testing.assert_close(indexed_pool(x, enc), F.avg_pool2d(x, 2), rtol=0, atol=1e-6)
    d = torch.randn_like(F.avg_pool2d(x, 2))
    nearest = F.interpolate(d, scale_factor=2.0, mode="nearest")
    h, w = nearest.shape[-2:]
    assert torch.equal(indexed_upsample(d, dec)[..., :h, :w], nearest)
    assert torch.all(dec[..., :h, :w] == 1) and dec.shape[-2:] == x.shape[-2:]


def test_holistic_max_index_uses_the_channelwise_maximum_for_every_channel():
    x = _feature(6, 6)
    enc, _ = HolisticMaxIndex()(x)
    assert enc.shape == (2, 1, 6, 6)
    enc_of_max, _ = MaxIndex()(x.amax(1, keepdim=True))
    assert torch.equal(enc, enc_of_max)


@pytest.mark.parametrize("spec", [str(s) for s in all_choices() if s.learned], ids=str)
def test_encoder_maps_sum_to_one_over_every_region_and_shapes_match(spec):
    x = _feature(10, 6, c=8)
    net = build_index_module(spec, 8).train()
    enc, dec = net(x)
    channels = 1 if IndexSpec.parse(spec).holistic else 8
    assert enc.shape == dec.shape == (2, channels, 10, 6)
    assert net(_feature(9, 7, c=8))[0].shape[-2:] == (9, 7)
    region_sums = F.avg_pool2d(enc, 2) * 4
    torch.testing.assert_close(region_sums, torch.ones_like(region_sums))
    assert torch.all((dec > 0) & (dec < 1))


@pytest.mark.parametrize("spec", [str(s) for s in all_choices() if s.learned], ids=str)
def test_gradients_reach_every_indexnet_parameter(spec):
    x = _feature(8, 8, c=4).requires_grad_()
    net = build_index_module(spec, 4)
    enc, dec = net(x)
    pooled = indexed_pool(x, enc)
    out = indexed_upsample(pooled, dec)
    (out * torch.randn_like(out)).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert x.grad.abs().sum() > 0


def test_odd_sizes_floor_like_max_pool_and_iu_restores_the_original_size():
    x = _feature(9, 7)
    enc, dec = IndexNet("m2o-nl-c", 6)(x)
    pooled = indexed_pool(x, enc)
    assert pooled.shape[-2:] == F.max_pool2d(x, 2).shape[-2:] == (4, 3)
    restored = indexed_upsample(pooled, dec)
    assert restored.shape == x.shape
    assert torch.all(restored[..., -1, :] == 0) and torch.all(restored[..., :, -1] == 0)


@pytest.mark.parametrize(
    ("enc_norm", "sums_to_one"), [("sigmoid_softmax", True), ("softmax", True), ("sigmoid", False)]
)
def test_normalisation_variants_of_table_4_are_selectable(enc_norm, sums_to_one):
    spec = IndexSpec("m2o", nonlinear=True, context=True, enc_norm=enc_norm, dec_norm="softmax")
    enc, dec = IndexNet(spec, 4)(_feature(6, 6, c=4))
    assert torch.allclose(F.avg_pool2d(enc, 2) * 4, torch.ones(1)) == sums_to_one
    torch.testing.assert_close(F.avg_pool2d(dec, 2) * 4, torch.ones(2, 4, 3, 3))


def test_a_modelwise_module_shared_by_stages_counts_its_parameters_once():
    shared = IndexNet("o2o-modelwise-nl", 64)
    stages = torch.nn.ModuleDict({"s1": shared, "s2": shared, "s3": shared})
    assert sum(p.numel() for p in stages.parameters()) == 56
    small, wide = shared(_feature(4, 4, c=3)), shared(_feature(4, 4, c=64))  # channel-agnostic
    assert small[0].shape[1] == 3 and wide[0].shape[1] == 64


def test_paper_variants_are_the_fifteen_of_the_tables_in_order():
    names = [str(s) for s in paper_variants()]
    assert len(names) == 15
    assert names[:3] == ["holistic", "holistic-nl", "holistic-nl-c"]
    assert names[-1] == "m2o-nl-c"


# --- rate k: the same identities over k x k regions (one code path for every rate) ----------------

RATES = [3, 4]
RATE_SIZES = [(16, 12), (11, 9)]  # multiples of 4; remainders 3 and 1 (mod 4), 2 and 0 (mod 3)


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("size", RATE_SIZES)
def test_at_rate_k_one_hot_max_indices_give_k_by_k_max_pooling_and_unpooling_bit_for_bit(rate, size):
    x = _feature(*size)
    enc, dec = MaxIndex(rate)(x)
    pooled, indices = F.max_pool2d(x, rate, return_indices=True)
    assert torch.equal(indexed_pool(x, enc, rate), pooled)
    d = torch.randn_like(pooled)
    assert torch.equal(indexed_upsample(d, dec, rate), F.max_unpool2d(d, indices, rate, output_size=x.shape[-2:]))


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("size", RATE_SIZES)
def test_at_rate_k_uniform_indices_give_k_by_k_average_pooling_and_nearest_upsampling(rate, size):
    x = _feature(*size)
    enc, dec = UniformIndex(rate)(x)
    torch.testing.assert_close(indexed_pool(x, enc, rate), F.avg_pool2d(x, rate), rtol=0, atol=1e-6)
    d = torch.randn_like(F.avg_pool2d(x, rate))
    nearest = F.interpolate(d, scale_factor=float(rate), mode="nearest")
    h, w = nearest.shape[-2:]
    up = indexed_upsample(d, dec, rate)
    assert up.shape[-2:] == x.shape[-2:] and torch.equal(up[..., :h, :w], nearest)
    assert torch.all(up[..., h:, :] == 0) and torch.all(up[..., :, w:] == 0)  # outside every region


def test_at_rate_4_holistic_max_index_is_the_channelwise_maximum_s_4x4_argmax():
    x = _feature(8, 12)
    enc, _ = HolisticMaxIndex(4)(x)
    assert enc.shape == (2, 1, 8, 12) and torch.equal(enc, MaxIndex(4)(x.amax(1, keepdim=True))[0])
    assert torch.equal(F.avg_pool2d(enc, 4) * 16, torch.ones(2, 1, 2, 3))


@pytest.mark.parametrize("spec", [str(s) for s in all_choices() if s.learned], ids=str)
def test_at_rate_4_every_learned_family_gives_maps_whose_regions_sum_to_one(spec):
    net = build_index_module(spec, 3, rate=4).train()
    enc, dec = net(_feature(11, 8, c=3))
    channels = 1 if IndexSpec.parse(spec).holistic else 3
    assert enc.shape == dec.shape == (2, channels, 11, 8)
    torch.testing.assert_close(F.avg_pool2d(enc, 4) * 16, torch.ones(2, channels, 2, 2))
    assert torch.all(enc[..., 8:, :] == 0) and torch.all(dec[..., 8:, :] == 0)  # the 3 rows outside every region
    assert torch.all((dec[..., :8, :] > 0) & (dec[..., :8, :] < 1))
    assert net.body[0].stride == (4, 4) and "rate=4" in repr(net)


@pytest.mark.parametrize("spec", ["holistic-nl-c", "m2o", "o2o-unshared-nl", "o2o-shared-c"])
def test_at_rate_4_gradients_reach_every_indexnet_parameter(spec):
    x = _feature(8, 8, c=4).requires_grad_()
    net = build_index_module(spec, 4, rate=4)
    enc, dec = net(x)
    out = indexed_upsample(indexed_pool(x, enc, 4), dec, 4)
    (out * torch.randn_like(out)).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert x.grad.abs().sum() > 0


def test_a_rate_below_two_is_refused():
    with pytest.raises(ValueError, match="rate is an int >= 2"):
        indexed_pool(_feature(4, 4), torch.ones(1, 1, 4, 4), 1)
    with pytest.raises(ValueError, match="rate is an int >= 2"):
        MaxIndex(0)
