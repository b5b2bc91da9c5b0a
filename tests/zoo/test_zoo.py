"""The zoo's host models: the paper's figures, shapes, fx-traceability, sizes, checkpoints, CLI."""

from __future__ import annotations

import argparse

import pytest
import torch
import torch.fx as fx
from torch import nn

from indexnas import zoo
from indexnas.cli import main as indexnas_main
from indexnas.errors import UserError
from indexnas.zoo import cli as zoo_cli
from indexnas.cost import count_parameters, measure

SMALL = 0.25  # width for fast CPU tests
OUT_CHANNELS = {"dncnn": 1, "dncnn_segnet": 1, "segnet": 37, "fastdepth": 1, "fastdepth_p": 1, "matting": 1, "unet": 1}
PAPER_HOSTS = ["dncnn", "dncnn_segnet", "segnet", "fastdepth", "fastdepth_p"]
POOLING_HOSTS = ["dncnn_segnet", "segnet", "fastdepth_p", "matting"]
# One or more cheap random-init backbones per timm family.
UNET_BACKBONES = [
    "resnet18",  # ResNet
    "mobilenetv3_small_100",  # MobileNet
    "efficientnet_b0",  # EfficientNet
    "convnext_atto",  # ConvNeXt (stride-4 stem: first feature at 1/4)
    "regnetx_002",  # RegNet
    "vgg11_bn",  # VGG (first feature at 1/1, max-pool downsampling)
    "densenet121",  # DenseNet
    "hrnet_w18_small",  # HRNet (its fusion layers upsample by x2: sizes must be multiples of 32)
    "ghostnet_050",  # GhostNet
    "repvgg_a0",  # RepVGG
]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small inputs run fastest on one thread, and stay fast when the machine is busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small(name: str, **kwargs) -> nn.Module:
    return zoo.create_model(name, width=SMALL, **kwargs)


def assert_trace_matches_eager(model: nn.Module, inputs: list[torch.Tensor]) -> None:
    model.eval()
    traced = fx.symbolic_trace(model)
    with torch.no_grad():
        for x in inputs:
            expected, got = model(x), traced(x)
            assert got.shape == expected.shape
            assert torch.equal(got, expected), f"traced output differs from eager at {tuple(x.shape)}"


# --- registry -------------------------------------------------------------------------------------


def test_registry_lists_the_zoo_and_rejects_unknown_names_with_the_list() -> None:
    assert zoo.list_models() == ["dncnn", "dncnn_segnet", "segnet", "fastdepth", "fastdepth_p", "matting", "unet"]
    with pytest.raises(UserError, match="dncnn, dncnn_segnet, segnet, fastdepth, fastdepth_p, matting, unet"):
        zoo.create_model("segnet2")
    with pytest.raises(UserError, match="unknown zoo model"):
        zoo.paper_baseline("resnet")


def test_paper_baseline_table_is_machine_readable() -> None:
    segnet = zoo.paper_baseline("segnet")
    assert segnet["task"] == "segment" and segnet["in_chans"] == 3
    assert (segnet["params_m"], segnet["gflops"]) == (24.96, 24.76)
    assert segnet["pooled_channels"] == (64, 128, 256, 512, 512)
    assert zoo.paper_baseline("matting")["in_chans"] == 4
    assert zoo.paper_baseline("dncnn")["in_chans"] == 1
    assert zoo.paper_baseline("timm:resnet18")["name"] == "unet"


def test_unknown_arguments_and_bad_widths_are_user_errors() -> None:
    with pytest.raises(UserError, match="num_classes"):  # the fix lists the accepted arguments
        zoo.create_model("dncnn", num_classes=3)
    for width in (0, -1.0, float("nan"), "wide", True):
        with pytest.raises(UserError, match="width"):
            zoo.create_model("fastdepth", width=width)
    with pytest.raises(UserError, match="upsample"):
        zoo.create_model("unet", backbone="resnet18", upsample="pixelshuffle")
    with pytest.raises(UserError, match="backbone"):
        zoo.create_model("timm:resnet18", backbone="resnet34")


def test_example_input_has_the_documented_shape_and_is_deterministic() -> None:
    assert zoo.example_input("dncnn").shape == (1, 1, 224, 224)
    assert zoo.example_input("segnet", size=(64, 96), batch=2).shape == (2, 3, 64, 96)
    matting = zoo.example_input("matting", 64)
    assert matting.shape == (1, 4, 64, 64)
    assert set(matting[0, 3].unique().tolist()) <= {0.0, 0.5, 1.0}  # the trimap channel
    assert torch.equal(zoo.example_input("fastdepth", 40), zoo.example_input("fastdepth", 40))
    with pytest.raises(UserError, match="at least 32x32"):
        zoo.example_input("segnet", 16)


# --- the paper's figures (width 1.0) -------------------------------------------------------------


@pytest.mark.parametrize("name", PAPER_HOSTS)
def test_parameters_and_gflops_match_the_paper(name: str) -> None:
    """Tables 5-7: params in millions and GFLOPs at 224x224 (conv multiply-adds / 2**30)."""
    baseline = zoo.paper_baseline(name)
    model = zoo.create_model(name)
    figures = measure(model, zoo.example_input(name, 224))
    assert round(figures["params"] / 1e6, 2) == baseline["params_m"]
    assert round(figures["gflops_paper_unit"], 2) == baseline["gflops"]
    assert figures["gflops"] > figures["gflops_paper_unit"]  # fvcore's total also counts BN, in 1e9 units


@pytest.mark.parametrize("name", POOLING_HOSTS)
def test_pools_see_the_papers_channels_and_pair_with_unpools_by_name(name: str) -> None:
    model = zoo.create_model(name).eval()
    seen: list[tuple[str, int]] = []
    for module_name, module in model.named_modules():
        if isinstance(module, nn.MaxPool2d):
            module.register_forward_hook(lambda m, args, out, n=module_name: seen.append((n, args[0].shape[1])))
    with torch.no_grad():
        model(zoo.example_input(name, 32))
    pooled = zoo.paper_baseline(name)["pooled_channels"]
    assert seen == [(f"encoder.stage{k}.pool", c) for k, c in enumerate(pooled, start=1)]
    unpools = [n for n, m in model.named_modules() if isinstance(m, nn.MaxUnpool2d)]
    if name != "fastdepth_p":  # FastDepth-P upsamples by nearest interpolation
        assert sorted(unpools) == sorted(n.replace("encoder", "decoder").replace("pool", "unpool") for n, _ in seen)


def test_width_scales_every_channel_count() -> None:
    half = zoo.create_model("segnet", width=0.5)
    full = zoo.create_model("segnet")
    assert count_parameters(half) < 0.3 * count_parameters(full)  # convs scale ~quadratically
    assert half.encoder.stage1.convs[0].conv.out_channels == 32
    assert zoo.create_model("dncnn", width=0.01).body[0].conv.out_channels == 8  # the floor


# --- every model: shapes, gradients, tracing, sizes ----------------------------------------------


@pytest.mark.parametrize("name", list(OUT_CHANNELS))
@pytest.mark.parametrize("size", [64, 45])  # 45: odd and not a multiple of 32
def test_forward_backward_keep_the_input_size(name: str, size: int) -> None:
    model = small(name).train()
    x = zoo.example_input(name, size, batch=2)
    y = model(x)
    assert y.shape == (2, OUT_CHANNELS[name], size, size)
    y.square().mean().backward()
    for parameter_name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), parameter_name


@pytest.mark.parametrize("name", list(OUT_CHANNELS))
def test_fx_trace_equals_eager_at_two_sizes(name: str) -> None:
    model = small(name)
    assert_trace_matches_eager(model, [zoo.example_input(name, 64), zoo.example_input(name, 45, batch=2)])


def test_rectangular_odd_inputs_round_trip_through_unpooling() -> None:
    model = small("segnet").eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 33, 70)).shape == (1, 37, 33, 70)


@pytest.mark.parametrize(
    ("name", "x", "message"),
    [
        ("segnet", torch.rand(1, 3, 31, 64), "height and width >= 32"),
        ("dncnn_segnet", torch.rand(1, 1, 7, 7), "height and width >= 8"),
        ("matting", torch.rand(1, 3, 64, 64), "expects 4 input channel"),
        ("dncnn", torch.rand(1, 64, 64), "4-D tensor"),
        ("unet", torch.rand(1, 3, 16, 16), ">= 32"),
    ],
)
def test_inputs_a_model_cannot_take_raise_user_errors(name: str, x: torch.Tensor, message: str) -> None:
    with pytest.raises(UserError, match=message):
        small(name)(x)
    with pytest.raises(UserError, match=message):  # passed by keyword, too
        small(name)(x=x)


# --- unet over timm --------------------------------------------------------------------------------


@pytest.mark.parametrize("backbone", UNET_BACKBONES)
def test_unet_over_timm_families_trains_and_traces(backbone: str) -> None:
    model = zoo.create_model(f"timm:{backbone}", num_classes=3, width=SMALL).train()
    x = torch.rand(2, 3, 64, 64)
    y = model(x)
    assert y.shape == (2, 3, 64, 64)
    y.mean().backward()
    assert all(p.grad is not None for p in model.decoder.parameters())
    second = 96 if backbone.startswith("hrnet") else 45
    assert_trace_matches_eager(model, [x, torch.rand(1, 3, second, second)])


@pytest.mark.parametrize("upsample", ["nearest", "bilinear", "transposed"])
@pytest.mark.parametrize("backbone", ["resnet18", "convnext_atto"])
def test_unet_upsampling_modes_work_at_odd_sizes(backbone: str, upsample: str) -> None:
    model = zoo.create_model("unet", backbone=backbone, upsample=upsample, in_chans=1, num_classes=2, width=SMALL)
    ups = [m for n, m in model.named_modules() if n.endswith(".up")]
    kind = nn.ConvTranspose2d if upsample == "transposed" else nn.Module
    assert len(ups) == 5 and all(isinstance(m, kind) for m in ups)  # stage5..stage1: five x2 steps
    assert_trace_matches_eager(model, [torch.rand(1, 1, 64, 64), torch.rand(1, 1, 45, 77)])
    assert model(torch.rand(1, 1, 45, 77)).shape == (1, 2, 45, 77)


def test_unet_rejects_unknown_timm_backbones() -> None:
    with pytest.raises(UserError, match="unknown timm model"):
        zoo.create_model("timm:resnet_does_not_exist")
    with pytest.raises(UserError, match="names no timm backbone"):
        zoo.create_model("timm:")


# --- checkpoints -----------------------------------------------------------------------------------


def test_pretrained_loads_a_local_state_dict_bare_or_wrapped(tmp_path) -> None:
    source = small("fastdepth_p").eval()
    bare, wrapped = tmp_path / "bare.pt", tmp_path / "wrapped.pth"
    torch.save(source.state_dict(), bare)
    torch.save({"state_dict": source.state_dict(), "epoch": 3}, wrapped)
    x = zoo.example_input("fastdepth_p", 64)
    for path in (bare, str(wrapped)):
        loaded = small("fastdepth_p", pretrained=path).eval()
        with torch.no_grad():
            assert torch.equal(loaded(x), source(x))


def test_bad_checkpoints_are_user_errors(tmp_path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        small("dncnn", pretrained=tmp_path / "missing.pt")
    other = tmp_path / "segnet.pt"
    torch.save(small("segnet").state_dict(), other)
    with pytest.raises(UserError, match="does not fit dncnn_segnet"):
        small("dncnn_segnet", pretrained=other)
    with pytest.raises(UserError, match="shape mismatch"):
        zoo.create_model("segnet", width=0.5, pretrained=other)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a readable PyTorch checkpoint"):
        small("dncnn", pretrained=garbage)


# --- CLI -------------------------------------------------------------------------------------------


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    zoo_cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.handler(args)


def test_models_command_prints_measured_figures_beside_the_papers(capsys) -> None:
    assert run_cli(["models", "dncnn_segnet", "timm:resnet18", "--size", "64", "--width", "0.25"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["model", "task"]
    dncnn_segnet = lines[2].split()
    assert dncnn_segnet[:3] == ["dncnn_segnet", "denoise", "1x64x64"]
    assert dncnn_segnet[4] == "7.09" and dncnn_segnet[-1] == "18.14"  # the paper's figures
    assert float(dncnn_segnet[5]) > 0 and float(dncnn_segnet[6]) > 0  # measured GFLOPs
    assert lines[3].split()[:2] == ["timm:resnet18", "segment"]


def test_models_command_without_flops_and_with_an_unknown_name(capsys) -> None:
    assert run_cli(["models", "dncnn", "--no-flops", "--size", "32", "--width", "0.25"]) == 0
    row = capsys.readouterr().out.splitlines()[2].split()
    assert row[0] == "dncnn" and row[5] == "-" and row[6] == "-"
    assert indexnas_main(["models", "not_a_model"]) == 2
    assert "use one of: dncnn" in capsys.readouterr().err
