"""The sampler registry (search/samplers.py): the CLI's choices are its names, each says why, each builds."""

import optuna
import pytest

from indexnas.errors import UserError
from indexnas.search.frontier import FrontierSampler
from indexnas.search.samplers import REGISTRY, make_sampler
from indexnas.search.settings import SAMPLERS, SearchSettings

BUILT = {"tpe": optuna.samplers.TPESampler, "nsga2": optuna.samplers.NSGAIISampler,
         "random": optuna.samplers.RandomSampler}


def settings(sampler: str) -> SearchSettings:
    return SearchSettings(task="denoise", model="m", study="s", storage="s.log", out="o", sampler=sampler)


def test_the_settings_offer_exactly_the_registry_names_in_its_order():
    assert SAMPLERS == tuple(REGISTRY) == ("tpe", "nsga2", "random", "frontier")


def test_every_entry_says_why_it_is_offered():
    assert all(len(entry.why) > 20 for entry in REGISTRY.values())


@pytest.mark.parametrize("name", list(BUILT))
def test_each_optuna_sampler_is_built_by_its_entry(name):
    assert type(make_sampler(settings(name), seed_offset=3)) is BUILT[name]


def test_the_frontier_sampler_needs_the_analysed_host():
    assert issubclass(FrontierSampler, optuna.samplers.BaseSampler)
    with pytest.raises(ValueError, match="analysed host"):
        make_sampler(settings("frontier"))


def test_an_unknown_sampler_lists_the_valid_names():
    unknown = settings("tpe")
    unknown.sampler = "cmaes"
    with pytest.raises(UserError) as error:
        make_sampler(unknown)
    assert "cmaes" in str(error.value) and "tpe, nsga2, random, frontier" in str(error.value)
