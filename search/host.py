"""The study's host model: built to fit the task, analysed once, rewritten for each trial."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from indexnas.errors import UserError
from indexnas.spec import IndexSpec
from indexnas.search.settings import SearchSettings


def build_datasets(settings: SearchSettings) -> tuple[Any, Any]:
    """(train, val): the task's built-in offline data, or the user's folder in the standard layout."""
    from indexnas.search.data import builtin_dataset, folder_dataset

    options: dict[str, Any] = {"patch": settings.patch, "seed": settings.seed}
    if settings.task == "denoise":
        options["sigma"] = settings.sigma
    if settings.eval_size is not None:
        options["eval_size"] = settings.eval_size
    if settings.data:
        return folder_dataset(settings.task, settings.data, **options)
    return builtin_dataset(settings.task, **options)


def load_host(settings: SearchSettings, train_set: Any) -> tuple[nn.Module, torch.Tensor]:
    """The host with the task's input/output channels where the model takes them, and its example input.

    Zoo and timm hosts get an example input at ``flops_size`` (the paper counts GFLOPs at
    224 x 224); smp models and model files use their loader's (a factory may return its own).
    """
    from indexnas.search.tasks import get_task
    from indexnas.surgery.loading import load_model

    task = get_task(settings.task)
    torch.manual_seed(settings.seed)
    if ":" in settings.model and not settings.model.startswith("timm:"):  # smp:..., file.py:factory
        model, example = load_model(settings.model)
    else:
        from indexnas import zoo

        kwargs = _task_kwargs(settings.model, task, train_set)
        if settings.width is not None:
            kwargs["width"] = settings.width
        model = zoo.create_model(settings.model, **kwargs)
        example = zoo.example_input(settings.model, size=settings.flops_size)
    if not isinstance(example, torch.Tensor) or example.dim() != 4 or example.shape[1] != task.in_channels:
        shape = tuple(example.shape) if isinstance(example, torch.Tensor) else type(example).__name__
        raise UserError(f"{settings.model} takes input {shape} but the {settings.task} task feeds "
                        f"(batch, {task.in_channels}, height, width) images",
                        f"pick a model for {settings.task} (e.g. {_suggest(settings.task)}); a model file's factory "
                        "can return (model, example_input) to say what it takes")
    return model, example


def _task_kwargs(name: str, task: Any, train_set: Any) -> dict[str, Any]:
    """Output classes for segmentation, where the zoo model takes them."""
    from indexnas import zoo
    from indexnas.zoo.registry import REGISTRY, _resolve

    accepted = inspect.signature(REGISTRY[_resolve(name)[0]].builder).parameters
    if name not in zoo.list_models() and not name.startswith("timm:"):
        return {}
    kwargs: dict[str, Any] = {}
    if "num_classes" in accepted:
        kwargs["num_classes"] = task.out_channels(train_set)
    if "in_chans" in accepted:
        kwargs["in_chans"] = task.in_channels
    return kwargs


def _suggest(task: str) -> str:
    from indexnas import zoo

    return ", ".join(name for name in zoo.list_models() if zoo.model_task(name) == task) or "a zoo model"


def describe_pairs(host: nn.Module, example: torch.Tensor, mode: str) -> tuple[list[dict], dict[str, tuple[IndexSpec, ...]]]:
    """The host's pairs (as stored in the study) and the choices each pair allows in ``mode``."""
    from indexnas.surgery import analyze
    from indexnas.surgery.compat import pair_options

    gm, report = analyze(host, example)
    options = pair_options(gm, report, mode)
    pairs = []
    for pair in report.pairs:
        high = pair.transitions[0]
        pairs.append({"name": pair.name, "up": pair.up.target, "downs": [t.name for t in pair.transitions],
                      "channels": high.channels, "in_size": list(high.in_size),
                      "out_size": list(pair.transitions[-1].out_size), "up_channels": pair.up.in_channels,
                      "allowed": [str(s) for s in options[pair.name].allowed], "why_limited": options[pair.name].reason})
    rewritable = [p for p in pairs if len(p["allowed"]) > 1]
    return rewritable, {p["name"]: tuple(IndexSpec.parse(s) for s in p["allowed"]) for p in rewritable}


def rewrite(model: nn.Module, example: torch.Tensor, choices: dict[str, IndexSpec], mode: str,
            model_name: str) -> tuple[nn.Module, dict]:
    """Insert the trial's choices; returns the model and its cost (params, GFLOPs at the example) and recipe."""
    from indexnas.surgery.rewrite import insert_indexnet
    from indexnas.surgery import recipe

    rewritten, report = insert_indexnet(model, example, {name: str(spec) for name, spec in choices.items()}, mode)
    added = report.params_after - report.params_before
    return rewritten, {
        "recipe": recipe.from_report(report, model=model_name),
        "params_added": int(added),
        "params_total": int(report.params_after),
        "gflops": report.flops_after / 1e9,
        "gflops_added": (report.flops_after - report.flops_before) / 1e9,
    }
