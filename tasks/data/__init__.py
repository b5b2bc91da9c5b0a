"""Datasets for the four tasks: offline built-ins made from shipped photographs, and on-disk folder layouts.

`builtin_dataset(task, **options)` and `folder_dataset(task, root, **options)` both return
(train, val): training sets make fresh random samples on every access (seed them through torch),
validation sets are fixed by their seed. See each task module for how its data is made.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

from indexnas.errors import UserError
from indexnas.tasks.data import denoise, depth, matting, segment
from indexnas.tasks.data.dataset import SampleDataset

Builder = Callable[..., tuple[SampleDataset, SampleDataset]]

BUILTIN: dict[str, Builder] = {
    "denoise": denoise.builtin,
    "segment": segment.builtin,
    "matting": matting.builtin,
    "depth": depth.builtin,
}
FOLDER: dict[str, Builder] = {
    "denoise": denoise.from_folder,
    "segment": segment.from_folder,
    "matting": matting.from_folder,
    "depth": depth.from_folder,
}
# What each folder layout expects under `root`, for help texts and errors.
FOLDER_LAYOUTS: dict[str, str] = {
    "denoise": denoise.LAYOUT,
    "segment": segment.LAYOUT,
    "matting": matting.LAYOUT,
    "depth": depth.LAYOUT,
}


def builtin_dataset(task: str, **options: object) -> tuple[SampleDataset, SampleDataset]:
    """(train, val) for `task` made offline from photographs inside scikit-image; deterministic per seed."""
    return _call(BUILTIN, task, "built-in dataset", options)


def folder_dataset(task: str, root: str | Path, **options: object) -> tuple[SampleDataset, SampleDataset]:
    """(train, val) for `task` read from a standard on-disk layout (see FOLDER_LAYOUTS)."""
    return _call(FOLDER, task, "folder dataset", {"root": root, **options})


def dataset_options(task: str, kind: str = "builtin") -> dict[str, object]:
    """The options a builder accepts with their defaults ("required" where there is none); kind: builtin|folder."""
    registry = BUILTIN if kind == "builtin" else FOLDER
    builder = _lookup(registry, task, f"{kind} dataset")
    return {
        name: "required" if parameter.default is inspect.Parameter.empty else parameter.default
        for name, parameter in inspect.signature(builder).parameters.items()
    }


def _lookup(registry: dict[str, Builder], task: str, what: str) -> Builder:
    if task not in registry:
        raise UserError(f"no {what} for task {task!r}", f"use one of: {', '.join(registry)}")
    return registry[task]


def _call(registry: dict[str, Builder], task: str, what: str, options: dict[str, object]):
    builder = _lookup(registry, task, what)
    accepted = inspect.signature(builder).parameters
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise UserError(
            f"the {task} {what} has no option {', '.join(unknown)}",
            f"its options are: {', '.join(accepted)}",
        )
    return builder(**options)
