"""The cost-aware sampler (search/frontier.py): exact costs, the additive model, the hypervolume gain, the choice."""

import random

import numpy as np
import optuna
import pytest
import torch
from optuna.trial import TrialState

from indexnas import zoo
from indexnas.cli import build_parser
from indexnas.errors import UserError
from indexnas.reports.pareto import hypervolume_2d
from indexnas.search import pair_space
from indexnas.search.canonical import configuration_key
from indexnas.search.frontier import (
    AdditiveModel, FrontierSampler, candidates, hypervolume_gain, neighbours, space_size,
)
from indexnas.search.settings import SearchSettings
from indexnas.search.run import run_search
from indexnas.search.space import SearchSpace
from indexnas.spec import KEEP
from indexnas.tasks.problem import TaskProblem
from conftest import tiny_settings


@pytest.fixture(scope="module")
def demo_space() -> SearchSpace:
    """The demo's host (dncnn_segnet, width 0.25): three max pool / max unpool pairs, ~13,000 configurations."""
    torch.manual_seed(0)
    return SearchSpace(zoo.create_model("dncnn_segnet", width=0.25), torch.randn(1, 1, 64, 64), "pool")


@pytest.fixture(scope="module")
def sampler(demo_space) -> FrontierSampler:
    return FrontierSampler(demo_space, seed=0)


# --- costs ------------------------------------------------------------------------------------------------


def test_summed_pair_costs_equal_the_rewrite_s_parameter_count(demo_space, sampler):
    rng = random.Random(0)
    pool = list(sampler.pool.values())
    shared = [c for c in pool if sum(v.startswith("o2o-modelwise") for v in c.choices.values()) >= 2]
    for candidate in rng.sample(pool, 6) + rng.sample(shared, 3):  # the shared module counts once
        assert sampler.costs(candidate.choices) == demo_space.rewrite(candidate.choices).params_added


def test_the_paper_s_cheapest_row_costs_what_the_grid_measured(sampler):
    names = [s.name for s in sampler.spaces]
    assert sampler.costs({n: "o2o-modelwise" for n in names}) == 16  # one 4x4 kernel pair for the whole model
    assert sampler.costs({n: "o2o-shared" for n in names}) == 48  # one per pair
    assert sampler.costs({n: "hmi" for n in names}) == 0


# --- the candidates ---------------------------------------------------------------------------------------


def test_a_small_space_is_enumerated_whole_and_aliases_collapse(demo_space, sampler):
    everything = candidates(demo_space.spaces, random.Random(0))
    assert len(everything) == space_size(demo_space.spaces) == 20 ** 3 + 4 * (21 ** 3 - 20 ** 3)
    keys = {configuration_key(c, demo_space.rewritable_pairs) for c in everything}
    assert len(sampler.pool) == len(keys) < len(everything)  # max at a max-pooling pair is keep, and so on


def test_neighbours_change_exactly_one_pair(demo_space):
    start = {s.name: KEEP for s in demo_space.spaces}
    around = neighbours(start, demo_space.spaces)
    assert all(sum(a != b for a, b in zip(n.values(), start.values())) == 1 for n in around)
    assert len(around) == 3 * (20 + 4 - 1)  # per pair: every choice but keep, modelwise written out


# --- the hypervolume gain ---------------------------------------------------------------------------------


def test_the_gain_is_the_hypervolume_added_to_the_front():
    rng = np.random.default_rng(0)
    for _ in range(20):
        front = np.column_stack([rng.uniform(20, 27, 5), rng.uniform(0, 5, 5)])
        points = np.column_stack([rng.uniform(19, 28, 30), rng.uniform(0, 6, 30)])
        reference = (21.0, 6.0)
        directions = ("maximize", "minimize")
        before = hypervolume_2d(front, reference, directions)
        expected = [hypervolume_2d(np.vstack([front, p]), reference, directions) - before for p in points]
        np.testing.assert_allclose(hypervolume_gain(front, points, reference), expected, atol=1e-9)


def test_the_gain_over_an_empty_front_is_the_point_s_own_box():
    gain = hypervolume_gain(np.empty((0, 2)), np.array([[25.0, 1.0], [20.0, 0.0]]), (22.0, 5.0))
    np.testing.assert_allclose(gain, [3.0 * 4.0, 0.0])


# --- the additive model -----------------------------------------------------------------------------------


def test_the_additive_model_recovers_additive_effects_and_is_sure_only_where_it_has_seen(demo_space, sampler):
    model = AdditiveModel(demo_space.rewritable_pairs)
    pool = list(sampler.pool.values())
    rng = random.Random(1)
    learned = ["o2o-shared", "m2o", "holistic"]
    seen = [c.choices for c in pool if set(c.choices.values()) <= {KEEP, *learned}]
    effect = {KEEP: 0.0, "o2o-shared": 0.5, "m2o": 1.5, "holistic": 1.0}
    y = np.array([22.0 + sum(effect[v] for v in c.values()) for c in seen])
    x = model.matrix([model.columns(c) for c in seen])
    unseen = [c.choices for c in rng.sample(pool, 50) if "m2o-nl-c" in c.choices.values()]
    x_all = model.matrix([model.columns(c) for c in seen + unseen])
    posterior = model.fit(np.pad(x, ((0, 0), (0, x_all.shape[1] - x.shape[1]))), y, fallback_scale=1.0)
    mean, sd = posterior.predict(x_all)
    np.testing.assert_allclose(mean[: len(seen)], y, atol=0.05)
    assert sd[len(seen):].min() > 3 * sd[: len(seen)].max()


# --- the choice, on a synthetic problem ---------------------------------------------------------------------


def synthetic(sampler: FrontierSampler, seed: int):
    """An objective whose metric is additive with noise: parameter-free baselines help a little, learned
    families more the deeper the pair, the nonlinear and context variants more still."""
    rng = random.Random(seed)
    names = [s.name for s in sampler.spaces]
    base = {"max": 0.1, "avg": 0.2, "hmi": 0.3, "o2o-shared": 0.6, "o2o-modelwise": 0.5, "o2o-unshared": 0.7,
            "holistic": 0.9, "m2o": 1.2}

    def effect(pair: str, choice: str) -> float:
        if choice == KEEP:
            return 0.0
        family = next((f for f in sorted(base, key=len, reverse=True) if choice.startswith(f)), "max")
        return base[family] * (1 + 0.3 * names.index(pair)) + 0.2 * ("-nl" in choice) + 0.1 * ("-c" in choice)

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        choices = {n: str(s) for n, s in pair_space.suggest_choices(trial, sampler.spaces).items()}
        trial.set_user_attr("choices", choices)
        params = sampler.costs(choices)
        trial.set_user_attr("params_added", params)
        return 22.0 + sum(effect(n, c) for n, c in choices.items()) + rng.gauss(0, 0.1), params

    return objective


def hypervolume_after(sampler_obj: optuna.samplers.BaseSampler, frontier: FrontierSampler, seed: int,
                      trials: int) -> tuple[float, optuna.Study]:
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler_obj)
    study.enqueue_trial(pair_space.params_for({s.name: KEEP for s in frontier.spaces}, frontier.spaces))
    study.optimize(synthetic(frontier, seed), n_trials=trials)
    done = study.get_trials(states=(TrialState.COMPLETE,))
    points = np.array([[t.values[0], np.log10(1 + t.values[1])] for t in done])
    return hypervolume_2d(points, (22.0, 6.0), ("maximize", "minimize")), study


def test_with_few_trials_the_frontier_sampler_beats_random_and_tpe_on_an_additive_problem(sampler):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for seed in (0, 1):
        ours, study = hypervolume_after(sampler, sampler, seed, 10)
        chance, _ = hypervolume_after(optuna.samplers.RandomSampler(seed=seed), sampler, seed, 10)
        tpe, _ = hypervolume_after(optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True),
                                   sampler, seed, 10)
        assert ours > max(chance, tpe), (seed, ours, chance, tpe)
        keys = [configuration_key(t.user_attrs["choices"], sampler.pairs) for t in study.trials]
        assert len(set(keys)) == len(keys)  # never the same model twice


def test_the_choice_is_a_function_of_the_study_so_a_resume_picks_the_same(sampler, demo_space):
    _, study = hypervolume_after(sampler, sampler, 0, 4)
    again = FrontierSampler(demo_space, seed=0)
    direction = study.directions[0]
    assert again.next_configuration(study.trials, direction) == sampler.next_configuration(study.trials, direction)


def test_a_running_trial_s_configuration_is_not_picked_again(sampler):
    _, study = hypervolume_after(sampler, sampler, 0, 2)
    pick = sampler.next_configuration(study.trials, study.directions[0])
    running = study.ask()  # another worker's trial: the sampler gives it the pick, and it is still running
    asked = {n: str(s) for n, s in pair_space.suggest_choices(running, sampler.spaces).items()}
    assert asked == pick
    assert sampler.next_configuration(study.get_trials(), study.directions[0]) != pick


def test_over_the_parameter_budget_nothing_is_a_candidate(demo_space):
    capped = FrontierSampler(demo_space, seed=0, max_params=100)
    assert capped.pool and all(capped.costs(c.choices) <= 100 for c in capped.pool.values())


# --- through the search -----------------------------------------------------------------------------------


def test_a_study_with_the_frontier_sampler_trains_distinct_configurations(tmp_path):
    torch.set_num_threads(1)
    study = run_search(SearchSettings(**tiny_settings(tmp_path, sampler="frontier", trials=4, paper_grid=False)), TaskProblem)
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 4
    keys = [t.user_attrs["canonical"] for t in done]
    assert len(set(keys)) == 4


def test_the_command_line_takes_the_frontier_sampler_and_a_typo_lists_the_samplers(tmp_path):
    args = build_parser().parse_args(["search", "--task", "denoise", "--model", "dncnn", "--sampler", "frontier"])
    assert args.sampler == "frontier"
    with pytest.raises(UserError, match="frontier"):
        SearchSettings(**tiny_settings(tmp_path, sampler="frontiers"))
