"""A tiny study end to end on CPU: stored trials, their recipes, budgets, the Pareto set, resuming."""

import logging
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from indexnas.errors import UserError
from indexnas.search.settings import SearchSettings
from indexnas.search.storage import open_storage
from indexnas.search.checkpoints import checkpoint_path
from indexnas.search.run import report_queue, run_search
from indexnas.search.summary import Progress
from indexnas.surgery import recipe as recipes
from indexnas.surgery.loading import load_model
from indexnas.tasks.problem import TaskProblem
from index_params import model_delta
from paths import ASSETS

MODEL = f"{ASSETS / 'two_stage_denoiser.py'}:build"
PAIRS = {"pool1", "pool2"}


def tiny(tmp_path: Path, **overrides) -> SearchSettings:
    options = dict(task="denoise", model=MODEL, study="tiny", storage=str(tmp_path / "studies.log"),
                   out=str(tmp_path / "run"), trials=4, budget_steps=2, batch_size=4, eval_size=32,
                   progress=False, seed=0,
                   retrain_seeds=0)  # retraining the front has its own tests (test_retrain.py)
    return SearchSettings(**{**options, **overrides})


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("study")
    torch.set_num_threads(1)
    return tmp_path, run_search(tiny(tmp_path), TaskProblem)


def test_the_study_holds_exactly_the_requested_completed_trials(finished):
    _, study = finished
    states = [t.state for t in study.trials]
    assert states.count(TrialState.COMPLETE) == 4
    assert study.user_attrs["indexnas"]["objectives"] == ["psnr", "params_added"]  # GFLOPs: a budget by default
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]


def test_the_paper_grid_comes_first_host_then_uniform_configurations(finished):
    _, study = finished
    first = [t.user_attrs.get("uniform") for t in study.trials[:4]]
    assert first == ["host", "holistic", "holistic-nl", "holistic-nl-c"]
    host = study.trials[0]
    assert host.values[1] == 0 and set(host.user_attrs["choices"].values()) == {"keep"}


def test_every_trial_stores_choices_recipe_metrics_costs_and_timing(finished):
    _, study = finished
    pair_names = {p["name"] for p in study.user_attrs["indexnas"]["pairs"]}
    assert pair_names == PAIRS
    for trial in study.get_trials(states=(TrialState.COMPLETE,)):
        attrs = trial.user_attrs
        assert set(attrs["choices"]) == PAIRS
        assert attrs["recipe"]["choices"] == attrs["choices"]
        assert {"psnr", "ssim"} <= set(attrs["metrics"])
        assert trial.values[0] == attrs["metrics"]["psnr"]
        assert attrs["params_added"] == trial.values[1] and attrs["gflops"] > 0
        assert attrs["train_seconds"] > 0 and attrs["latency_ms"] > 0 and attrs["steps"] == 2


def test_holistic_params_added_match_the_spec_formula(finished):
    _, study = finished
    holistic = next(t for t in study.trials if t.user_attrs.get("uniform") == "holistic")
    assert holistic.values[1] == model_delta("holistic", (8, 8))  # two stages of 8 channels


def test_pareto_trials_keep_their_weights_and_they_replay_onto_a_fresh_model(finished):
    tmp_path, study = finished
    out = tmp_path / "run"
    pareto = {t.number for t in study.best_trials}
    assert pareto
    for trial in study.get_trials(states=(TrialState.COMPLETE,)):
        assert checkpoint_path(out, trial.number).exists() == (trial.number in pareto)
    best = study.best_trials[0]
    saved = torch.load(checkpoint_path(out, best.number), map_location="cpu", weights_only=True)
    model, example = load_model(MODEL)
    replayed, _ = recipes.replay(saved["recipe"], model, example, flops=False)
    replayed.load_state_dict(saved["state_dict"])


def test_restarting_resumes_the_study_instead_of_starting_over(finished, tmp_path):
    done_path, study = finished
    settings = tiny(done_path, trials=5)
    resumed = run_search(settings, TaskProblem)
    assert len([t for t in resumed.trials if t.state == TrialState.COMPLETE]) == 5
    assert [t.number for t in resumed.trials[:4]] == [t.number for t in study.trials[:4]]


def test_resuming_with_other_settings_is_refused(finished):
    done_path, _ = finished
    with pytest.raises(UserError, match="budget_steps"):
        run_search(tiny(done_path, budget_steps=3), TaskProblem)


def test_configurations_over_the_parameter_budget_are_pruned_without_training(tmp_path):
    torch.set_num_threads(1)
    study = run_search(tiny(tmp_path, trials=2, max_params=100, study="budget", warm_start=False), TaskProblem)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    # the grid's holistic variants add 256, 1,216 and 4,288 parameters; the next one (m2o, 16) fits
    assert [t.user_attrs["params_added"] for t in pruned] == [256, 1216, 4288]
    for trial in pruned:
        assert trial.user_attrs["failure"]["kind"] == "over_budget"
        assert "train_seconds" not in trial.user_attrs and "checkpoint" not in trial.user_attrs
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 2 and all(t.user_attrs["params_added"] <= 100 for t in complete)


def test_an_unknown_storage_scheme_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="unknown scheme"):
        open_storage("mongodb://user:secret@host/db")
    try:
        open_storage("mongodb://user:secret@host/db")
    except UserError as error:
        assert "secret" not in str(error)


def test_the_study_line_says_trials_complete_best_so_far_elapsed_and_eta():
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    study.set_user_attr("indexnas", {"primary_metric": "psnr", "direction": "maximize"})
    progress = Progress(study, wanted=4)
    for psnr in (20.5, 21.25):
        study.add_trial(optuna.trial.create_trial(values=[psnr, 0, 1.0]))
    line = progress.line()
    assert line.startswith("study: 2/4 trials complete, best psnr 21.25 (trial 1), elapsed ") and ", ETA " in line


def test_a_trial_count_below_the_grid_says_how_many_grid_configurations_stay_queued(caplog):
    study = optuna.create_study()
    for x in range(16):
        study.enqueue_trial({"x": x})
    with caplog.at_level(logging.INFO, logger="indexnas.search"):
        report_queue(study, wanted=4)
    assert "12 of the paper grid's queued configurations remain queued" in caplog.text


def test_a_stop_condition_ends_the_run_between_trials(tmp_path):
    asked = []

    def two_finished(study: optuna.Study) -> bool:
        finished = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
        asked.append(finished)
        return finished >= 2

    study = run_search(tiny(tmp_path, trials=6), TaskProblem, stop=two_finished)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.COMPLETE) == 2 and TrialState.RUNNING not in states  # of 6 requested
    assert asked == [0, 1, 2]  # asked before each trial would start, and not again once it said stop
    assert len(states) > 2 and states.count(TrialState.WAITING) == len(states) - 2  # the grid's rest stays queued
