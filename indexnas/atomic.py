"""Atomic writes: a file is either the old one or the complete new one, never half written."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def _read_umask() -> int:
    mask = os.umask(0)  # the only portable way to read it; done once, at import, before any threads
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def _replace_with(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the mode open() would
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_save(obj: Any, path: str | Path) -> None:
    """torch.save through a temporary file in the same folder, then rename."""
    _replace_with(Path(path), lambda handle: torch.save(obj, handle))


def atomic_write_bytes(data: bytes, path: str | Path) -> None:
    """Write bytes through a temporary file in the same folder, then rename."""
    _replace_with(Path(path), lambda handle: handle.write(data))
