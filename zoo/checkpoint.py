"""Loading a local checkpoint into a zoo model (``pretrained=PATH``); nothing is ever downloaded."""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping

import torch
from torch import nn

from indexnas.errors import UserError


def read_state_dict(path: str | os.PathLike) -> Mapping[str, torch.Tensor]:
    """Read a state_dict saved with torch.save, bare or wrapped as ``{"state_dict": ...}``."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(
            f"checkpoint {path!r} does not exist",
            "pass the path of a local file saved with torch.save(model.state_dict(), path); nothing is downloaded",
        )
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as error:
        raise UserError(
            f"{path!r} is not a readable PyTorch checkpoint: {str(error).splitlines()[0]}",
            "save it with torch.save(model.state_dict(), path) (tensors only: it is loaded with weights_only=True)",
        ) from error
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise UserError(
            f"{path!r} holds a {type(loaded).__name__}, not a state_dict of tensors",
            'save model.state_dict() (optionally as {"state_dict": model.state_dict()})',
        )
    return loaded


def load_checkpoint(model: nn.Module, path: str | os.PathLike, model_name: str) -> None:
    """Load ``path`` into ``model`` strictly; a checkpoint of another model or width is a UserError."""
    state = read_state_dict(path)
    own = model.state_dict()
    missing = [key for key in own if key not in state]
    unexpected = [key for key in state if key not in own]
    mismatched = [key for key in own if key in state and state[key].shape != own[key].shape]
    if missing or unexpected or mismatched:
        details = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
            if keys:
                details.append(f"{len(keys)} {label} (e.g. {', '.join(keys[:3])})")
        raise UserError(
            f"checkpoint {os.fspath(path)!r} does not fit {model_name}: {'; '.join(details)}",
            "use a checkpoint saved from the same zoo model with the same arguments (width, num_classes, ...)",
        )
    model.load_state_dict(state)
