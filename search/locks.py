"""The study lock: what every worker of a study takes to create the study or to claim a trial slot.

``flock`` locks (the journal, SQLite) or PostgreSQL advisory locks, which the operating system or the server
releases when a worker dies, so a ``kill -9`` never leaves a lock behind; no lock on other RDB servers.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from optuna.storages import BaseStorage, RDBStorage

from indexnas.search.heartbeat import HeartbeatJournalStorage
from indexnas.search.optuna_private import BaseJournalFileLock, uncached


class FileLock(BaseJournalFileLock):
    """An exclusive ``flock`` on a lock file: the kernel drops it when the holder dies, even by kill -9."""

    kind = "file"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._threads = threading.Lock()  # flock excludes processes; this excludes threads of one process
        self._fd: int | None = None

    def acquire(self) -> bool:
        import fcntl

        self._threads.acquire()
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        """Release the lock if this process holds it (safe to call twice)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        os.close(fd)  # closing the only descriptor drops the flock
        self._threads.release()


class _AdvisoryLock:
    """A PostgreSQL session advisory lock: the server drops it when the holder's connection ends."""

    kind = "postgresql-advisory"

    def __init__(self, engine, name: str) -> None:
        self._engine = engine
        self._key = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)
        self._connection = None

    def acquire(self) -> bool:
        from sqlalchemy import text

        connection = self._engine.connect()
        try:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": self._key})
            connection.commit()
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        return True

    def release(self) -> None:
        from sqlalchemy import text

        if self._connection is None:
            return
        connection, self._connection = self._connection, None
        try:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
            connection.commit()
        finally:
            connection.close()


class _NoLock:
    """For RDB servers without an advisory lock here (MySQL): two workers may both start the last trial."""

    kind = "none"

    def acquire(self) -> bool:
        return True

    def release(self) -> None:
        return None


class StudyLock:
    """The lock every worker of a study takes to create the study or to claim a trial slot.

    ``release`` may be called while not holding it (it then does nothing), so a holder can hand
    the lock back early and still release it in a ``finally``.
    """

    def __init__(self, lock: FileLock | _AdvisoryLock | _NoLock) -> None:
        self._lock = lock
        self.held = False

    @property
    def kind(self) -> str:
        """Which lock this is: "file" (flock), "postgresql-advisory", or "none"."""
        return self._lock.kind

    def acquire(self) -> None:
        self._lock.acquire()
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self._lock.release()

    def __enter__(self) -> StudyLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def study_lock(storage: BaseStorage, study_name: str) -> StudyLock:
    """The cross-process lock of one study in ``storage`` (see StudyLock); ``storage`` may be a study's
    (`optuna_private.storage_of`), which Optuna wraps in a caching layer for RDB storages."""
    storage = uncached(storage)
    if isinstance(storage, HeartbeatJournalStorage):
        return StudyLock(FileLock(storage.path.with_name(storage.path.name + ".study-lock")))
    if isinstance(storage, RDBStorage):
        backend = storage.engine.url.get_backend_name()
        if backend == "postgresql":
            return StudyLock(_AdvisoryLock(storage.engine, f"indexnas:{study_name}"))
        if backend == "sqlite" and storage.engine.url.database:
            database = Path(storage.engine.url.database)
            return StudyLock(FileLock(database.with_name(database.name + ".study-lock")))
    return StudyLock(_NoLock())
