"""The search settings are declared once (search/settings.py): the CLI's options, `indexnas.search()`'s keywords,
the resume check's identity and the checks all come from the declaration, and agree with it."""

from __future__ import annotations

import argparse
import dataclasses
import inspect

import pytest

from indexnas.api import search
from indexnas.cli import build_parser
from indexnas.errors import UserError
from indexnas.search.cli import register, settings_from_args
from indexnas.search.settings import (
    AS_FIELD, DEFAULT_STORAGE, IDENTITY_FIELDS, SearchSettings, api_defaults, declaration, field_default, flag,
)

FIELDS = dataclasses.fields(SearchSettings)
REQUIRED = dict(task="denoise", model="dncnn", study="s", storage="s.log", out="run")
API_OWN = ("model", "example_input", "train", "evaluate", "directions", "report", "name")  # not settings


def search_parser() -> argparse.ArgumentParser:
    subparsers = argparse.ArgumentParser().add_subparsers()
    register(subparsers)
    return subparsers.choices["search"]


def test_every_setting_is_an_option_of_the_cli_or_declared_not_to_be():
    options = {s for action in search_parser()._actions for s in action.option_strings}
    declared = {flag(f) for f in FIELDS if declaration(f).cli}
    assert declared <= options
    assert options - declared == {"-h", "--help", "--no-report"}  # the rest is not a setting
    assert {f.name for f in FIELDS if not declaration(f).cli} == {
        "host_fingerprint", "flops_size", "eval_size", "heartbeat_interval", "grace_period"}


def test_the_cli_offers_the_declared_choices_and_flags():
    by_dest = {a.dest: a for a in search_parser()._actions}
    for field in FIELDS:
        setting = declaration(field)
        if setting.cli and setting.choices:
            assert tuple(by_dest[field.name].choices) == setting.choices
    assert by_dest["paper_grid"].option_strings == ["--no-paper-grid"]
    assert by_dest["progress"].option_strings == ["--quiet"]
    assert by_dest["task"].required and by_dest["model"].required


def test_the_clis_defaults_are_the_dataclasss():
    args = build_parser().parse_args(["search", "--task", "denoise", "--model", "dncnn"])
    settings = settings_from_args(args)
    defaults = SearchSettings(**REQUIRED)
    named = {"task", "model", "study", "storage", "out"}
    assert {name: value for name, value in settings.to_dict().items() if name not in named} == {
        name: value for name, value in defaults.to_dict().items() if name not in named}
    assert (settings.study, settings.storage, settings.out) == ("denoise-dncnn-pool", DEFAULT_STORAGE,
                                                               "runs/denoise-dncnn-pool")


def test_every_option_reaches_its_setting():
    argv = ["search", "--task", "segment", "--model", "smp:Unet:resnet18", "--model-arg", "classes=6",
            "--trials", "3", "--budget-steps", "10", "--budget-seconds", "2.5", "--storage", "a.log", "--workers",
            "2", "--mode", "stride", "--width", "0.5", "--data", "d", "--max-params", "100", "--max-gflops", "2",
            "--objectives", "metric,params,gflops", "--sampler", "tpe", "--strategy", "oneshot", "--oneshot-steps",
            "7", "--oneshot-candidates", "3", "--no-paper-grid", "--no-warm-start", "--seed", "4", "--batch-size",
            "2", "--lr", "0.1", "--sigma", "15", "--patch", "32", "--prune", "halving", "--rungs", "0.5,0.25",
            "--reduction-factor", "3", "--retrain-seeds", "0", "--quiet"]
    settings = settings_from_args(build_parser().parse_args(argv))
    assert settings.to_dict() == {**SearchSettings(**REQUIRED).to_dict(), **dict(
        task="segment", model="smp:Unet:resnet18", study="segment-smp_Unet_resnet18-stride-oneshot",
        storage="a.log", out="runs/segment-smp_Unet_resnet18-stride-oneshot", model_args={"classes": 6}, trials=3,
        budget_steps=10, budget_seconds=2.5, workers=2, mode="stride", width=0.5, data="d", max_params=100.0,
        max_gflops=2.0, objectives="metric,params,gflops", sampler="tpe", strategy="oneshot", oneshot_steps=7,
        oneshot_candidates=3, paper_grid=False, warm_start=False, seed=4, batch_size=2, lr=0.1, sigma=15.0,
        patch=32, prune="halving", rungs=(0.25, 0.5), reduction_factor=3, retrain_seeds=0, progress=False)}
    assert build_parser().parse_args(["search", "--task", "t", "--model", "m", "--no-report"]).report is False


def test_the_api_signature_is_the_declaration():
    parameters = inspect.signature(search).parameters
    declared = {name: parameters[name].default for name in parameters if name not in API_OWN}
    assert declared == api_defaults()
    assert set(declared) == {f.name for f in FIELDS if declaration(f).api}
    assert all(parameters[name].kind == inspect.Parameter.KEYWORD_ONLY for name in declared)
    for field in FIELDS:  # the keyword's default is the field's unless declared otherwise
        if declaration(field).api and declaration(field).api_default is AS_FIELD:
            assert declared[field.name] == field_default(field)
    assert declared["progress"] is False and declared["storage"] == DEFAULT_STORAGE  # the declared exceptions
    assert parameters["out"].annotation == "str | None" and parameters["trials"].annotation == "int"


def test_the_api_refuses_a_keyword_it_does_not_declare():
    with pytest.raises(TypeError, match="unexpected keyword argument 'strategy'"):
        search(None, None, train=None, evaluate=None, directions={}, strategy="oneshot")


def test_the_identity_is_the_declared_fields():
    declared = {f.name for f in FIELDS if declaration(f).identity}
    assert set(IDENTITY_FIELDS) == declared == set(SearchSettings(**REQUIRED).identity())
    assert declared == {"task", "model", "model_args", "host_fingerprint", "mode", "width", "budget_steps",
                        "budget_seconds", "data", "sigma", "patch", "batch_size", "lr", "seed", "max_params",
                        "max_gflops", "flops_size", "objectives", "strategy", "oneshot_steps", "oneshot_candidates"}
    stored = SearchSettings.stored_identity({"task": "denoise", "model": "dncnn"})  # the rest: the defaults
    assert stored == {**SearchSettings(**REQUIRED).identity(), "task": "denoise", "model": "dncnn"}


@pytest.mark.parametrize(("bad", "message"), [
    (dict(trials=0), "--trials must be a positive integer, got 0"),
    (dict(patch=1.5), "--patch must be a positive integer, got 1.5"),
    (dict(flops_size=0), "--flops-size must be a positive integer, got 0"),
    (dict(mode="x"), "unknown surgery mode 'x'\n  fix: use one of: pool, stride, decoder"),
    (dict(sampler="x"), "unknown sampler 'x'\n  fix: use one of: tpe, nsga2, random, frontier"),
    (dict(width=0), "--width must be positive, got 0"),
    (dict(max_gflops=-1.0), "--max-gflops must be positive, got -1.0"),
    (dict(lr=0), "--lr and --sigma must be positive"),
    (dict(sigma=float("nan")), "--lr and --sigma must be positive"),
    (dict(heartbeat_interval=70), "the heartbeat interval (70 s) must be positive and shorter than the grace "
                                  "period (60.0 s)\n  fix: e.g. heartbeat_interval=10, grace_period=60"),
    (dict(study="a/b"), "invalid study name 'a/b'\n  fix: use letters, digits, '-', '_' and '.'"),
    (dict(seed=True), "--seed must be an integer from 0 to 2147483647, got True\n  fix: pass e.g. --seed 0"),
    (dict(model_args={"a": object()}), "model arguments must be numbers, strings, lists or dicts"),
])
def test_each_setting_is_checked_with_its_message(bad, message):
    with pytest.raises(UserError) as error:
        SearchSettings(**{**REQUIRED, **bad})
    assert str(error.value).startswith(message)


def test_checks_store_values_as_the_study_reads_them_back():
    settings = SearchSettings(**{**REQUIRED, "model_args": {"sizes": (1, 2)}, "rungs": "0.5,0.25"})
    assert settings.model_args == {"sizes": [1, 2]} and settings.rungs == (0.25, 0.5)
    assert field_default(next(f for f in FIELDS if f.name == "model_args")) == {}
