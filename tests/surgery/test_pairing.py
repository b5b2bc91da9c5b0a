"""The pair finder on hand-written encoder-decoders in several styles, and the `pairs` command.

Each case states the pairing a reader expects from the model's code: which up inverts which
down(s), which ups have no partner and why, at odd input sizes too.
"""

from __future__ import annotations

import json

import pytest
import torch

import handwritten_models as hw
from indexnas.cli import main
from indexnas.errors import UserError
from indexnas.surgery import analyze, find_pairs
from indexnas.surgery.loading import load_model
from indexnas.surgery.pairs import PairReport
from paths import TESTS



def report_of(model: torch.nn.Module, size: int) -> PairReport:
    torch.manual_seed(0)
    return analyze(model, torch.randn(1, 3, size, size))[1]


def pairing(report: PairReport) -> dict[str, tuple[str, ...]]:
    """{up: the transitions it inverts}"""
    return {p.up.target: tuple(t.name for t in p.transitions) for p in report.pairs}


def unpaired(report: PairReport) -> dict[str, str]:
    return {u.up.target: u.code for u in report.unpaired}


CASES = {
    # model, input sizes (odd ones included), expected pairs, expected unpaired codes
    "segnet-modules": (hw.SegNetModules, (64, 45), {
        "unpools.2": ("pools.2",), "unpools.1": ("pools.1",), "unpools.0": ("pools.0",)}, {}),
    "segnet-functional": (hw.SegNetFunctional, (32, 37), {
        "max_unpool2d:0": ("max_pool2d_with_indices:1",), "max_unpool2d:1": ("max_pool2d_with_indices:0",)}, {}),
    "unet-shared-pool": (hw.UNetSharedPool, (64, 50), {
        "interpolate:0": ("pool:1",), "interpolate:1": ("pool:0",)}, {}),
    "unet-transposed": (hw.UNetTransposed, (64, 45), {"up2.up": ("down2.0",), "up1.up": ("down1.0",)}, {}),
    "resunet-se": (hw.ResUNetSE, (64, 48), {"up:0": ("layer2.0.conv1.0",), "up:1": ("layer1.0.conv1.0",)}, {}),
    "stacked-hourglass": (hw.StackedHourglass, (32, 30), {
        "interpolate:0": ("down_a.0",), "interpolate:1": ("down_b.0",)}, {}),
    "compound": (hw.CompoundHead, (64,), {
        "interpolate:0": ("down1.0", "down2.0"), "interpolate:1": ("patchify",)}, {}),
    "pixel-shuffle": (hw.PixelShuffleUNet, (32,), {
        "pixel_shuffle": ("pixel_unshuffle",), "shuffle": ("unshuffle",)}, {}),
    "channels-last": (hw.ChannelsLastEncoder, (32,), {"interpolate": ("stem",)}, {}),
    "aspp": (hw.ASPPNet, (32, 33), {"interpolate:1": ("down.0",)}, {"interpolate:0": "global-pool"}),
    "super-resolution": (hw.SuperResolution, (16,), {}, {"up": "no-down"}),
    "two-encoders": (lambda: hw.TwoEncoders(fuse_skip=False), (32,), {}, {"interpolate": "ambiguous"}),
    "two-encoders-skip": (lambda: hw.TwoEncoders(fuse_skip=True), (32,), {"interpolate": ("a1.0",)}, {}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_expected_pairing(case: str) -> None:
    build, sizes, pairs, codes = CASES[case]
    for size in sizes:
        report = report_of(build(), size)
        assert pairing(report) == pairs, size
        assert unpaired(report) == codes, size


def test_every_up_is_paired_or_explained_once() -> None:
    for build, sizes, _, _ in CASES.values():
        report = report_of(build(), sizes[0])
        ups = [p.up.node for p in report.pairs] + [u.up.node for u in report.unpaired]
        assert len(ups) == len(set(ups))
        assert all(u.reason and u.code for u in report.unpaired)
        names = [p.name for p in report.pairs]
        assert len(names) == len(set(names))


def test_residual_block_downs_form_one_transition_main_path_first() -> None:
    report = report_of(hw.ResUNetSE(), 64)
    first = report.transitions[0]
    assert [d.target for d in first.downs] == ["layer1.0.conv1.0", "layer1.0.shortcut.0"]
    assert first.channels == 8 and first.in_size == (64, 64) and first.out_size == (32, 32)
    assert first.factor == 2


def test_global_pools_are_ignored_with_reason() -> None:
    report = report_of(hw.ResUNetSE(), 64)
    assert [name for name, _ in report.ignored] == ["stem.1.mean", "layer1.1.mean", "layer2.1.mean"]
    assert all("global pool" in why for _, why in report.ignored)


def test_up_and_down_record_sizes_channels_and_mode() -> None:
    report = report_of(hw.UNetSharedPool(), 50)
    pair = next(p for p in report.pairs if p.up.target == "interpolate:0")
    assert (pair.up.kind, pair.up.mode) == ("interpolate", "bilinear")
    assert (pair.up.in_size, pair.up.out_size, pair.up.in_channels) == ((12, 12), (25, 25), 32)
    (down,) = pair.transitions[0].downs
    assert (down.kind, down.in_size, down.out_size, down.in_channels) == ("maxpool", (25, 25), (12, 12), 16)


def test_compound_pair_lists_transitions_highest_resolution_first() -> None:
    report = report_of(hw.CompoundHead(), 64)
    compound = next(p for p in report.pairs if p.compound)
    assert [t.in_size for t in compound.transitions] == [(64, 64), (32, 32)]
    exact_x4 = next(p for p in report.pairs if not p.compound)
    assert exact_x4.transitions[0].factor == 4


def test_pair_names_use_the_transition_and_the_up_when_shared() -> None:
    class SharedDown(torch.nn.Module):
        """One down read by two ups (FPN-style): both pairs name it, told apart by the up."""

        def __init__(self) -> None:
            super().__init__()
            self.down = torch.nn.Conv2d(3, 4, 3, 2, 1)
            self.up_a = torch.nn.Upsample(scale_factor=2)
            self.up_b = torch.nn.Upsample(scale_factor=2, mode="bilinear")

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.down(x)
            return self.up_a(y) + self.up_b(y)

    names = [p.name for p in find_pairs(SharedDown(), torch.randn(1, 3, 16, 16))]
    assert names == ["down@up_a", "down@up_b"]
    assert [p.name for p in find_pairs(hw.SegNetModules(), torch.randn(1, 3, 32, 32))] == ["pools.2", "pools.1", "pools.0"]


def test_load_model_descriptors() -> None:
    model, example = load_model(f"{TESTS / 'handwritten_models.py'}:SegNetModules", size=40)
    assert type(model).__name__ == "SegNetModules" and example.shape == (1, 3, 40, 40)
    with pytest.raises(UserError, match="no such file"):
        load_model("missing/file.py:make")
    with pytest.raises(UserError, match="has no function 'nope'"):
        load_model(f"{TESTS / 'handwritten_models.py'}:nope")
    with pytest.raises(UserError, match="not smp:ARCH:ENCODER"):
        load_model("smp:unet")
    with pytest.raises(UserError, match="unknown smp architecture"):
        load_model("smp:nonet:resnet18")
    with pytest.raises(UserError, match="unknown smp encoder"):
        load_model("smp:unet:resnet_typo")
    with pytest.raises(UserError, match="unknown zoo model"):
        load_model("no_such_model")


def test_pairs_command_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pairs", f"{TESTS / 'handwritten_models.py'}:ASPPNet", "--size", "33"]) == 0
    out = capsys.readouterr().out
    assert "Pairs (1): 1 exact, 0 compound" in out
    assert "Unpaired ups (1):" in out and "global or pyramid pool" in out
    assert "Ignored (1): not transitions" in out


def test_pairs_command_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pairs", f"{TESTS / 'handwritten_models.py'}:SegNetFunctional", "--size", "37", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["input"] == [1, 3, 37, 37]
    assert [p["name"] for p in payload["pairs"]] == ["max_pool2d_with_indices:1", "max_pool2d_with_indices:0"]
    assert payload["pairs"][0]["up"]["kind"] == "unpool"


def test_pairs_command_zoo_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pairs", "dncnn_segnet", "--size", "40"]) == 0
    out = capsys.readouterr().out
    for stage in (1, 2, 3):
        assert f"encoder.stage{stage}.pool" in out and f"decoder.stage{stage}.unpool" in out


def test_pairs_command_user_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pairs", "no_such_model"]) == 2
    assert "unknown zoo model" in capsys.readouterr().err
    assert main(["pairs", f"{TESTS / 'handwritten_models.py'}:SegNetModules", "--size", "0"]) == 2
    assert "must be positive" in capsys.readouterr().err
