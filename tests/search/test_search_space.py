"""The search space, the canonical form of a configuration, the objectives and the score's standard error."""

from __future__ import annotations


import optuna
import pytest
import torch

from indexnas.errors import UserError
from indexnas.spec import IndexSpec, paper_variants
from indexnas.search import objectives, scoring
from indexnas.search import pair_space
from indexnas.search.canonical import canonical_choices, configuration_key
from indexnas.search.space import SearchSpace
from indexnas.surgery.loading import load_model
from indexnas.tasks.problem import TaskProblem
from paths import ASSETS

MODEL = f"{ASSETS / 'two_stage_denoiser.py'}:build"


@pytest.fixture(scope="module")
def host():
    model, example = load_model(MODEL)
    space = SearchSpace(model, example, "pool")
    return model, space, space.rewritable_pairs, space.spaces


def test_each_pair_is_one_categorical_over_its_full_choices(host):
    *_, spaces = host
    for space in spaces:
        assert space.choices[:4] == ("keep", "max", "hmi", "avg")
        assert {"holistic", "holistic-nl-c", "m2o-c", "o2o-shared-nl", "o2o-modelwise"} <= set(space.choices)
        assert not any(choice.startswith("o2o-modelwise-") for choice in space.choices)  # a model-level parameter
        assert len(space.modelwise) == 4


def test_suggest_asks_one_parameter_per_pair_and_the_modelwise_variant_only_when_used():
    spaces = [pair_space.PairSpace.from_allowed(n, ["m2o-nl", "o2o-modelwise", "o2o-modelwise-nl"]) for n in "ab"]
    trial = optuna.trial.FixedTrial({"a": "m2o-nl", "b": "o2o-modelwise", "modelwise": "o2o-modelwise-nl"})
    assert pair_space.suggest_choices(trial, spaces) == {"a": IndexSpec("m2o", True), "b": IndexSpec("o2o-modelwise", True)}
    plain = optuna.trial.FixedTrial({"a": "keep", "b": "m2o-nl"})
    assert pair_space.suggest_choices(plain, spaces) == {"a": IndexSpec("keep"), "b": IndexSpec("m2o", True)}


def test_params_for_reproduces_every_paper_configuration_and_refuses_what_the_space_lacks(host):
    *_, spaces = host
    for spec in [IndexSpec("keep"), *paper_variants()]:
        params = pair_space.params_for(pair_space.uniform(spaces, spec), spaces)
        assert pair_space.suggest_choices(optuna.trial.FixedTrial(params), spaces) == pair_space.uniform(spaces, spec)
    names = [s.name for s in spaces]
    assert pair_space.params_for({names[0]: "o2o-modelwise", names[1]: "o2o-modelwise-nl"}, spaces) is None
    assert pair_space.params_for({"no-such-pair": "keep"}, spaces) is None


def test_max_on_a_max_pooling_pair_is_the_host_and_builds_the_same_function(host):
    model, space, pairs, spaces = host
    names = [p["name"] for p in pairs]
    assert all(p["down_kinds"] == ["maxpool"] and p["up_kind"] == "unpool" for p in pairs)
    assert canonical_choices({n: "max" for n in names}, pairs) == {n: "keep" for n in names}
    assert configuration_key({n: "max" for n in names}, pairs) == configuration_key({n: "keep" for n in names}, pairs)
    rewritten = space.rewrite({n: IndexSpec("max") for n in names})
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(rewritten.model(x), model(x), atol=1e-6) and rewritten.params_added == 0


def test_max_is_not_the_host_where_the_host_upsamples_otherwise():
    pair = {"name": "p", "downs": ["p"], "down_kinds": ["maxpool"], "up_kind": "interpolate"}
    assert canonical_choices({"p": "max"}, [pair]) == {"p": "max"}


def test_modelwise_at_a_single_pair_is_o2o_shared_with_the_same_parameters(host):
    _, space, pairs, _ = host
    first, second = (p["name"] for p in pairs)
    lone = {first: IndexSpec("o2o-modelwise", True, True), second: IndexSpec("keep")}
    assert canonical_choices(lone, pairs) == {first: "o2o-shared-nl-c", second: "keep"}
    shared = {first: IndexSpec("o2o-shared", True, True), second: IndexSpec("keep")}
    assert configuration_key(lone, pairs) == configuration_key(shared, pairs)
    costs = [space.rewrite(c).params_added for c in (lone, shared)]
    assert costs[0] == costs[1] > 0
    both = {first: IndexSpec("o2o-modelwise"), second: IndexSpec("o2o-modelwise")}
    assert canonical_choices(both, pairs) == {first: "o2o-modelwise", second: "o2o-modelwise"}  # really shared


def test_objectives_default_to_metric_and_params_and_take_gflops_on_request():
    psnr = {"psnr": "maximize"}
    assert objectives.parse(objectives.DEFAULT) == ("metric", "params")
    names = objectives.parse("metric, params, gflops")
    assert objectives.stored_names(names, psnr) == ["psnr", "params_added", "gflops"]
    assert objectives.directions(names, psnr) == ["maximize", "minimize", "minimize"]
    assert objectives.values(names, psnr, {"psnr": 25.0, "ssim": 0.7}, {"params_added": 16, "gflops": 1.5}) == (25.0, 16.0, 1.5)
    two = {"accuracy": "maximize", "loss": "minimize"}  # an API user's metrics all come first
    assert objectives.stored_names(objectives.parse("metric,gflops"), two) == ["accuracy", "loss", "gflops"]
    assert objectives.directions(objectives.parse("metric,gflops"), two) == ["maximize", "minimize", "minimize"]


@pytest.mark.parametrize("text", ["", "metric,latency", "params,metric", "metric,params,params"])
def test_bad_objectives_are_user_errors(text):
    with pytest.raises(UserError, match="objective"):
        objectives.parse(text)


def test_standard_errors_alone_and_paired():
    assert scoring.standard_error([1.0, 3.0]) == pytest.approx(1.0)
    assert scoring.paired_standard_error([2.0, 4.0, 6.5], [1.0, 3.0, 5.5]) == 0.0  # a constant gap is exact
    assert scoring.paired_standard_error([1.0], [1.0, 2.0]) != scoring.paired_standard_error([1.0], [1.0, 2.0])  # NaN
    assert {scoring.trial_seed(0, n) for n in range(5)} == {1, 2, 3, 4, 5}  # none is the warm start's seed 0


def test_a_study_takes_gflops_as_a_third_objective_on_request(tmp_path):
    from conftest import tiny_settings
    from indexnas.search.settings import SearchSettings
    from indexnas.search.run import run_search

    with pytest.raises(UserError, match="objective"):
        SearchSettings(**tiny_settings(tmp_path, objectives="metric,latency"))
    study = run_search(SearchSettings(**tiny_settings(tmp_path, trials=1, objectives="metric,params,gflops")), TaskProblem)
    assert study.user_attrs["indexnas"]["objectives"] == ["psnr", "params_added", "gflops"]
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE", "MINIMIZE"]
    assert study.trials[0].values[2] == study.trials[0].user_attrs["gflops"] > 0
