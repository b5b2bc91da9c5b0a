"""What a new user meets at the command line: defaults not mistaken for their own options, "did you mean"
for misspelt names, timm model listing with a pattern, and tables that fit a 100-column terminal.
"""

from __future__ import annotations


import pytest

from indexnas.cli import main
from paths import ASSETS

FACTORY = '''
import torch
from torch import nn


class PoolUp(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.pool = nn.Conv2d(1, 8, 3, padding=1), nn.MaxPool2d(2)
        self.c2, self.up, self.head = nn.Conv2d(8, 8, 3, padding=1), nn.Upsample(scale_factor=2), nn.Conv2d(8, 1, 1)

    def forward(self, x):
        return self.head(self.up(self.c2(self.pool(self.c1(x)))))


def with_example():
    return PoolUp(), torch.rand(1, 1, 24, 24)
'''


@pytest.fixture(scope="module")
def factory_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("user") / "mymodel.py"
    path.write_text(FACTORY)
    return str(path)


@pytest.mark.parametrize("extra", [[], ["--no-flops"]])
def test_table_of_a_factory_with_its_own_example_takes_no_size_by_default(factory_file, capsys, extra):
    assert main(["table", f"{factory_file}:with_example", *extra]) == 0
    out, err = capsys.readouterr()
    assert "--size does not apply" not in err and "input (1, 1, 24, 24)" in out


def test_table_of_a_factory_with_its_own_example_refuses_an_explicit_size(factory_file, capsys):
    assert main(["table", f"{factory_file}:with_example", "--size", "64", "--no-flops"]) == 2
    assert "--size does not apply" in capsys.readouterr().err


WIDENING = ASSETS / "widening.py"


def _error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize(("argv", "suggestion"), [
    (["models", "segnett"], "did you mean 'segnet'"),
    (["insert", "dncnn_segnet", "--choice", "m2o-nlc"], "did you mean 'm2o-nl-c'"),
    (["insert", "dncnn_segnet", "--size", "40", "--no-flops", "--choice", "encoder.stage1.pol=m2o"],
     "did you mean 'encoder.stage1.pool'"),
    (["pairs", "timm:resnet19", "--size", "64"], "did you mean 'resnet18'"),
])
def test_unknown_names_get_a_did_you_mean(capsys, argv, suggestion):
    assert suggestion in _error(capsys, argv)


def test_unknown_smp_encoder_gets_a_did_you_mean(capsys):
    pytest.importorskip("segmentation_models_pytorch")
    assert "did you mean 'resnet18'" in _error(capsys, ["pairs", "smp:unet:resnet19"])


def test_a_name_like_nothing_gets_only_the_list(capsys):
    err = _error(capsys, ["models", "qqqqqq"])
    assert "did you mean" not in err and "use one of: dncnn" in err


def test_models_with_a_timm_pattern_lists_the_matching_timm_models(capsys):
    import timm

    assert main(["models", "timm:resnet1*"]) == 0
    out = capsys.readouterr().out
    listed = out.split("):\n", 1)[1].rsplit("\nmeasure one with", 1)[0].split()
    assert listed == timm.list_models("resnet1*") and "resnet18" in listed
    assert max(len(line) for line in out.splitlines()) <= 100
    assert "no timm model matches" in _error(capsys, ["models", "timm:zzzz*"])


def test_models_with_a_zoo_pattern_measures_the_matching_zoo_models(capsys):
    assert main(["models", "dncnn*", "--no-flops", "--size", "32"]) == 0
    rows = capsys.readouterr().out.splitlines()[2:]
    assert [row.split()[0] for row in rows] == ["dncnn", "dncnn_segnet"]


def test_insert_tables_fit_100_columns_and_name_the_channels_plainly(capsys):
    assert main(["insert", "matting", "--choice", "o2o-modelwise-nl-c", "--size", "64", "--no-flops"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 100
    assert "channels pooled / up" in out and "X 32" not in out
    assert "encoder.stage1.pool  decoder.stage1.unpool  maxpool->unpool  64x64 -> 32x32  32 / 32" in out


def test_allowed_summarises_the_choices_and_gives_the_reasons_below(capsys):
    assert main(["insert", f"{WIDENING}:widening", "--allowed"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 100
    assert "keep hmi avg holistic[-nl][-c] (7)" in out  # max: per-channel indices, like depthwise maps
    assert "why some choices are not allowed:" in out and "16" in out.split("why some", 1)[1]
