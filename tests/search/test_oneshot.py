"""`--strategy oneshot` end to end on tiny settings: the supernet trained once, its scores stored, its front
trained as ordinary trials."""

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from optuna.trial import TrialState

from indexnas.cli import build_parser
from indexnas.errors import UserError
from indexnas.reports.pareto import pareto_mask
from indexnas.search import oneshot
from indexnas.search.record import ONESHOT, StudyRecord
from indexnas.search.settings import SearchSettings
from indexnas.search.run import run_search
from indexnas.tasks.problem import TaskProblem
from paths import ASSETS, REPO

MODEL = f"{ASSETS / 'two_stage_denoiser.py'}:build"


def tiny(tmp_path: Path, **overrides) -> SearchSettings:
    """Two pairs, 2-step trials, a 8-step supernet (4 x the budget), the host + 4 candidates scored."""
    options = dict(task="denoise", model=MODEL, study="tiny-oneshot", storage=str(tmp_path / "studies.log"),
                   out=str(tmp_path / "run"), trials=3, budget_steps=2, batch_size=4, eval_size=32,
                   progress=False, seed=0, strategy="oneshot", oneshot_candidates=4, paper_grid=False)
    return SearchSettings(**{**options, **overrides})


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("oneshot")
    torch.set_num_threads(1)
    settings = tiny(tmp_path)
    study = run_search(settings, TaskProblem)
    study.settings_after = settings  # the front bounds the trials the command then checks it completed
    return tmp_path, study


def test_the_study_stores_what_the_supernet_cost_and_every_score(finished):
    tmp_path, study = finished
    stored = StudyRecord.of(study)[ONESHOT]
    assert stored["steps"] == 8 and stored["train_seconds"] > 0 and stored["score_seconds"] > 0
    assert stored["configurations_scored"] == len(stored["scored"]) == 5  # the host + 4 distinct candidates
    assert stored["scored"][0]["label"] == "host" and set(stored["scored"][0]["choices"].values()) == {"keep"}
    assert stored["scored"][0]["params_added"] == 0
    assert all(np.isfinite(row["score"]) for row in stored["scored"])
    assert (tmp_path / "run" / oneshot.SUPERNET_FILE).is_file()


def test_the_front_under_the_supernet_score_is_trained_as_ordinary_trials(finished):
    _, study = finished
    stored = StudyRecord.of(study)[ONESHOT]
    values = [[row["score"], row["params_added"]] for row in stored["scored"]]
    assert sorted(stored["front"]) == np.flatnonzero(pareto_mask(values, ["maximize", "minimize"])).tolist()
    front = [stored["scored"][i] for i in stored["front"]]
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(study.trials) == len(complete) == min(3, len(front))  # no sampler trials beyond the front
    assert study.settings_after.trials == len(complete)  # so `indexnas search` reports success
    for trial, row in zip(complete, front):
        assert trial.user_attrs["oneshot_score"] == row["score"]
        assert trial.user_attrs["choices"] == row["choices"]
        assert trial.user_attrs["params_added"] == row["params_added"]  # the supernet counts as the rewrite does
        assert ("uniform" in trial.user_attrs) == (row["label"] is not None)
    for trial in study.best_trials:  # the usual work loop: Pareto trials keep their weights
        assert Path(trial.user_attrs["checkpoint"]).is_file()


def test_a_resumed_study_neither_retrains_nor_rescores(finished, monkeypatch):
    tmp_path, study = finished
    monkeypatch.setattr(oneshot, "score_space", lambda context: pytest.fail("scored again"))
    resumed = run_search(tiny(tmp_path), TaskProblem)
    assert len(resumed.trials) == len(study.trials)


def test_the_supernet_is_scored_under_the_study_lock_and_the_stored_scores_are_read_inside_it(finished, monkeypatch):
    """Two machines starting one study: the second waits on the lock, then finds the first one's scores."""
    tmp_path, study = finished
    held = []

    class Recording:
        def __enter__(self):
            held.append(True)

        def __exit__(self, *exc):
            held.append(False)

    def score(context):
        assert held == [True], "scored outside the study lock"
        return StudyRecord.of(study)[ONESHOT]

    monkeypatch.setattr(oneshot, "study_lock", lambda storage, name: Recording())
    monkeypatch.setattr(oneshot, "score_space", score)
    run_search(tiny(tmp_path, study="tiny-oneshot-locked", trials=1), TaskProblem)
    assert held == [True, False]


def test_saved_supernet_weights_are_loaded_not_retrained(finished, monkeypatch, caplog):
    tmp_path, _ = finished
    from indexnas.surgery.supernet import Supernet

    monkeypatch.setattr(Supernet, "sample_paths", lambda self, draw: pytest.fail("supernet trained again"))
    with caplog.at_level(logging.INFO, logger="indexnas.search"):  # a new study in the same --out: scores again
        study = run_search(tiny(tmp_path, study="tiny-oneshot-2", trials=1), TaskProblem)
    assert "supernet weights loaded" in caplog.text
    assert StudyRecord.of(study)[ONESHOT]["steps"] == 8


def test_a_trials_study_cannot_be_resumed_as_oneshot(finished):
    tmp_path, _ = finished
    with pytest.raises(UserError, match="strategy"):
        run_search(tiny(tmp_path, strategy="trials"), TaskProblem)


def test_the_front_is_thinned_evenly_to_the_trials_keeping_both_ends():
    assert oneshot.spread([4, 7, 9], 5) == [4, 7, 9]
    assert oneshot.spread(list(range(10)), 4) == [0, 3, 6, 9]
    assert oneshot.spread(list(range(10)), 1) == [0]


def test_the_command_line_takes_the_strategy_and_bad_values_are_clear_errors(tmp_path):
    args = build_parser().parse_args(["search", "--task", "denoise", "--model", "dncnn", "--strategy", "oneshot",
                                      "--oneshot-steps", "30", "--oneshot-candidates", "12"])
    assert (args.strategy, args.oneshot_steps, args.oneshot_candidates) == ("oneshot", 30, 12)
    assert tiny(tmp_path, oneshot_steps=None, budget_steps=7).supernet_steps == 28
    with pytest.raises(UserError, match="unknown strategy"):
        tiny(tmp_path, strategy="zeroshot")
    with pytest.raises(UserError, match="--oneshot-steps"):
        tiny(tmp_path, oneshot_steps=0)
    with pytest.raises(UserError, match="--oneshot-candidates"):
        tiny(tmp_path, oneshot_candidates=-1)


@pytest.mark.slow
def test_the_ranking_benchmark_runs_in_its_quick_form(tmp_path):
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    import bench_oneshot

    markdown = tmp_path / "oneshot.md"
    assert bench_oneshot.main(["--quick", "--threads", "1", "--out", str(tmp_path / "run"),
                               "--markdown", str(markdown)]) == 0
    text = markdown.read_text()
    assert "| all | 5 |" in text and "Kendall tau" in text and "The supernet's favourite" in text
    assert text.count("| mixed: ") == 2


def test_a_supernet_that_fails_to_train_is_one_error_line(tmp_path):
    from types import SimpleNamespace

    from indexnas.search.space import SearchSpace
    from indexnas.surgery.loading import load_model

    class Diverges:
        def train(self, model, budget):
            raise RuntimeError("training diverged: loss nan at step 3")

    model, example = load_model(MODEL, None, {})
    context = SimpleNamespace(settings=tiny(tmp_path), problem=Diverges(), space=SearchSpace(model, example))
    with pytest.raises(UserError, match="supernet failed: RuntimeError: training diverged") as raised:
        oneshot.trained_supernet(context)
    assert "--strategy trials" in raised.value.fix
    assert not (tmp_path / "run" / oneshot.SUPERNET_FILE).exists()
