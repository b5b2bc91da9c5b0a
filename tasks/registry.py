"""The built-in tasks, one entry each (smp-registry style): the `Task`, its built-in and folder data builders,
the folder layout, its metrics with their directions and the zoo models that serve it.

Every lookup by task name goes through `task_entry`: an unknown name is one UserError listing the valid ones.
`get_task`, `builtin_dataset`, `folder_dataset` and `dataset_options` are read from the entries;
search/settings.py spells the names in --task's help, since search imports nothing from here (tests/tasks/test_registry.py checks them).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from indexnas.errors import UserError
from indexnas.tasks.data import denoise, depth, matting, segment
from indexnas.tasks.data.dataset import SampleDataset
from indexnas.tasks.definitions import DenoiseTask, DepthTask, MattingTask, SegmentTask, Task

Builder = Callable[..., tuple[SampleDataset, SampleDataset]]


@dataclass(frozen=True)
class TaskEntry:
    """Everything the package knows about one built-in task."""

    task: Task
    builtin: Builder  # (train, val) made offline from photographs inside scikit-image
    folder: Builder  # (train, val) read from `layout` under a root folder
    layout: str  # what the folder builder expects under ROOT, for help texts and errors
    outputs: str  # what the model's output channels hold, for errors ("one per class")
    data_settings: tuple[str, ...] = ()  # SearchSettings fields its builders also take (beyond patch, seed, ...)

    @property
    def name(self) -> str:
        """The task's name (`--task`)."""
        return self.task.name

    @property
    def metric_directions(self) -> dict[str, str]:
        """The task's metrics and whether each is maximised or minimised, the primary metric first."""
        return self.task.metric_directions

    def zoo_models(self) -> list[str]:
        """The zoo models built for this task (what an error suggests when a host does not fit it)."""
        from indexnas import zoo

        return [model for model in zoo.list_models() if zoo.model_task(model) == self.name]


REGISTRY: dict[str, TaskEntry] = {
    entry.name: entry
    for entry in (
        TaskEntry(DenoiseTask(), denoise.builtin, denoise.from_folder, denoise.LAYOUT, "one output channel",
                  data_settings=("sigma",)),
        TaskEntry(SegmentTask(), segment.builtin, segment.from_folder, segment.LAYOUT, "one per class"),
        TaskEntry(MattingTask(), matting.builtin, matting.from_folder, matting.LAYOUT, "one output channel"),
        TaskEntry(DepthTask(), depth.builtin, depth.from_folder, depth.LAYOUT, "one output channel"),
    )
}


def task_entry(name: str) -> TaskEntry:
    """The entry of the task called `name`; an unknown name is a UserError listing the valid ones."""
    if name not in REGISTRY:
        raise UserError(f"unknown task {name!r}", f"use one of: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def get_task(name: str, **options: object) -> Task:
    """The task called `name`, optionally with options (matting: alpha_from)."""
    task = task_entry(name).task
    if not options:
        return task
    fields = {field.name for field in dataclasses.fields(task)}
    unknown = sorted(set(options) - fields)
    if unknown:
        accepted = ", ".join(sorted(fields)) or "none"
        raise UserError(f"task {name!r} has no option {', '.join(unknown)}", f"its options are: {accepted}")
    return dataclasses.replace(task, **options)


def builtin_dataset(task: str, **options: object) -> tuple[SampleDataset, SampleDataset]:
    """(train, val) for `task` made offline from photographs inside scikit-image; deterministic per seed."""
    return _call(task_entry(task).builtin, task, "built-in dataset", options)


def folder_dataset(task: str, root: str | Path, **options: object) -> tuple[SampleDataset, SampleDataset]:
    """(train, val) for `task` read from a standard on-disk layout (see `TaskEntry.layout`)."""
    return _call(task_entry(task).folder, task, "folder dataset", {"root": root, **options})


def dataset_options(task: str, kind: str = "builtin") -> dict[str, object]:
    """The options a builder accepts with their defaults ("required" where there is none); kind: builtin|folder."""
    entry = task_entry(task)
    builder = entry.builtin if kind == "builtin" else entry.folder
    return {
        name: "required" if parameter.default is inspect.Parameter.empty else parameter.default
        for name, parameter in inspect.signature(builder).parameters.items()
    }


def _call(builder: Builder, task: str, what: str, options: dict[str, object]) -> tuple[SampleDataset, SampleDataset]:
    """`builder(**options)`, refusing options it does not take with a list of those it does."""
    accepted = inspect.signature(builder).parameters
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise UserError(
            f"the {task} {what} has no option {', '.join(unknown)}",
            f"its options are: {', '.join(accepted)}",
        )
    return builder(**options)
