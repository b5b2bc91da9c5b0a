"""Bad input gets one clear message naming the problem and the fix, and loses nothing.

Every case runs the command line as a user would (`indexnas ...`: exit status 2, one `indexnas: error:`
line and one `fix:` line, no traceback) and, where there is one, the Python API (a UserError). A few run
the real console script in a subprocess. A failed command never touches an existing study or report.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import PG_PASSWORD, TINY_MODEL, tiny_settings
from PIL import Image

from indexnas import zoo
from indexnas.cli import main
from indexnas.errors import UserError
from indexnas.spec import IndexSpec
from indexnas.reports.frame import trials_frame
from indexnas.reports.source import results_from_study
from indexnas.reports.trained import trained_index_maps
from indexnas.tasks.registry import folder_dataset
from indexnas.search.settings import SearchSettings
from indexnas.search.storage import open_storage
from indexnas.search.run import run_search
from indexnas.surgery import analyze, insert_indexnet
from indexnas.surgery.loading import load_model
from indexnas.tasks.problem import TaskProblem
from paths import ASSETS, REPO

CONSOLE = REPO / ".venv" / "bin" / "indexnas"

WIDENING = ASSETS / "widening.py"

MODELS = '''
import torch
from torch import nn
import torch.nn.functional as F


def raises():
    raise RuntimeError("factory exploded")


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        if y.mean() > 0:  # control flow on a tensor's value: fx cannot trace it
            y = F.max_pool2d(y, 2)
        return F.interpolate(y, size=x.shape[-2:])


def untraceable():
    return DataDependent(), torch.rand(1, 1, 40, 40)


def nopairs():
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 3, padding=1)), torch.rand(1, 1, 40, 40)
'''


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("models") / "models.py"
    path.write_text(MODELS)
    return str(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Dataset folders: empty, one unreadable image among good ones, segmentation labels that do not match."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    (root / "empty").mkdir()
    (root / "unreadable").mkdir()
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (48, 48), dtype=np.uint8)).save(root / "unreadable" / f"{i}.png")
    (root / "unreadable" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    for name, size in (("unlabelled", (64, 64)), ("mismatched", (64, 64))):
        (root / name / "images").mkdir(parents=True)
        (root / name / "labels").mkdir()
        for i in range(5):
            Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(root / name / "images" / f"{i}.png")
            label = size if name == "unlabelled" or i < 4 else (60, 64)
            if not (name == "unlabelled" and i == 4):
                Image.fromarray(np.zeros(label, np.uint8)).save(root / name / "labels" / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Checkpoints that must be refused: truncated, of another model, and a pickle with code in it."""
    root = tmp_path_factory.mktemp("checkpoints")
    other = root / "other.pt"
    torch.save(zoo.create_model("fastdepth", width=0.25).state_dict(), other)
    corrupt = root / "corrupt.pt"
    corrupt.write_bytes(other.read_bytes()[:200])
    evil = root / "evil.pt"
    torch.save({"state_dict": Payload(root / "pwned")}, evil)
    return {"corrupt": corrupt, "other": other, "evil": evil, "pwned": root / "pwned"}


class Payload:
    """Unpickling this runs a shell command: a checkpoint that must never be loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def cli_error(capsys, argv: list[str]) -> str:
    """Run the command line; it must fail with one message and one fix, and no traceback."""
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.count("indexnas: error:") == 1 and err.count("\n  fix: ") == 1, err
    assert "Traceback" not in err
    return err


def search_args(tmp_path: Path, model: str = TINY_MODEL, *extra: str) -> list[str]:
    return ["search", "--task", "denoise", "--model", model, "--trials", "1", "--budget-steps", "2",
            "--batch-size", "4", "--no-paper-grid", "--quiet", "--no-report", "--storage", str(tmp_path / "s.log"),
            "--out", str(tmp_path / "run"), *extra]


def nothing_written(tmp_path: Path) -> None:
    assert not (tmp_path / "s.log").exists() and not (tmp_path / "run").exists()


# --- choices and models ----------------------------------------------------------------------------

def test_an_invalid_choice_string(capsys):
    err = cli_error(capsys, ["insert", "dncnn_segnet", "--size", "40", "--choice", "m2o-xl"])
    assert "invalid IndexNet choice 'm2o-xl'" in err and "m2o[-nl][-c]" in err
    with pytest.raises(UserError, match="invalid IndexNet choice"):
        IndexSpec.parse("m2o-xl")


@pytest.mark.parametrize(("model", "problem", "fix"), [
    ("nosuch", "unknown zoo model 'nosuch'", "dncnn_segnet"),
    ("timm:nosuchnet", "unknown timm model 'nosuchnet'", "timm.list_models"),
    ("smp:unet:nosuch", "unknown smp encoder 'nosuch'", "tu-TIMMNAME"),
    ("smp:nosuch:resnet18", "unknown smp architecture 'nosuch'", "unetplusplus"),
    ("/no/such/file.py:build", "no such file: /no/such/file.py", "existing file"),
])
def test_an_unknown_model_name(capsys, tmp_path, model, problem, fix):
    err = cli_error(capsys, ["pairs", model])
    assert problem in err and fix in err
    with pytest.raises(UserError, match=problem.split(" '")[0]):
        load_model(model)
    assert problem in cli_error(capsys, search_args(tmp_path, model))
    nothing_written(tmp_path)


def test_a_model_file_whose_factory_raises(capsys, tmp_path, models):
    err = cli_error(capsys, ["pairs", f"{models}:raises"])
    assert "raises() raised RuntimeError: factory exploded" in err and "fix the factory" in err
    assert "factory exploded" in cli_error(capsys, search_args(tmp_path, f"{models}:raises"))
    nothing_written(tmp_path)


def test_a_model_fx_cannot_trace(capsys, models):
    err = cli_error(capsys, ["pairs", f"{models}:untraceable"])
    assert "torch.fx could not trace" in err and "models.py:18" in err and "leaf" in err
    with pytest.raises(UserError, match="could not trace"):
        analyze(*load_model(f"{models}:untraceable"))


def test_a_model_with_no_down_up_pairs(capsys, tmp_path, models):
    err = cli_error(capsys, ["insert", f"{models}:nopairs", "--choice", "m2o"])
    assert "the model has no down/up pairs" in err
    err = cli_error(capsys, search_args(tmp_path, f"{models}:nopairs"))
    assert "has no down/up pairs that mode 'pool' can rewrite" in err and "indexnas pairs MODEL" in err
    nothing_written(tmp_path)


def test_a_choice_the_pair_cannot_take(capsys):
    err = cli_error(capsys, ["insert", f"{WIDENING}:widening", "--choice", "pool=o2o-shared"])
    assert "pair 'pool' cannot take 'o2o-shared'" in err and "pool reads 8 channels but the up up has 16" in err
    assert "choose one of: avg, hmi, holistic" in err
    with pytest.raises(UserError, match="cannot take 'm2o'"):
        insert_indexnet(*load_model(f"{WIDENING}:widening"), {"pool": "m2o"})


def test_an_example_input_of_the_wrong_rank_or_channels(capsys, tmp_path):
    assert "no 4-D (N, C, H, W) image among the example inputs" in cli_error(capsys, ["pairs", f"{WIDENING}:wrong_rank"])
    err = cli_error(capsys, ["pairs", f"{WIDENING}:wrong_channels"])
    assert "fails on the example input (1, 3, 40, 40) itself" in err and "to have 1 channels" in err
    err = cli_error(capsys, search_args(tmp_path, f"{WIDENING}:wrong_rank"))
    assert "takes input (1, 40, 40) but the denoise task feeds (batch, 1, height, width) images" in err
    segment = [*search_args(tmp_path), "--task", "segment"]
    assert "the segment task feeds (batch, 3, height, width)" in cli_error(capsys, segment)
    nothing_written(tmp_path)


def test_odd_spatial_sizes_work_and_too_small_ones_are_refused(capsys):
    assert main(["pairs", "dncnn_segnet", "--size", "37"]) == 0
    assert "37x37 -> 18x18" in capsys.readouterr().out  # floor rounding, as max pooling does
    err = cli_error(capsys, ["pairs", "segnet", "--size", "20"])
    assert "segnet needs inputs of at least 32x32, asked for 20x20" in err and "use size >= 32" in err


# --- storage ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("storage", "problem"), [
    ("mongodb://bob:s3cret@db/x", "unknown scheme 'mongodb'"),
    ("postgresql://bob:s3cret@db:port/x", "is malformed"),
    ("sqlite://", "is an in-memory database"),
    ("postgresql://bob:s3cret@127.0.0.1:1/x", "Connection refused"),
])
def test_a_malformed_or_unreachable_storage_url(capsys, tmp_path, storage, problem):
    err = cli_error(capsys, search_args(tmp_path)[:-4] + ["--storage", storage, "--out", str(tmp_path / "run")])
    assert problem in err and "s3cret" not in err
    assert "bob:***@" in err or "bob" not in storage
    with pytest.raises(UserError, match=problem):
        open_storage(storage)
    assert not (tmp_path / "run").exists()


def test_a_storage_path_that_is_a_folder(capsys, tmp_path):
    err = cli_error(capsys, search_args(tmp_path)[:-4] + ["--storage", str(tmp_path), "--out", str(tmp_path / "run")])
    assert "is a directory" in err and "study.log" in err


def test_a_wrong_database_password_is_refused_without_printing_it(capsys, tmp_path, postgres_url):
    wrong = postgres_url.replace(PG_PASSWORD, "not-the-" + PG_PASSWORD)
    err = cli_error(capsys, search_args(tmp_path)[:-4] + ["--storage", wrong, "--out", str(tmp_path / "run")])
    assert "password authentication failed" in err and PG_PASSWORD not in err


# --- data ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("task", "folder", "problem", "fix"), [
    ("denoise", "empty", "has no files ending in .png", "put the training images there"),
    ("denoise", "missing", "does not exist", "the expected layout is ROOT/*.png"),
    ("denoise", "unreadable", "cannot read image", "replace or remove the file"),
    ("segment", "unlabelled", "4.png has no label map with the same name", "add label map '4.*'"),
    ("segment", "mismatched", "is 60x64 but", "paired files must have the same height and width"),
])
def test_a_bad_dataset_folder(capsys, tmp_path, data, task, folder, problem, fix):
    args = search_args(tmp_path, TINY_MODEL if task == "denoise" else "segnet", "--data", str(data / folder))
    err = cli_error(capsys, [*args, "--task", task])
    assert problem in err and fix in err
    with pytest.raises(UserError, match=problem.split(" ")[0]):
        folder_dataset(task, data / folder)
    nothing_written(tmp_path)


# --- checkpoints ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "problem"), [
    ("corrupt", "is not a readable PyTorch checkpoint (truncated or corrupt?)"),
    ("other", "holds the host of another search"),
    ("evil", "holds Python objects other than tensors (posix.system): refused unopened"),
])
def test_a_bad_host_checkpoint_in_the_run_folder(capsys, tmp_path, checkpoints, kind, problem):
    if kind == "other":  # a run folder used before by a search with other settings
        assert main(search_args(tmp_path, TINY_MODEL, "--seed", "1", "--study", "first")) == 0
        capsys.readouterr()
    else:
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / "host.pt").write_bytes(checkpoints[kind].read_bytes())
    before = (tmp_path / "run" / "host.pt").read_bytes()
    err = cli_error(capsys, search_args(tmp_path, TINY_MODEL, "--study", "second"))
    assert problem in err and "delete" in err and "host.pt" in err
    assert (tmp_path / "run" / "host.pt").read_bytes() == before  # kept, not overwritten
    assert not checkpoints["pwned"].exists()


def test_zoo_checkpoints_that_are_corrupt_foreign_or_malicious_are_refused(checkpoints):
    with pytest.raises(UserError, match="truncated or corrupt"):
        zoo.create_model("dncnn", width=0.25, pretrained=checkpoints["corrupt"])
    with pytest.raises(UserError, match="does not fit dncnn"):
        zoo.create_model("dncnn", width=0.25, pretrained=checkpoints["other"])
    with pytest.raises(UserError, match="could run code|refused unopened"):
        zoo.create_model("dncnn", width=0.25, pretrained=checkpoints["evil"])
    assert not checkpoints["pwned"].exists()  # refused without running it


def test_a_malicious_trial_checkpoint_is_refused_by_the_report(tmp_path, checkpoints):
    study = run_search(SearchSettings(**tiny_settings(tmp_path, trials=1, paper_grid=False)), TaskProblem)
    (trial,) = study.best_trials
    Path(trial.user_attrs["checkpoint"]).write_bytes(checkpoints["evil"].read_bytes())
    results = results_from_study(study)
    figure, note = trained_index_maps(results, trials_frame(results), allow_code=True)  # the model is a file
    assert figure is None and "refused unopened" in note  # the report says why it has no index maps
    assert not checkpoints["pwned"].exists()


# --- training settings --------------------------------------------------------------------------------

def test_a_learning_rate_that_makes_the_host_diverge(capsys, tmp_path):
    err = cli_error(capsys, search_args(tmp_path, TINY_MODEL, "--lr", "1e30", "--budget-steps", "3"))
    assert "training the host" in err and "diverged" in err and "lower --lr" in err


# --- nothing is lost ----------------------------------------------------------------------------------

def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.endswith("lock")}


def test_failed_commands_leave_an_existing_study_and_report_untouched(capsys, tmp_path, models):
    args = search_args(tmp_path, TINY_MODEL, "--study", "kept")
    args.remove("--no-report")
    assert main(args) == 0
    capsys.readouterr()
    before = digest(tmp_path)
    assert (tmp_path / "run" / "report" / "report.html").exists() and (tmp_path / "s.log").exists()
    for argv in ([*args, "--budget-steps", "3"],  # resume with other settings
                 [*args[:4], f"{models}:raises", *args[5:]],  # same study, a model that cannot load
                 [*args, "--data", str(tmp_path / "missing")],
                 ["report", "kept", "--storage", str(tmp_path / "s.log"), "--out", str(tmp_path / "run" / "report")]):
        err = cli_error(capsys, argv)
        assert any(s in err for s in ("other settings", "factory exploded", "does not exist", "already holds a report"))
    assert digest(tmp_path) == before


# --- the real console script ------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["pairs", "{models}:raises"],
    ["search", "--task", "denoise", "--model", "nosuch", "--storage", "postgresql://bob:s3cret@127.0.0.1:1/x"],
])
def test_the_console_script_exits_non_zero_without_a_traceback(argv, models, tmp_path):
    argv = [a.format(models=models) for a in argv]
    done = subprocess.run([str(CONSOLE), *argv], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and done.stderr.startswith("indexnas: error:") and "fix:" in done.stderr
    assert "s3cret" not in done.stdout + done.stderr
