"""Weights a search trains once and keeps under --out (the warm host, the one-shot supernet) and trial checkpoints:
written atomically (a full disk is one error line), read back only by the same search."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from indexnas.atomic import atomic_save
from indexnas.errors import UserError
from indexnas.search.settings import SearchSettings


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
