"""Regression tests for styles met in third-party models (MONAI, HuggingFace, timm, GitHub code),
each on a small model written here in that style: the pair finder and the rewrite must read them
right, and every refusal must name the true reason."""

from __future__ import annotations

import warnings

import pytest
import torch

import handwritten_models as hw
from indexnas.errors import UserError
from indexnas.surgery import analyze, registry
from indexnas.surgery.rewrite import insert_indexnet


@pytest.fixture
def clean_registry():
    leaves = dict(registry.LEAF_MODULES)
    yield
    registry.LEAF_MODULES.clear()
    registry.LEAF_MODULES.update(leaves)


def test_a_leaf_returning_a_list_is_not_a_down_and_casts_and_constants_leave_no_trace(clean_registry) -> None:
    registry.register_leaf_module(hw.ListBackbone, "returns a list of features")
    model = hw.MaskedFPN().eval()
    before = dict(vars(model))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "no resampling handler" warning for type_as
        gm, report = analyze(model, torch.randn(1, 3, 16, 16))
    assert report.transitions == [] and not report.warnings  # the leaf hides its downs; nothing is 'unknown'
    assert {u.code for u in report.unpaired} == {"no-down"}
    assert vars(model).keys() == before.keys()  # no _tensor_constant* attributes left on the user's model
    constants = [n.target for n in gm.graph.nodes if n.op == "get_attr"]
    assert constants and all(hasattr(gm, name) and not hasattr(model, name) for name in constants)
    assert "train mode" not in " ".join(report.warnings)


def _pairing(report) -> dict[str, tuple[str, ...]]:
    return {p.up.target: tuple(t.name for t in p.transitions) for p in report.pairs}


def test_token_stages_downsample_and_reduction_attention_is_never_a_transition() -> None:
    model = hw.TokenPyramid().eval()
    gm, report = analyze(model, torch.randn(1, 3, 64, 64))
    assert [t.name for t in report.transitions] == ["stage1.embed", "stage2.embed", "stage3.embed"]
    assert _pairing(report) == {"interpolate:0": ("stage3.embed",), "interpolate:1": ("stage2.embed",),
                                "interpolate:2": ("stage1.embed",)}
    reductions = [name for name, why in report.ignored if "keys/values" in why]
    assert reductions == ["stage1.attn.sr", "stage2.attn.sr"]  # stage3's sr has stride 1


def test_space_to_depth_by_view_is_a_x4_down_that_two_x2_ups_each_undo_part_of() -> None:
    gm, report = analyze(hw.SpaceToDepthStem().eval(), torch.randn(1, 3, 32, 32))
    (stem,) = [t for t in report.transitions if t.downs[0].kind == "space_to_depth"]
    assert stem.factor == 4
    assert _pairing(report) == {"interpolate:0": ("down.0",), "interpolate:1": ("view:1",), "interpolate:2": ("view:1",)}
    assert [p.part for p in report.pairs] == [None, (2, 2), (1, 2)] and not report.unpaired
    _, rewrite = insert_indexnet(hw.SpaceToDepthStem().eval(), torch.randn(1, 3, 32, 32), "holistic", "decoder", flops=False)
    assert [row.choice for row in rewrite.rows] == ["holistic"] * 3


def test_a_strided_conv_on_an_explicitly_padded_input_is_one_x2_transition_every_mode_rewrites() -> None:
    model = hw.PaddedStrideUNet().eval()
    gm, report = analyze(model, torch.randn(1, 3, 32, 32))
    assert [(t.name, t.in_size, t.out_size) for t in report.transitions] == [
        ("down1", (32, 32), (16, 16)), ("down2", (16, 16), (8, 8))]
    assert [t.downs[0].padding for t in report.transitions] == [(2, 2), (1, 1)]
    for mode, choice in (("stride", "m2o"), ("stride", "holistic-nl"), ("decoder", "o2o-unshared")):
        rewritten, rewrite = insert_indexnet(model, torch.randn(1, 3, 32, 32), choice, mode, flops=False)
        assert [row.choice for row in rewrite.rows] == [choice, choice]
        x = torch.randn(2, 3, 37, 45)
        rewritten.train()
        out = rewritten(x)
        out.square().mean().backward()
        assert out.shape == model(x).shape


def test_a_choice_no_pair_takes_in_one_mode_names_the_modes_that_take_it() -> None:
    with pytest.raises(UserError, match="no pair can take holistic in pool mode") as refused:
        insert_indexnet(hw.PaddedStrideUNet().eval(), torch.randn(1, 3, 32, 32), "holistic", "pool", flops=False)
    assert refused.value.fix == "use --mode stride or --mode decoder, where holistic applies"


def test_a_huggingface_style_model_traces_with_defaults_for_optional_inputs_and_keeps_its_output_class() -> None:
    model = hw.ConfigSegmenter().eval()
    x = torch.randn(1, 3, 32, 32)
    gm, report = analyze(model, x)
    assert [n.target for n in gm.graph.nodes if n.op == "placeholder"] == ["pixel_values"]
    assert _pairing(report) == {"interpolate": ("down.0",)}
    rewritten, _ = insert_indexnet(model, x, "holistic", "stride", flops=False)
    out = rewritten(torch.randn(2, 3, 40, 40))
    assert isinstance(out, hw.SegmenterOutput) and out.logits.shape == (2, 2, 40, 40)


def test_a_graph_baked_for_multiples_of_a_window_is_checked_at_a_size_of_the_same_divisibility() -> None:
    model = hw.WindowPadded().eval()
    gm, report = analyze(model, torch.randn(1, 3, 64, 64))  # 96 fails in the graph; 128 agrees with eager
    assert not any("example size only" in w for w in report.warnings)
    assert [t.name for t in report.transitions] == ["down.0"]


def test_a_graph_that_runs_only_at_the_example_size_is_a_user_error_with_the_reason() -> None:
    with pytest.raises(UserError, match="the traced graph of ExampleSizeOnly runs only at the example size") as err:
        analyze(hw.ExampleSizeOnly().eval(), torch.randn(1, 3, 64, 64))
    assert "the eager model runs at (1, 3, 96, 96)" in str(err.value) and "register_leaf_module" in err.value.fix


def test_modules_made_in_forward_traced_sizes_as_tensor_and_int_of_a_channel_count_trace() -> None:
    model = hw.ZeroPadShortcut().eval()
    torch_functions = (torch.zeros, torch.as_tensor, torch.jit.is_tracing)
    gm, report = analyze(model, torch.randn(1, 3, 32, 32))
    assert (torch.zeros, torch.as_tensor, torch.jit.is_tracing) == torch_functions  # restored after tracing
    (transition,) = report.transitions  # the strided conv and its shortcut pool: one transition
    assert sorted(d.target for d in transition.downs) == ["avg_pool2d", "body.0"]
    assert len(report.pairs) == 1 and report.pairs[0].up.target == "interpolate"
    x = torch.randn(2, 3, 40, 40)
    torch.testing.assert_close(gm(x), model(x))


@pytest.mark.slow  # importing transformers takes seconds
def test_huggingface_stochastic_depth_layers_are_leaves_so_train_mode_keeps_them() -> None:
    segformer = pytest.importorskip("transformers.models.segformer.modeling_segformer")
    assert registry.leaf_reason(segformer.SegformerDropPath(0.1)) is not None
    assert registry.leaf_reason(segformer.SegformerSequenceReduction(8, 2)) is None
