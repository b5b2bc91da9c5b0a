"""Model arguments (`--model-arg KEY=VALUE`) reach every kind of model; a model that does not fit the
task's data is refused before the host trains; local pretrained weights load without downloads."""

from pathlib import Path

import pytest
import timm
import torch

from indexnas.cli import main
from indexnas.errors import UserError
from indexnas.search.run import run_search
from indexnas.search.settings import SearchSettings
from indexnas.surgery.loading import load_model, parse_model_args
from indexnas.surgery.rewrite import insert_indexnet
from indexnas.tasks.problem import TaskProblem
from paths import ASSETS

SEGMENTER = f"{ASSETS / 'tiny_segmenter.py'}:build"
SEGMENT_CLASSES = 6  # the built-in offline segmentation data


def search_args(tmp_path: Path, model: str, *extra: str) -> list[str]:
    return ["search", "--task", "segment", "--model", model, "--trials", "2", "--budget-steps", "1",
            "--batch-size", "2", "--storage", str(tmp_path / "s.log"), "--out", str(tmp_path / "run"),
            "--no-paper-grid", "--no-report", "--quiet", *extra]


def test_model_arguments_are_typed_like_python_literals():
    assert parse_model_args(["classes=6", "lr=1e-3", "name=resnet18", "sizes=(1, 2)", "flag=True", "path=a/b.pth"]) == {
        "classes": 6, "lr": 1e-3, "name": "resnet18", "sizes": (1, 2), "flag": True, "path": "a/b.pth"}
    with pytest.raises(UserError, match="KEY=VALUE"):
        parse_model_args(["classes"])


def test_model_arguments_reach_zoo_timm_smp_and_file_models():
    assert load_model("unet", 64, {"num_classes": 5, "width": 0.25})[0].head.out_channels == 5
    assert load_model("timm:resnet10t", 64, {"num_classes": 4, "width": 0.25})[0].head.out_channels == 4
    smp_model, example = load_model("smp:Unet:resnet18", 64, {"classes": 3, "in_channels": 1, "encoder_depth": 3,
                                                                "decoder_channels": (16, 8, 4)})
    assert smp_model(example).shape == (1, 3, 64, 64) and example.shape[1] == 1
    assert load_model(SEGMENTER, None, {"classes": 7})[0].head.out_channels == 7
    with pytest.raises(UserError, match="colors"):
        load_model(SEGMENTER, None, {"colors": 7})


def test_a_model_with_the_wrong_output_channels_is_refused_before_the_host_trains(tmp_path, capsys):
    assert main(search_args(tmp_path, SEGMENTER)) == 2
    err = capsys.readouterr().err
    assert "outputs 1 channels but the segment data needs 6" in err and "--model-arg <your factory" in err
    assert not (tmp_path / "run" / "host.pt").exists()


def test_a_model_with_the_wrong_input_channels_is_refused_with_the_argument_to_pass(tmp_path):
    settings = SearchSettings(task="segment", model="smp:Unet:resnet18", study="s", storage=str(tmp_path / "s.log"),
                              out=str(tmp_path / "run"), model_args={"classes": 6, "in_channels": 1})
    with pytest.raises(UserError, match="in_channels=3"):
        run_search(settings, TaskProblem)


def test_the_cli_searches_a_file_model_given_its_class_count(tmp_path, capsys):
    assert main(search_args(tmp_path, SEGMENTER, "--model-arg", f"classes={SEGMENT_CLASSES}")) == 0
    out = capsys.readouterr().out
    assert "2 completed" in out


@pytest.mark.slow
def test_the_cli_searches_an_smp_unet_given_its_class_count(tmp_path, capsys):
    assert main(search_args(tmp_path, "smp:Unet:resnet18", "--model-arg", f"classes={SEGMENT_CLASSES}")) == 0
    assert "2 completed" in capsys.readouterr().out


def test_timm_backbone_weights_load_from_a_local_timm_checkpoint(tmp_path):
    torch.manual_seed(3)
    backbone = timm.create_model("resnet10t", pretrained=False)
    torch.save(backbone.state_dict(), tmp_path / "resnet10t.pth")
    model, _ = load_model("timm:resnet10t", 64, {"backbone_weights": str(tmp_path / "resnet10t.pth"), "width": 0.25})
    trained = backbone.state_dict()
    encoder = model.encoder.state_dict()
    assert encoder and all(torch.equal(value, trained[key]) for key, value in encoder.items())
    with pytest.raises(UserError, match="not a local file"):
        load_model("timm:resnet10t", 64, {"backbone_weights": str(tmp_path / "missing.pth")})


def test_smp_encoder_weights_and_whole_models_load_from_local_files(tmp_path):
    args = {"classes": 2, "encoder_depth": 3, "decoder_channels": (16, 8, 4)}
    torch.manual_seed(4)
    donor, _ = load_model("smp:Unet:resnet18", 64, args)
    torch.save(donor.encoder.state_dict(), tmp_path / "encoder.pth")
    torch.save(donor.state_dict(), tmp_path / "whole.pth")
    model, _ = load_model("smp:Unet:resnet18", 64, {**args, "encoder_weights": str(tmp_path / "encoder.pth")})
    assert all(torch.equal(v, donor.encoder.state_dict()[k]) for k, v in model.encoder.state_dict().items())
    assert not torch.equal(model.segmentation_head[0].weight, donor.segmentation_head[0].weight)
    whole, _ = load_model("smp:Unet:resnet18", 64, {**args, "pretrained": str(tmp_path / "whole.pth")})
    assert all(torch.equal(v, donor.state_dict()[k]) for k, v in whole.state_dict().items())


def test_decoder_mode_keeps_a_pretrained_encoder_as_it_is(tmp_path):
    torch.manual_seed(5)
    backbone = timm.create_model("resnet10t", pretrained=False)
    torch.save(backbone.state_dict(), tmp_path / "resnet10t.pth")
    model, example = load_model("timm:resnet10t", 64, {"backbone_weights": str(tmp_path / "resnet10t.pth"),
                                                        "width": 0.25, "num_classes": 2})
    rewritten, report = insert_indexnet(model, example, "holistic-nl", "decoder", flops=False)
    assert any(row.choice != "keep" for row in report.rows)
    encoder = {k: v for k, v in rewritten.state_dict().items() if k.startswith("encoder.")}
    pretrained = backbone.state_dict()
    assert encoder and all(torch.equal(v, pretrained[k[len("encoder."):]]) for k, v in encoder.items())


def test_pairs_and_insert_take_model_arguments_too(capsys):
    assert main(["pairs", "unet", "--size", "64", "--model-arg", "width=0.25", "--json"]) == 0
    assert '"input": [\n    1,\n    3,' in capsys.readouterr().out
    assert main(["insert", "unet", "--size", "64", "--choice", "holistic", "--no-flops",
                 "--model-arg", "width=0.25", "--model-arg", "in_chans=1"]) == 0
    assert "input: (1, 1, 64, 64)" in capsys.readouterr().out
