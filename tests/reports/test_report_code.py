"""`indexnas report` executes no model file unless --allow-code is given: a results.json can name any file."""

from __future__ import annotations

from pathlib import Path

import optuna
import torch
from conftest import tiny_settings
from optuna.trial import create_trial

from indexnas.cli import main
from indexnas.reports import results_from_study, save_results
from indexnas.reports.frame import trials_frame
from indexnas.reports.trained import trained_index_maps
from indexnas.search.checkpoints import CHECKPOINT_FORMAT

PAIRS = ("enc1.pool", "enc2.pool")


def results_naming(tmp_path: Path, model: str):
    """A study whose best trial kept its checkpoint, whose source (and stored settings) name ``model``."""
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    study.set_user_attr("indexnas", {
        "task": "denoise", "model": model, "mode": "pool", "primary_metric": "psnr", "direction": "maximize",
        "objectives": ["psnr", "params_added", "gflops"], "settings": {**tiny_settings(tmp_path), "model": model},
        "pairs": [{"name": p, "channels": 8, "in_size": [40, 40], "out_size": [20, 20]} for p in PAIRS]})
    checkpoint = tmp_path / "trial-00001.pt"  # self-describing, as the search writes it: it names the model's source
    torch.save({"format": CHECKPOINT_FORMAT, "source": {"model": model, "size": None, "model_args": {}},
                "recipe": {}, "state_dict": {}, "example_shape": [1, 1, 40, 40]}, checkpoint)
    for number, (choice, psnr) in enumerate([("keep", 20.0), ("o2o-shared", 21.0)]):
        attrs = {"choices": {p: choice for p in PAIRS}, "uniform": "host" if number == 0 else choice,
                 "params_added": 16 * number, "params_total": 1000 + 16 * number, "gflops": 0.1, "gflops_added": 0.0,
                 "metrics": {"psnr": psnr}, "checkpoint": str(checkpoint)}
        study.add_trial(create_trial(values=[psnr, 16.0 * number, 0.1], user_attrs=attrs))
    return results_from_study(study)


def evil_model(tmp_path: Path) -> tuple[str, Path]:
    marker = tmp_path / "pwned"
    source = tmp_path / "evil.py"
    source.write_text(f"open({str(marker)!r}, 'w').write('ran')\n\ndef build():\n    raise ValueError('not a model')\n")
    return f"{source}:build", marker


def test_the_report_draws_no_index_maps_from_a_model_file_without_allow_code(tmp_path):
    model, marker = evil_model(tmp_path)
    results = results_naming(tmp_path, model)
    figure, note = trained_index_maps(results, trials_frame(results))
    assert figure is None and "--allow-code" in note and str(Path(model.rsplit(":", 1)[0])) in note
    assert not marker.exists()


def test_a_crafted_results_file_runs_no_code_unless_the_user_allows_it(tmp_path, capsys):
    model, marker = evil_model(tmp_path)
    save_results(results_naming(tmp_path, model), tmp_path / "results.json")
    assert main(["report", "--results", str(tmp_path / "results.json"), "--out", str(tmp_path / "r1")]) == 0
    assert not marker.exists()
    assert "--allow-code" in (tmp_path / "r1" / "report.html").read_text()
    main(["report", "--results", str(tmp_path / "results.json"), "--out", str(tmp_path / "r2"), "--allow-code"])
    assert marker.exists()  # the flag is what stood between the file and its execution
