"""Loading a local checkpoint into a zoo model (``pretrained=PATH``); nothing is ever downloaded."""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from indexnas.errors import UserError


def read_checkpoint(path: str | os.PathLike) -> Any:
    """torch.load with ``weights_only=True``: tensors, numbers, strings and containers; pickled code is refused."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(
            f"checkpoint {path!r} does not exist",
            "pass the path of a local file saved with torch.save(model.state_dict(), path); nothing is downloaded",
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"GLOBAL (\S+)", str(error))  # the pickle names a class or function, not just data
        if found:
            raise UserError(
                f"checkpoint {path!r} holds Python objects other than tensors ({found.group(1)}): "
                "refused unopened, as loading it could run code",
                "load only weights saved with torch.save(model.state_dict(), path) or written by indexnas; "
                "never unpickle a file from a source you do not trust",
            ) from None
        raise _unreadable(path, error) from None
    except (RuntimeError, EOFError, ValueError, OSError) as error:
        raise _unreadable(path, error) from None


def _unreadable(path: str, error: Exception) -> UserError:
    boilerplate = ("Weights only load failed", "Please file an issue", "Check the documentation")
    lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
    first = next((line for line in lines if not line.startswith(boilerplate)), lines[0]).split(". ")[0]
    return UserError(
        f"{path!r} is not a readable PyTorch checkpoint (truncated or corrupt?): {first}",
        "save it again with torch.save(model.state_dict(), path) (tensors only: it is loaded with weights_only=True)",
    )


def read_state_dict(path: str | os.PathLike) -> Mapping[str, torch.Tensor]:
    """Read a state_dict saved with torch.save, bare or wrapped as ``{"state_dict": ...}``."""
    path = os.fspath(path)
    loaded = read_checkpoint(path)
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
    load_state(model, read_state_dict(path), os.fspath(path), model_name)


def load_state(model: nn.Module, state: Mapping[str, torch.Tensor], source: str, model_name: str) -> None:
    """Load a state_dict read from ``source`` into ``model`` strictly; one of another model is a UserError."""
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
            f"checkpoint {source!r} does not fit {model_name}: {'; '.join(details)}",
            "use a checkpoint saved from the same model built with the same arguments (width, num_classes, ...)",
        )
    model.load_state_dict(state)
