"""The journal file kept whole: a torn last record is cut off (and saved beside it), a full disk loses nothing.

Optuna's journal is one JSON record per line. A crash or a full disk during a write leaves a last
line without its newline; Optuna still reads the file, but the next append glues a new record onto
the torn one and from then on the whole file is unreadable. So every append first checks the tail,
and every open checks every line: damage at the end is repaired (the cut bytes are saved as
``<journal>.torn-<time>``), damage in the middle is refused and the file left as it is.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import logging
import os
from pathlib import Path
from typing import Any

from optuna.storages.journal import JournalFileBackend

from indexnas.errors import UserError
from indexnas.search.optuna_private import BaseJournalFileLock, get_lock_file

log = logging.getLogger("indexnas.search")


def _is_record(line: bytes) -> bool:
    if not line.endswith(b"\n"):
        return False
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(record, dict) and "op_code" in record


def complete_length(data: bytes) -> int:
    """The length of the journal's leading run of complete records; a damaged line in the middle is a UserError."""
    end = 0
    lines = data.splitlines(keepends=True)
    for number, line in enumerate(lines, start=1):
        if not _is_record(line):
            if any(_is_record(later) for later in lines[number:]):
                raise _DamagedInTheMiddle(number)
            return end
        end += len(line)
    return end


class _DamagedInTheMiddle(Exception):
    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


def save_and_cut(path: Path, keep: int) -> Path:
    """Save the bytes after ``keep`` as ``<path>.torn-<time>``, then truncate ``path`` to ``keep`` bytes."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    saved = path.with_name(f"{path.name}.torn-{stamp}")
    with open(path, "rb") as source:
        source.seek(keep)
        cut = source.read()
    try:
        with open(saved, "xb") as out:
            out.write(cut)
            out.flush()
            os.fsync(out.fileno())
    except OSError as error:
        saved.unlink(missing_ok=True)
        raise UserError(f"the journal {path} ends in a torn record, and saving it before the repair failed: "
                        f"{error.strerror or error}", "free disk space, then run the same command again") from None
    os.truncate(path, keep)
    log.warning("the journal %s ended in a torn or unreadable record (%d bytes, e.g. from a crash or a full disk); "
                "cut it off and saved it as %s: every complete record is kept", path, len(cut), saved)
    return saved


def repair(path: Path) -> Path | None:
    """Check every line of the journal; cut a damaged tail (see `save_and_cut`). Call under the journal's lock."""
    if not path.is_file():
        return None
    data = path.read_bytes()
    try:
        keep = complete_length(data)
    except _DamagedInTheMiddle as damage:
        raise UserError(f"the journal {path} is damaged at line {damage.line}, before records that follow it; it was "
                        "left untouched", f"restore {path} from a backup, or copy its lines before line {damage.line} "
                        "into a new file and pass that as --storage") from None
    if keep == 0 and data:
        raise UserError(f"{path} is not an Optuna journal (its first line is not a journal record)",
                        "pass the journal file the search wrote, or a new file name")
    return save_and_cut(path, keep) if keep < len(data) else None


def _ends_torn(path: Path) -> bool:
    """Whether the last byte is not a newline (a record cut short): the cheap check before every append."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return False
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"


class SafeJournalBackend(JournalFileBackend):
    """Optuna's journal file backend that never appends after a torn record and undoes a failed write."""

    def __init__(self, path: Path, lock: BaseJournalFileLock) -> None:
        self.path = path
        with get_lock_file(lock):  # several workers may open the journal at once: one of them repairs
            repair(path)
        super().__init__(str(path), lock_obj=lock)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        data = ("\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n").encode()
        with get_lock_file(self._lock):
            if _ends_torn(self.path):  # another process died mid-write since this one last looked
                save_and_cut(self.path, self.path.read_bytes().rfind(b"\n") + 1)
            size = self.path.stat().st_size
            try:
                with open(self.path, "ab") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as error:
                _undo(self.path, size)
                raise journal_write_error(self.path, error) from None


def _undo(path: Path, size: int) -> None:
    """Cut a partly written record off again (truncating frees space, so it works on a full disk too)."""
    try:
        os.truncate(path, size)
    except OSError:  # the next open or append finds the torn tail and repairs it
        pass


def journal_write_error(path: Path, error: OSError) -> UserError:
    """The one message for a journal write that failed: the study is intact, and how to go on."""
    reason = "the disk is full" if error.errno in (errno.ENOSPC, errno.EDQUOT) else (error.strerror or str(error))
    return UserError(f"cannot write the study journal {path}: {reason}; the study is intact up to its last "
                     "complete record", "free disk space (or fix the folder), then run the same command to resume")
