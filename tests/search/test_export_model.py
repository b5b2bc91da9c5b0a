"""A searched trial back as a model: self-describing checkpoints, `indexnas export`, `indexnas.load`."""

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import tiny_settings

import indexnas
from indexnas.cli import main
from indexnas.errors import UserError
from indexnas.tasks.problem import build_datasets
from indexnas.search.settings import SearchSettings
from indexnas.search.run import run_search
from indexnas.tasks.registry import get_task
from indexnas.tasks.train import TrainConfig, evaluate
from indexnas.zoo.checkpoint import read_checkpoint
from indexnas.tasks.problem import TaskProblem
from paths import TESTS

# Scores a loaded model exactly as the study scored the trial (same data, batch size, CPU).
SCORE = """
import json, sys, torch
import indexnas
from indexnas.tasks.problem import build_datasets
from indexnas.search.settings import SearchSettings
from indexnas.tasks.registry import get_task
from indexnas.tasks.train import TrainConfig, evaluate
torch.set_num_threads(1)
settings = SearchSettings(**json.loads(sys.argv[2]))
model = indexnas.load(sys.argv[1])
print(json.dumps(evaluate(model, get_task(settings.task), build_datasets(settings)[1],
                          TrainConfig(batch_size=settings.batch_size))))
"""


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("export")
    torch.set_num_threads(1)
    settings = SearchSettings(**tiny_settings(tmp_path, trials=3, study="exp"))
    return tmp_path, settings, run_search(settings, TaskProblem)


def score(model: torch.nn.Module, settings: SearchSettings) -> dict:
    return evaluate(model, get_task(settings.task), build_datasets(settings)[1], TrainConfig(batch_size=settings.batch_size))


def test_a_trial_checkpoint_describes_itself(searched):
    _, settings, study = searched
    trial = next(t for t in study.best_trials if t.user_attrs.get("checkpoint"))
    saved = read_checkpoint(trial.user_attrs["checkpoint"])
    assert saved["format"] == "indexnas-model" and saved["trial"] == trial.number and saved["task"] == "denoise"
    assert saved["source"] == {"model": settings.model, "model_args": {}, "size": None}
    assert saved["recipe"] == trial.user_attrs["recipe"] and saved["metrics"] == trial.user_attrs["metrics"]
    assert {"indexnas", "torch", "optuna"} <= set(saved["versions"])


def test_export_best_writes_a_model_that_loads_and_scores_as_the_trial_did(searched, tmp_path, capsys):
    _, settings, study = searched
    out = tmp_path / "model.pt"
    assert main(["export", "exp", "--storage", settings.storage, "--trial", "best", "--out", str(out)]) == 0
    best = max((t for t in study.best_trials if t.user_attrs.get("checkpoint")), key=lambda t: t.values[0])
    assert f"trial {best.number}" in capsys.readouterr().out
    assert score(indexnas.load(out), settings) == best.user_attrs["metrics"]


def test_export_refuses_a_trial_whose_weights_were_not_kept(searched, tmp_path, capsys):
    _, settings, study = searched
    dropped = [t.number for t in study.trials if t.state.name == "COMPLETE" and t not in study.best_trials]
    which = str(dropped[0]) if dropped else "999"
    assert main(["export", "exp", "--storage", settings.storage, "--trial", which, "--out", str(tmp_path / "m.pt")]) == 2
    assert "fix:" in capsys.readouterr().err and not (tmp_path / "m.pt").exists()


def test_loading_a_file_that_is_not_a_trial_checkpoint_says_so(searched):
    _, settings, _ = searched
    with pytest.raises(UserError, match="not a model checkpoint"):
        indexnas.load(settings.out_dir / "host.pt")


@pytest.mark.slow
def test_export_to_onnx_and_torch_export_and_load_in_a_fresh_process_bit_exact(searched, tmp_path):
    import onnx

    _, settings, study = searched
    out, onnx_path, program = tmp_path / "model.pt", tmp_path / "model.onnx", tmp_path / "model.pt2"
    assert main(["export", "exp", "--storage", settings.storage, "--trial", "best", "--out", str(out),
                 "--onnx", str(onnx_path), "--torch-export", str(program)]) == 0
    onnx.checker.check_model(onnx.load(str(onnx_path)))
    model = indexnas.load(out)
    x = torch.rand(1, 1, 40, 40, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        assert torch.equal(torch.export.load(str(program)).module()(x), model(x))
    best = max((t for t in study.best_trials if t.user_attrs.get("checkpoint")), key=lambda t: t.values[0])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", SCORE, str(out), json.dumps(settings.to_dict())], env=env,
                          capture_output=True, text=True, timeout=300, cwd=TESTS)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == best.user_attrs["metrics"]  # bit for bit: same scores
