"""A study trains each distinct model once, with its own seed, and stores the score's standard errors."""

from __future__ import annotations

import optuna
import pytest
import torch
from optuna.trial import TrialState

from indexnas.search.settings import SearchSettings
from indexnas.search.storage import open_storage
from indexnas.search.run import run_search
from indexnas.search.summary import print_summary
from indexnas.tasks.problem import TaskProblem

from conftest import tiny_settings


@pytest.fixture(scope="module")
def repeated(tmp_path_factory):
    """The host and holistic (the grid's first two), then `max` everywhere (the host again) and holistic again."""
    tmp_path = tmp_path_factory.mktemp("cache")
    torch.set_num_threads(1)
    settings = SearchSettings(**tiny_settings(tmp_path, trials=4, paper_grid=False))
    queued = optuna.create_study(study_name=settings.study, storage=open_storage(settings.storage),
                                 directions=["maximize", "minimize"])
    for choice in ("keep", "holistic", "max", "holistic"):
        queued.enqueue_trial({"pool1": choice, "pool2": choice})
    return settings, run_search(settings, TaskProblem)


def test_a_repeat_or_an_alias_is_answered_from_the_stored_result_without_training(repeated):
    _, study = repeated
    host, holistic, alias, again = study.trials
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4
    assert alias.user_attrs["duplicate_of"] == host.number and alias.values == host.values
    assert again.user_attrs["duplicate_of"] == holistic.number and again.values == holistic.values
    assert alias.user_attrs["metrics"] == host.user_attrs["metrics"] and alias.user_attrs["train_seconds"] == 0
    assert "checkpoint" not in alias.user_attrs and "duplicate_of" not in holistic.user_attrs
    assert alias.user_attrs["canonical"] == host.user_attrs["canonical"]


def test_the_summary_counts_repeats_and_lists_each_model_once(repeated, capsys):
    settings, study = repeated
    print_summary(study, settings, 1.0, None)
    out = capsys.readouterr().out
    assert "4 completed (2 trained in full, 2 repeats answered from the cache, not trained)" in out
    assert out.count(" host") == 1


def test_every_trial_trains_with_its_own_seed_recorded(repeated):
    _, study = repeated
    host, holistic = study.trials[:2]
    assert study.user_attrs["indexnas"]["seed"] == 0
    assert (host.user_attrs["seed"], holistic.user_attrs["seed"]) == (1, 2)


def test_trials_store_per_item_scores_whole_image_metrics_and_standard_errors(repeated):
    _, study = repeated
    warm = study.user_attrs["indexnas"]["host"]
    assert list(warm["item_scores"]) == ["crops", "whole"] and len(warm["item_scores"]["crops"]) == 240
    for trial in study.trials[:2]:
        attrs = trial.user_attrs
        assert {"psnr", "whole_psnr", "whole_ssim"} <= set(attrs["metrics"])
        assert len(attrs["item_scores"]["crops"]) == 240 and len(attrs["item_scores"]["whole"]) == 3
        assert 0 < attrs["score_se_vs_host"] < attrs["score_se"]  # pairing with the host cancels the items' spread
