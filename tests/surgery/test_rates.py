"""Transitions other than one plain x2 step: pads folded through pointwise ops (the IndexNet authors' inverted
residuals), rate-4 IndexNet at x4 stems (one x4 up, or two x2 ups: split), x16 patchify (reported with its
rate), and what `insert --allowed` says would make a refused pair rewritable."""

from __future__ import annotations

import pytest
import torch

import handwritten_models as hw
from indexnas import ops, zoo
from indexnas.cli import main
from indexnas.surgery import analyze, compat
from indexnas.surgery.rewrite import insert_indexnet
from paths import TESTS

X = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
ODD = torch.randn(2, 3, 37, 45, generator=torch.Generator().manual_seed(1))


def _forms() -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    same = hw.InvertedResidualNet().eval()
    padded = hw.InvertedResidualNet(padded=True).eval()
    padded.load_state_dict(same.state_dict())
    return same, padded


def test_a_pad_before_the_expansion_conv_folds_into_the_depthwise_down_measured_before_the_pad() -> None:
    (_, same), (_, padded) = (analyze(m, X) for m in _forms())
    for report in (same, padded):
        assert [(t.name, t.in_size, t.out_size) for t in report.transitions] == [
            ("block1.3", (32, 32), (16, 16)), ("block2.3", (16, 16), (8, 8))]
        assert [p.name for p in report.pairs] == ["block2.3", "block1.3"]
    assert [(d.padding, d.crop) for t in padded.transitions for d in t.downs] == [((2, 2), (1, 1))] * 2
    assert [(d.padding, d.crop) for t in same.transitions for d in t.downs] == [((0, 0), None)] * 2


@pytest.mark.parametrize(("mode", "choice"), [("stride", "m2o"), ("stride", "holistic-nl"), ("decoder", "o2o-unshared-nl"),
                                              ("decoder", "max"), ("stride", "keep"), ("decoder", "keep")])
def test_the_padded_inverted_residual_rewrites_as_the_unpadded_form_does(mode, choice) -> None:
    models, outputs = _forms(), []
    for model in models:
        torch.manual_seed(1)  # the same index-module weights in both forms
        rewritten, report = insert_indexnet(model, X, choice, mode, channel_fit="group", flops=False)
        assert [(row.pair, row.choice) for row in report.rows] == [("block2.3", choice), ("block1.3", choice)]
        outputs.append(rewritten(ODD))
        if choice == "keep":
            assert torch.equal(outputs[-1], model(ODD))
    torch.testing.assert_close(outputs[0], outputs[1])  # at initialisation the two forms compute the same


def test_the_zoo_matting_host_with_padded_blocks_pairs_as_with_same_padding() -> None:
    x = zoo.example_input("matting", 32)
    names = {}
    for block in ("same", "padded"):
        model = zoo.create_model("matting", width=0.25, block=block).eval()
        for mode in ("stride", "decoder"):
            _, report = insert_indexnet(model, x, "holistic", mode, flops=False)
            names[block, mode] = [(row.pair, row.choice) for row in report.rows]
    assert names["same", "stride"] == names["padded", "stride"] and names["same", "decoder"] == names["padded", "decoder"]


@pytest.mark.parametrize("mode", ["stride", "decoder"])
@pytest.mark.parametrize("choice", ["m2o-nl-c", "holistic", "o2o-shared-nl"])
def test_a_x4_stem_undone_by_one_x4_up_rewrites_with_a_rate_4_indexnet(mode, choice) -> None:
    model = hw.X4Stem(ups=1).eval()
    rewritten, report = insert_indexnet(model, X, choice, mode, flops=False)
    assert [(row.pair, row.choice) for row in report.rows] == [("stem", choice)]
    assert rewritten.get_submodule("indexnet.stem").rate == 4
    rates = [n.args[2] for n in rewritten.graph.nodes if n.target in (ops.indexed_pool, ops.indexed_upsample)]
    assert rates == ([4, 4] if mode == "stride" else [4])
    rewritten.train()
    out = rewritten(ODD)
    assert out.shape == model(ODD).shape
    out.square().mean().backward()


def test_a_x4_stem_undone_by_two_x2_ups_pairs_each_up_with_its_part_of_one_rate_4_transition() -> None:
    model = hw.X4Stem(ups=2).eval()
    _, report = analyze(model, X)
    assert [(p.name, [t.name for t in p.transitions], p.part) for p in report.pairs] == [
        ("stem@interpolate:0", ["stem"], (2, 2)), ("stem@interpolate:1", ["stem"], (1, 2))]
    assert not report.unpaired
    for mode in ("stride", "decoder"):
        rewritten, rewrite = insert_indexnet(model, X, "m2o-nl", mode, flops=False)
        assert [row.choice for row in rewrite.rows] == ["m2o-nl", "m2o-nl"]
        assert [n.target for n in rewritten.graph.nodes if n.op == "call_module" and "indexnet" in n.target] == ["indexnet.stem"]
        assert sum(n.target is ops.coarsen_map for n in rewritten.graph.nodes) == 1
        rewritten.train()
        out = rewritten(ODD)
        assert out.shape == model(ODD).shape
        out.square().mean().backward()


@pytest.mark.parametrize("ups", [1, 2])
def test_uniform_rate_4_maps_in_decoder_mode_are_the_nearest_ups_bit_for_bit(ups) -> None:
    model = hw.X4Stem(ups=ups).eval()
    rewritten, _ = insert_indexnet(model, X, "avg", "decoder", flops=False)
    kept, _ = insert_indexnet(model, X, "keep", "decoder", flops=False)
    x = torch.randn(2, 3, 40, 48)
    assert torch.equal(rewritten(x), model(x)) and torch.equal(kept(x), model(x))


def test_a_x16_patchify_is_paired_and_refused_with_a_reason_naming_the_rate() -> None:
    model = hw.X4Stem(ups=1, patch=16).eval()
    table = compat.allowed_table(model, torch.randn(1, 3, 64, 64), "decoder")
    (row,) = table.to_dict("records")
    assert row["allowed"] == "keep"
    assert row["reason"].startswith("a x16 transition (64x64 -> 4x4): IndexNet is offered at rates 2 and 4, not at rate 16")
    assert row["fix"] == "no --mode or --channel-fit allows more; stem would need rate 16, not offered (rates 2, 4)"


def test_allowed_says_per_refused_pair_which_mode_or_channel_fit_would_allow_more(capsys) -> None:
    assert main(["insert", f"{TESTS / 'handwritten_models.py'}:CompoundHead", "--size", "64", "--allowed",
                 "--mode", "pool"]) == 0
    out = capsys.readouterr().out
    assert "patchify: patchify is a conv down: pool mode cannot replace it (use --mode stride or decoder)." in out
    assert "Would allow more: --mode stride allows" in " ".join(out.split())
    table = compat.allowed_table(hw.CompoundHead().eval(), torch.randn(1, 3, 64, 64), "decoder")
    fixes = dict(zip(table["pair"], table["fix"]))
    assert fixes == {"down1.0+down2.0": "--mode stride --channel-fit group allows all 24",
                     "patchify": "--mode stride allows keep max hmi avg holistic[-nl][-c] o2o-shared[-nl][-c] "
                                 "o2o-unshared[-nl][-c] m2o[-nl][-c] (20)"}
