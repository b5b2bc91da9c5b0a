"""Rebuild a study's best kept trial from its checkpoint, to show its index maps in the report.

The search keeps the weights of Pareto-optimal trials as self-describing checkpoints at their
``checkpoint`` attribute (search/record.py); the model is rebuilt from one as `indexnas.load` does
(`search.export.rebuild`: the host from its source and arguments, the recipe replayed, the weights loaded),
and the maps are drawn on the first validation image of the task's data (from the study's stored settings).

A host given as ``path/to/file.py:factory`` is rebuilt by executing that file, so the report does it
only when asked (``allow_code``, ``indexnas report --allow-code``): a results.json can name any file.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from torch.utils.data import default_collate

from indexnas.errors import UserError
from indexnas.reports.frame import CHOICE_PREFIX, METRIC_PREFIX
from indexnas.reports.index_maps import plot_index_maps
from indexnas.reports.source import Results


def best_checkpoint(frame: pd.DataFrame) -> pd.Series | None:
    """The Pareto-optimal trial with an IndexNet (not the bare host) and the best metric whose checkpoint is here."""
    kept = frame[frame["pareto"] & frame["checkpoint"].notna()]
    kept = kept[kept["checkpoint"].map(lambda p: Path(p).is_file()).astype(bool)]
    choices = kept[[c for c in frame.columns if c.startswith(CHOICE_PREFIX)]]
    kept = kept[(choices.notna() & (choices != "keep")).any(axis=1)]  # the untouched host has no index maps
    if kept.empty:
        return None
    metric = METRIC_PREFIX + frame.attrs["primary_metric"]
    return kept.sort_values(metric, ascending=frame.attrs["metric_direction"] != "maximize").iloc[0]


def trained_index_maps(results: Results, frame: pd.DataFrame, allow_code: bool = False) -> tuple[Figure | None, str]:
    """(figure, what it shows) for the best kept trial, or (None, why there is none).

    ``allow_code``: rebuild a host that comes from a model file by executing it (see the module docstring).
    """
    trial = best_checkpoint(frame)
    if trial is None:
        return None, "no Pareto-optimal trial has its weights (checkpoint) on this machine"
    stored = results.settings.get("settings")
    if not isinstance(stored, dict):
        return None, "the study does not record the search settings its model is rebuilt from"
    from indexnas.search.export import rebuild
    from indexnas.tasks.problem import build_datasets
    from indexnas.search.settings import SearchSettings
    from indexnas.tasks.registry import get_task

    try:
        settings = SearchSettings(**stored)
        model = rebuild(trial["checkpoint"], allow_code=allow_code)[0]  # weights_only: a pickle with code is refused
        _, val_set = build_datasets(settings)
    except (UserError, TypeError, KeyError, OSError, RuntimeError) as error:
        # settings from another version, data or weights not on this machine, weights of another model
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        return None, f"trial {trial['number']} could not be rebuilt from {trial['checkpoint']}: {first}"
    image = get_task(settings.task).model_inputs(default_collate([val_set[0]]))
    label = trial["uniform"] if isinstance(trial["uniform"], str) else "mixed choices"
    title = f"trial {trial['number']} ({label}), first validation image"
    return plot_index_maps(model, image, title=title), title
