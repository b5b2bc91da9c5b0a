"""What a search writes as weights under --out, and reads back: trial checkpoints (their self-describing format,
their paths, only the Pareto-optimal ones kept) and the weights it trains once (the warm host, the one-shot
supernet), all written atomically so a full disk is one error line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import TrialState
from torch import nn

from indexnas.atomic import atomic_save
from indexnas.errors import UserError
from indexnas.version import __version__
from indexnas.search.problem import Problem
from indexnas.search.settings import SearchSettings

CHECKPOINT_FORMAT = "indexnas-model"  # a trial's weights with everything `indexnas.load` needs to rebuild it


def checkpoint(model: nn.Module, recipe: dict[str, Any], problem: Problem, metrics: dict[str, float],
               costs: dict[str, Any], trial: int, study: str) -> dict[str, Any]:
    """A trial's weights and what rebuilds them (`indexnas.load`): the host's source and arguments, the recipe,
    the example input's shape, the task, metrics, costs and versions. Plain data: read with weights_only."""
    return {"format": CHECKPOINT_FORMAT, "version": 1, "state_dict": model.state_dict(), "recipe": recipe,
            "source": problem.source, "model": problem.label, "example_shape": list(problem.example.shape),
            "task": problem.task, "directions": problem.directions, "metrics": metrics, "costs": costs,
            "study": study, "trial": trial, "versions": versions()}


def versions() -> dict[str, str]:
    """The versions a checkpoint was written with (indexnas, torch, optuna, timm where installed)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"indexnas": __version__, "torch": str(torch.__version__), "optuna": str(optuna.__version__)}
    for name in ("timm", "segmentation-models-pytorch"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def checkpoint_path(out_dir: Path, number: int) -> Path:
    """Where trial ``number``'s checkpoint is written under --out."""
    return out_dir / "checkpoints" / f"trial-{number:05d}.pt"


def keep_pareto_checkpoints(study: optuna.Study, out_dir: Path) -> None:
    """Delete the weights of completed trials that are no longer Pareto-optimal."""
    pareto = {t.number for t in study.best_trials}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
        if trial.number not in pareto:
            checkpoint_path(out_dir, trial.number).unlink(missing_ok=True)


def save_or_stop(payload: Any, path: Path, what: str) -> None:
    """Write ``payload`` atomically; a full disk or a permission error stops the search with one line
    (the disk, not a trial, is at fault, and the study stays resumable once it is fixed)."""
    try:
        atomic_save(payload, path)
    except OSError as error:
        raise UserError(f"cannot write {what} {path}: {error.strerror or error}",
                        "free disk space or fix the permissions of --out, then run the same command to resume") from None


def load_warm_host(path: Path, settings: SearchSettings, host: nn.Module, what: str = "host") -> dict[str, Any]:
    """Load the cached warm-started host (or ``what`` else a search trains once: the one-shot supernet);
    weights of another search or a damaged file are refused."""
    from indexnas.zoo.checkpoint import load_state, read_checkpoint

    fix = f"pass another --out for this search, or delete {path} to train the {what} again"
    try:
        saved = read_checkpoint(path)
    except UserError as error:  # damaged, or a pickle with code in it: never loaded, never overwritten
        raise UserError(error.problem, fix) from None
    if not isinstance(saved, dict) or not {"state_dict", "summary", "identity"} <= set(saved):
        raise UserError(f"{path} is not the {what} checkpoint of an indexnas search", fix)
    stored = SearchSettings.stored_identity(saved["identity"])
    differences = [f"{k}: stored {stored[k]!r}, now {v!r}" for k, v in settings.identity().items() if stored[k] != v]
    if differences:
        raise UserError(f"{path} holds the {what} of another search ({'; '.join(differences)})", fix)
    load_state(host, saved["state_dict"], str(path), settings.model)
    return saved["summary"]
