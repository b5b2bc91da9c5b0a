"""Checks before any work: what would otherwise fail after the host has trained, or exhaust memory.

`check_settings` runs before anything is read or written (the run folder, the storage file; each
setting's own value, the seed's range included, is checked when SearchSettings is built:
search/settings.py). The built-in tasks' checks of the host and data (memory, values) are in tasks/preflight.py.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from indexnas.errors import UserError
from indexnas.search.settings import SearchSettings
from indexnas.search.storage_urls import locate_storage


def check_settings(settings: SearchSettings) -> None:
    """The run folder and the storage, checked before any file is written."""
    journal = locate_storage(settings.storage).journal  # a malformed URL is refused before the folders
    check_writable_folder(settings.out_dir, "--out")
    if journal is not None:
        check_writable_folder(journal.parent, "the --storage journal's folder")


def check_writable_folder(folder: Path, what: str) -> None:
    """``folder`` is (or can be made as) a folder this process can write files into; creates nothing."""
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{what} {folder} is a file, not a folder", "pass a folder (new or existing) for the run")
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{what} {folder} cannot be created: {existing} is a file", "pass a folder path")
    try:  # a probe, not os.access: root passes os.access on a read-only filesystem
        handle, probe = tempfile.mkstemp(dir=existing, prefix=".indexnas-probe-")
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise UserError(f"{what} {folder} is not writable ({existing}: {error.strerror or error})",
                        "pass a folder you can write to, or fix its permissions") from None
