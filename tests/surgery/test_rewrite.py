"""The rewriter's contract: identities, the three modes, shared/compound/transposed ups, channel rules, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from indexnas import zoo
from handwritten_models import (
    CompoundHead, FunctionalPoolUNet, ResidualDown, SegNetFunctional, UNetSharedPool, UNetTransposed)
from indexnas import ops
from indexnas.errors import UserError
from indexnas.indexnet import IndexNet
from indexnas.surgery import analyze, compat
from indexnas.surgery.rewrite import fit_channels, insert_indexnet, modulate
from index_params import stage_params

ODD_SIZES = [(37, 53), (45, 45)]  # not multiples of 32, odd


def _model(name: str, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    return zoo.create_model(name, width=0.25, **kwargs).eval()


def _input(channels: int, size: tuple[int, int], batch: int = 1) -> torch.Tensor:
    return torch.randn(batch, channels, *size, generator=torch.Generator().manual_seed(1))


def _calls(gm: torch.fx.GraphModule, target) -> list[torch.fx.Node]:
    return [n for n in gm.graph.nodes if n.op == "call_function" and n.target is target]


class SharedUps(nn.Module):
    """One pool undone by two ups (an FPN-like fan-out): both ups share the pool's transition."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.pool = nn.Conv2d(3, 8, 3, padding=1), nn.MaxPool2d(2)
        self.mid, self.side = nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 1)
        self.up_a, self.up_b = nn.Upsample(scale_factor=2), nn.Upsample(scale_factor=2)

    def forward(self, x):
        s = self.stem(x)
        y = self.mid(self.pool(s))
        return self.up_a(y) + self.up_b(self.side(y)) + s


class ResNetDShortcut(nn.Module):
    """A ResNet-D block: the shortcut average-pools C_in channels, the main path strides to C_out."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(8, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 16, 3, 1, 1))
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, ceil_mode=True, count_include_pad=False), nn.Conv2d(8, 16, 1))
        self.stem, self.head = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(16, 8, 1)
        self.up = nn.Upsample(scale_factor=2)

    def forward(self, x):
        s = self.stem(x)
        return self.up(self.head(self.conv1(s) + self.shortcut(s))) + s


class ResidualUNet(nn.Module):
    """ResidualDown (main path and 1x1 shortcut both stride 2) with a nearest up back to the skip."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.block = nn.Conv2d(3, 8, 3, padding=1), ResidualDown(8, 8)
        self.up = nn.Upsample(scale_factor=2)

    def forward(self, x):
        s = self.stem(x)
        return self.up(self.block(s)) + s


# --- identities -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "channels", "mode"),
    [
        (lambda: _model("segnet"), 3, "pool"),
        (lambda: _model("fastdepth"), 3, "stride"),
        (lambda: SegNetFunctional().eval(), 3, "decoder"),
    ],
    ids=["segnet", "fastdepth", "segnet-functional"],
)
def test_keep_everywhere_is_bit_identical(make, channels, mode):
    model = make()
    gm, report = insert_indexnet(model, _input(channels, (64, 64)), "keep", mode, flops=False)
    assert report.params_after == report.params_before
    for size in [(64, 64), *ODD_SIZES]:
        x = _input(channels, size, batch=2)
        with torch.no_grad():
            assert torch.equal(gm(x), model(x))


@pytest.mark.parametrize("name", ["segnet", "dncnn_segnet"])
def test_max_baseline_equals_max_pooling_and_unpooling(name):
    model = _model(name)
    channels = zoo.example_input(name, size=64).shape[1]
    gm, report = insert_indexnet(model, _input(channels, (64, 64)), "max", "pool", flops=False)
    assert all(row.choice == "max" for row in report.rows) and report.params_after == report.params_before
    assert len(_calls(gm, ops.indexed_pool)) == len(report.rows) == len(_calls(gm, ops.indexed_upsample))
    for size in [(64, 64), *ODD_SIZES]:
        x = _input(channels, size, batch=2)
        with torch.no_grad():
            assert torch.equal(gm(x), model(x))


def test_functional_max_pool_with_indices_and_unpool_become_ip_and_iu_bit_exactly():
    model = SegNetFunctional().eval()
    gm, report = insert_indexnet(model, _input(3, (32, 32)), "max", "pool", flops=False)
    assert [row.action for row in report.rows] == ["IP; IU", "IP; IU"]
    x = _input(3, (40, 48), batch=2)
    with torch.no_grad():
        assert torch.equal(gm(x), model(x))


# --- every mode runs, forward and backward, at sizes that are not multiples of 32 ----------------


@pytest.mark.parametrize(
    ("make", "channels", "mode", "choice"),
    [
        (lambda: _model("segnet"), 3, "pool", "m2o-nl-c"),
        (lambda: _model("segnet"), 3, "decoder", "holistic-nl"),
        (lambda: _model("dncnn_segnet"), 1, "pool", "o2o-modelwise-nl"),
        (lambda: _model("fastdepth"), 3, "stride", "o2o-unshared-nl-c"),
        (lambda: _model("fastdepth"), 3, "decoder", "holistic-c"),
        (lambda: _model("fastdepth_p"), 3, "pool", "holistic"),
        (lambda: _model("unet", backbone="resnet18"), 3, "stride", "holistic-nl"),
        (lambda: UNetTransposed().eval(), 3, "stride", "holistic-nl-c"),
        (lambda: UNetSharedPool().eval(), 3, "pool", "hmi"),
        (lambda: CompoundHead().eval(), 3, "stride", "holistic"),  # the model itself needs multiples of 4
        (lambda: SegNetFunctional().eval(), 3, "pool", "m2o-nl-c"),
        (lambda: SegNetFunctional().eval(), 3, "decoder", "holistic"),
        (lambda: FunctionalPoolUNet().eval(), 3, "pool", "max"),
        (lambda: FunctionalPoolUNet().eval(), 3, "stride", "holistic-nl"),
    ],
    ids=["segnet-pool", "segnet-decoder", "dncnn-pool", "fastdepth-stride", "fastdepth-decoder", "fastdepth_p-pool",
         "unet-resnet18-stride", "transposed-stride", "shared-pool-module", "compound-stride",
         "functional-indices-pool", "functional-indices-decoder", "functional-avg-max-pool", "functional-avg-max-stride"],
)
def test_rewritten_model_trains_and_keeps_output_shapes(make, channels, mode, choice):
    model = make()
    gm, report = insert_indexnet(model, _input(channels, (64, 64)), choice, mode, flops=False)
    assert any(row.choice == choice for row in report.rows)
    for size in ODD_SIZES if not isinstance(model, CompoundHead) else [(36, 44)]:
        x = _input(channels, size, batch=2)
        with torch.no_grad():
            expected = model(x).shape
        gm.train()
        out = gm(x)
        assert out.shape == expected
        out.square().mean().backward()
        learned = [m for m in gm.modules() if isinstance(m, IndexNet)]
        for module in learned:
            assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in module.parameters())
        gm.zero_grad()
        gm.eval()
        with torch.no_grad():
            assert gm(x).shape == expected


# --- structure of the rewrite ---------------------------------------------------------------------


def test_rewritten_graph_keeps_the_users_modules_and_names_the_index_modules():
    model = _model("segnet")
    gm, _ = insert_indexnet(model, _input(3, (64, 64)), "holistic", "pool", flops=False)
    assert gm.get_submodule("encoder.stage1.convs.0.conv") is model.encoder.stage1.convs[0].conv
    assert isinstance(gm.get_submodule("indexnet.encoder_stage2_pool"), IndexNet)
    names = {n.target for n in gm.graph.nodes if n.op == "call_module"}
    assert "decoder.stage2.unpool" not in names and "encoder.stage2.pool" not in names


def test_modelwise_is_one_module_shared_by_every_pair():
    model = _model("segnet")
    gm, report = insert_indexnet(model, _input(3, (64, 64)), "o2o-modelwise-nl-c", "pool", flops=False)
    index_modules = [m for m in gm.get_submodule("indexnet").children()]
    assert len(index_modules) == 1
    calls = [n for n in gm.graph.nodes if n.op == "call_module" and n.target == "indexnet.modelwise"]
    assert len(calls) == 5
    assert report.params_after - report.params_before == 152 == sum(row.params_added for row in report.rows)


def test_stride_mode_pools_main_path_and_shortcut_with_one_encoder_map():
    model = ResidualUNet().eval()
    gm, report = insert_indexnet(model, _input(3, (32, 32)), "o2o-shared", "stride", flops=False)
    pools = _calls(gm, ops.indexed_pool)
    assert len(pools) == 2 and pools[0].args[1] is pools[1].args[1]  # the same encoder map node
    assert model.block.conv1[0].stride == (2, 2) and model.block.shortcut[0].stride == (2, 2)  # user model untouched
    assert gm.get_submodule("block.conv1.0").stride == (1, 1) and gm.get_submodule("block.shortcut.0").stride == (1, 1)
    assert gm.get_submodule("block.conv1.0").weight is model.block.conv1[0].weight
    for size in [(32, 32), (36, 44)]:  # the model's scale-2 up needs even sizes
        x = _input(3, size)
        with torch.no_grad():
            assert gm(x).shape == model(x).shape


def test_a_shortcut_of_another_width_limits_the_transition_to_holistic_maps():
    model = ResNetDShortcut().eval()
    gm, report = analyze(model, _input(3, (32, 32)))
    (options,) = compat.pair_options(gm, report, "stride").values()
    assert {s.family for s in options.allowed} == {"keep", "holistic", "hmi", "avg"}
    assert "conv1.0 reads 16 channels but a pooled feature has 8" in options.reason
    rewritten, _ = insert_indexnet(model, _input(3, (32, 32)), "holistic-nl", "stride", flops=False)
    for size in [(32, 32), (36, 44)]:  # the model's scale-2 up needs even sizes
        x = _input(3, size)
        with torch.no_grad():
            assert rewritten(x).shape == model(x).shape


def test_pool_mode_leaves_strided_convs_and_says_why():
    model = _model("fastdepth")
    gm, report = analyze(model, _input(3, (64, 64)))
    options = compat.pair_options(gm, report, "pool")
    assert all(o.allowed == (compat.IndexSpec("keep"),) and "--mode stride" in o.reason for o in options.values())
    with pytest.raises(UserError, match="no pair can take m2o in pool mode"):
        insert_indexnet(model, _input(3, (64, 64)), "m2o", "pool", flops=False)


def test_depthwise_maps_need_the_decoder_to_have_the_encoder_width():
    model = _model("fastdepth_p")
    gm, report = analyze(model, _input(3, (64, 64)))
    strict = compat.pair_options(gm, report, "pool")
    depthwise_ok = {name for name, o in strict.items() if compat.IndexSpec("m2o") in o.allowed}
    assert depthwise_ok == {"encoder.stage1.pool"}  # pooled 8 channels at width 0.25 meet an 8-channel up
    assert "reads 256 channels but the up decoder.stage5.up.interpolate has 128" in strict["encoder.stage5.pool"].reason
    grouped = compat.pair_options(gm, report, "pool", "group")
    assert all(compat.IndexSpec("m2o") in o.allowed for o in grouped.values())
    rewritten, rep = insert_indexnet(model, _input(3, (64, 64)), "m2o", "pool", channel_fit="group", flops=False)
    assert [r.choice for r in rep.rows] == ["m2o"] * 5
    assert len(_calls(rewritten, fit_channels)) == 4
    x = _input(3, ODD_SIZES[0])
    with torch.no_grad():
        assert rewritten(x).shape == model(x).shape


def test_pairs_sharing_a_transition_share_one_index_network_and_must_agree():
    model = SharedUps().eval()
    x = _input(3, (32, 32))
    gm, report = analyze(model, x)
    names = [p.name for p in report.pairs]
    assert len(names) == 2 and len({p.transitions for p in report.pairs}) == 1
    with pytest.raises(UserError, match="different choices"):
        insert_indexnet(model, x, {names[0]: "m2o", names[1]: "holistic"}, "pool", flops=False)
    rewritten, rep = insert_indexnet(model, x, {names[0]: "m2o", names[1]: "m2o"}, "pool", flops=False)
    assert len(list(rewritten.get_submodule("indexnet").children())) == 1
    assert len(_calls(rewritten, ops.indexed_upsample)) == 2
    assert sum(r.params_added for r in rep.rows) == rep.params_after - rep.params_before == stage_params("m2o", 8)


def test_compound_up_chains_the_inner_map_first():
    model = CompoundHead().eval()
    gm, rep = insert_indexnet(model, _input(3, (32, 32)), "holistic", "stride", flops=False)
    compound = [r for r in rep.rows if r.choice == "holistic" and "down1" in r.downs and "down2" in r.downs]
    assert len(compound) == 1
    compound_ius = [n for n in _calls(gm, ops.indexed_upsample) if n.args[1].args[0].target != "indexnet.patchify"]
    first, second = compound_ius  # the x4 patchify's own rate-4 IU aside
    assert first in second.args[0].all_input_nodes or second.args[0] is first  # the inner IU feeds the outer
    maps_of = {n.args[1].args[0].target for n in (first,)}, {n.args[1].args[0].target for n in (second,)}
    assert maps_of == ({"indexnet.down2_0"}, {"indexnet.down1_0"})  # low-resolution (inner) map first


def test_transposed_convolutions_keep_their_weights_and_are_modulated():
    model = UNetTransposed().eval()
    gm, rep = insert_indexnet(model, _input(3, (32, 32)), "hmi", "decoder", flops=False)
    kept = {n.target for n in gm.graph.nodes if n.op == "call_module"}
    assert {"up2.up", "up1.up"} <= kept
    assert len(_calls(gm, modulate)) == 2 and not _calls(gm, ops.indexed_upsample)
    assert all(r.action == "downs kept; up x map" for r in rep.rows)


# --- errors ---------------------------------------------------------------------------------------


def test_bad_requests_are_user_errors():
    model = SegNetFunctional().eval()
    x = _input(3, (32, 32))
    with pytest.raises(UserError, match="unknown rewrite mode"):
        insert_indexnet(model, x, "m2o", "sideways", flops=False)
    with pytest.raises(UserError, match="no pair named 'nope'"):
        insert_indexnet(model, x, {"nope": "m2o"}, "pool", flops=False)
    with pytest.raises(UserError, match="invalid IndexNet choice"):
        insert_indexnet(model, x, "m2o-xl", "pool", flops=False)
    gm, report = analyze(UNetTransposed().eval(), x)
    name = report.pairs[0].name
    with pytest.raises(UserError, match=f"pair '{name}' cannot take 'm2o'"):
        insert_indexnet(UNetTransposed().eval(), x, {name: "m2o"}, "pool", flops=False)


def test_helpers_fit_maps_to_features():
    index_map = torch.arange(8.0).reshape(1, 8, 1, 1)
    assert fit_channels(index_map, 4).flatten().tolist() == [0.5, 2.5, 4.5, 6.5]
    assert fit_channels(index_map, 16).shape[1] == 16
    y = torch.ones(1, 2, 5, 5)
    out = modulate(y, torch.zeros(1, 1, 4, 4))
    assert out[..., :4, :4].abs().sum() == 0 and out[..., 4, :].eq(1).all()
