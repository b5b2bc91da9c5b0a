"""A searched trial back as a model: `rebuild` (behind `indexnas.load`) and `indexnas export` (a study's
trial as a self-describing model file, optionally also ONNX / torch.export).

The search keeps the weights of Pareto-optimal trials as self-describing checkpoints (search/checkpoints.py
`checkpoint`); exporting picks one (a trial number, or the best by a metric), checks that it rebuilds
(`indexnas.load`), and writes it where the user wants it, plus the optional ONNX and torch.export files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState
from torch import nn

from indexnas.errors import UserError
from indexnas.search.record import CHECKPOINT, SETTINGS, StudyRecord, TrialRecord


def rebuild(path: str | os.PathLike, model: nn.Module | None = None,
            allow_code: bool = True) -> tuple[nn.Module, torch.Tensor, dict[str, Any]]:
    """(model in eval mode, example input, checkpoint) of a self-describing trial checkpoint (`indexnas.load`).

    A checkpoint whose model comes from ``path/to/file.py:factory`` is rebuilt by executing that file;
    ``allow_code=False`` refuses that instead (a report must not run a file a results.json points to).
    """
    from indexnas.search.checkpoints import CHECKPOINT_FORMAT
    from indexnas.surgery.loading import WEIGHT_ARGS, is_model_file, load_model
    from indexnas.surgery.recipe import replay
    from indexnas.zoo.checkpoint import load_state, read_checkpoint

    saved = read_checkpoint(path)
    if not isinstance(saved, dict) or saved.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path} is not a model checkpoint of an indexnas search",
                        "export one with `indexnas export STUDY --trial best --out model.pt`")
    source = saved.get("source")
    if model is None:
        if not source:
            raise UserError(f"{path} holds a trial of your own model ({saved.get('model')}); it cannot be rebuilt "
                            "from a name", "pass a fresh instance: indexnas.load(path, model=MyModel(...))")
        if not allow_code and is_model_file(str(source["model"])):
            raise UserError(f"its model is rebuilt by running the file {source['model'].rpartition(':')[0]}, which a "
                            "report does only with --allow-code", "pass --allow-code if you trust that file")
        args = {k: v for k, v in (source.get("model_args") or {}).items() if k not in WEIGHT_ARGS}
        model, example = load_model(source["model"], source.get("size"), args)  # weights come from the checkpoint
    else:
        example = torch.rand(*saved["example_shape"], generator=torch.Generator().manual_seed(0))
    rewritten, _ = replay(saved["recipe"], model, example, flops=False)
    load_state(rewritten, saved["state_dict"], os.fspath(path), str(saved.get("model")))
    return rewritten.eval(), example, saved


def pick_trial(study: optuna.Study, which: str, metric: str | None) -> FrozenTrial:
    """Trial ``which`` (a number) or ``"best"``: the kept trial with the best ``metric`` (an objective's name)."""
    kept = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if _kept(t)]
    if which != "best":
        if not which.isdigit():
            raise UserError(f"--trial {which!r} is neither a trial number nor 'best'", "pass e.g. --trial 7 or --trial best")
        trial = next((t for t in study.trials if t.number == int(which)), None)
        if trial is None:
            raise UserError(f"study {study.study_name!r} has no trial {which}", f"its trials are 0-{len(study.trials) - 1}")
        if trial not in kept:
            numbers = ", ".join(str(t.number) for t in kept) or "none"
            raise UserError(f"trial {which} has no weights on this machine (only Pareto-optimal trials keep theirs)",
                            f"pick one of the kept trials: {numbers}")
        return trial
    names = study.metric_names or StudyRecord.of(study).get(SETTINGS, {}).get("objectives") or []
    metric = metric or (names[0] if names else None)
    if metric not in names:
        raise UserError(f"--metric {metric!r} is not one of the study's objectives", f"use one of: {', '.join(names)}")
    if not kept:
        raise UserError(f"no completed trial of study {study.study_name!r} has its weights on this machine",
                        "run the search here (its --out folder holds the checkpoints) and export there")
    index = names.index(metric)
    pick = max if study.directions[index] == optuna.study.StudyDirection.MAXIMIZE else min
    return pick(kept, key=lambda t: t.values[index])


def _kept(trial: FrozenTrial) -> bool:
    """Whether the trial's weights are on this machine."""
    path = TrialRecord.of(trial).get(CHECKPOINT)
    return bool(path) and Path(path).is_file()


def export_trial(trial: FrozenTrial, out: Path, onnx: Path | None = None, torch_export: Path | None = None) -> list[Path]:
    """Write the trial as ``out`` (rebuilt once to check it loads) and optional ONNX / torch.export files."""
    from indexnas.atomic import atomic_save

    model, example, saved = rebuild(TrialRecord.of(trial)[CHECKPOINT])
    written = []
    for path in (out, onnx, torch_export):
        if path is not None and not path.parent.is_dir():
            raise UserError(f"cannot write {path}: folder {path.parent} does not exist", "create it first")
    atomic_save(saved, out)
    written.append(out)
    if onnx is not None:
        torch.onnx.export(model, (example,), str(onnx), verbose=False)  # no step-by-step log on stdout
        written.append(onnx)
    if torch_export is not None:
        torch.export.save(torch.export.export(model, (example,)), str(torch_export))
        written.append(torch_export)
    return written
