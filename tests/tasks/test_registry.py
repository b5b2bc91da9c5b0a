"""tasks/registry.py: every built-in task has every part, lookups list the valid names, and the light names
(the CLI's `--task` help) and the zoo's tasks are the registry's."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch
from torch.utils.data import default_collate

from indexnas import zoo
from indexnas.cli import main
from indexnas.errors import UserError
from indexnas.search.settings import SearchSettings
from indexnas.tasks.definitions import Task
from indexnas.tasks.registry import (REGISTRY, builtin_dataset, dataset_options, folder_dataset, get_task,
                                     task_entry)

NAMES = "denoise, segment, matting, depth"


def test_the_registry_pins_names_metrics_directions_and_channels() -> None:
    table = {name: (e.task.primary_metric, e.task.direction, e.task.in_channels) for name, e in REGISTRY.items()}
    assert table == {
        "denoise": ("psnr", "maximize", 1),
        "segment": ("miou", "maximize", 3),
        "matting": ("sad", "minimize", 4),
        "depth": ("rmse", "minimize", 3),
    }
    assert {name: entry.metric_directions for name, entry in REGISTRY.items()} == {
        "denoise": {"psnr": "maximize", "ssim": "maximize"},
        "segment": {"miou": "maximize", "pixel_accuracy": "maximize"},
        "matting": {"sad": "minimize", "mse": "minimize", "grad": "minimize", "conn": "minimize"},
        "depth": {"rmse": "minimize", "mae": "minimize", "delta1": "maximize"},
    }
    assert get_task("depth") is REGISTRY["depth"].task
    assert get_task("matting", alpha_from="clamp").alpha_from == "clamp"
    with pytest.raises(UserError, match="alpha_from"):
        get_task("matting", alpha_from="tanh")
    with pytest.raises(UserError, match="has no option sigma"):
        get_task("denoise", sigma=25)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_task_has_every_part(name) -> None:
    entry = REGISTRY[name]
    assert entry.name == name and isinstance(entry.task, Task)
    assert list(inspect.signature(entry.folder).parameters)[0] == "root"
    assert "seed" in inspect.signature(entry.builtin).parameters
    assert entry.layout.startswith("ROOT/") and entry.outputs
    assert entry.metric_directions and set(entry.metric_directions.values()) <= {"maximize", "minimize"}
    settings = {field.name for field in dataclasses.fields(SearchSettings)}
    for setting in entry.data_settings:  # handed to both builders by tasks/problem.py
        assert setting in settings and setting in dataset_options(name) and setting in dataset_options(name, "folder")
    assert entry.zoo_models() and all(zoo.model_task(model) == name for model in entry.zoo_models())


@pytest.mark.parametrize("name", list(REGISTRY))
def test_a_task_scores_exactly_its_declared_metrics_in_order(name) -> None:
    task = REGISTRY[name].task
    train, val = builtin_dataset(name, val_count=1, patch=32, eval_size=32)
    batch = default_collate([val[0]])
    output = torch.ones(1, task.out_channels(train), *task.model_inputs(batch).shape[-2:])
    assert list(task.metrics(output, batch)) == list(task.metric_directions)


def test_unknown_names_get_one_error_listing_the_valid_ones(tmp_path) -> None:
    for lookup in (task_entry, get_task, builtin_dataset, dataset_options, lambda n: folder_dataset(n, tmp_path)):
        with pytest.raises(UserError, match=f"unknown task 'classify'(.|\n)*use one of: {NAMES}"):
            lookup("classify")


def test_the_search_help_and_the_zoo_tasks_are_the_registry_s(capsys) -> None:
    """search/settings.py spells the task names in --task's help (search imports nothing from tasks)."""
    assert {zoo.model_task(model) for model in zoo.list_models()} <= set(REGISTRY)
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    assert " | ".join(REGISTRY) in " ".join(capsys.readouterr().out.split())
