"""Where studies live: an embedded journal file by default, an RDB URL for many machines.

The journal file (Optuna's JournalFileBackend) needs no server and is safe for several local
worker processes; we add the heartbeat Optuna's RDB storage has, so a killed worker's trial is
failed and retried instead of staying RUNNING forever. Locks are ``flock`` locks (journal, SQLite)
or PostgreSQL advisory locks, which the operating system or the server releases when a worker
dies, so a ``kill -9`` never leaves a lock behind. Passwords in URLs are never printed.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib.util
import logging
import os
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage, JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat  # the hook Optuna's optimize loop looks for
from optuna.storages.journal._file import BaseJournalFileLock  # the lock interface JournalFileBackend takes
from optuna.trial import FrozenTrial, TrialState

from indexnas.errors import UserError
from indexnas.search.journal import SafeJournalBackend
from indexnas.search.settings import DEFAULT_GRACE_S, DEFAULT_HEARTBEAT_S

log = logging.getLogger("indexnas.search")
HEARTBEAT_ATTR = "indexnas:heartbeat"
MAX_RETRY = 3
LOST_WORKER = "worker_lost"  # failure kind of a trial whose worker stopped sending heartbeats
RDB_SCHEMES = ("postgresql", "postgres", "mysql", "sqlite")
# Drivers SQLAlchemy can use for a bare postgresql:// URL, in its order of preference.
POSTGRES_DRIVERS = (("psycopg", "psycopg"), ("psycopg2", "psycopg2"))
URL_HELP = ("use a journal file (journal:///abs/path/study.log or a path ending in .log) "
            "or an RDB URL (postgresql://user:pass@host:5432/db, sqlite:///file.db)")
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*):[^\s@]*(?:@[^\s@]*)*@", re.IGNORECASE)
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&](?:password|passwd|pwd)=)[^&\s]*", re.IGNORECASE)
_SECRET_KEYS = ("password", "passwd", "pwd")


def _parsed(url: str):
    """The RDB URL parsed by SQLAlchemy (which accepts any character in a password, even a space), else None."""
    from sqlalchemy.engine import make_url

    if url.split("://", 1)[0].split("+", 1)[0].lower() not in RDB_SCHEMES:
        return None
    try:
        return make_url(url)
    except Exception:  # malformed: masked by pattern instead
        return None


def _secrets(url: str) -> list[str]:
    """The URL's password and password-like query values, raw and percent-encoded."""
    from urllib.parse import quote, quote_plus

    parsed = _parsed(url)
    if parsed is None:
        return []
    values = [parsed.password] if parsed.password else []
    for key, value in parsed.query.items():
        if key.lower() in _SECRET_KEYS:
            values.extend([value] if isinstance(value, str) else value)
    return sorted({form for v in values for form in (v, quote(v, safe=""), quote_plus(v)) if form}, key=len, reverse=True)


def mask_url(url: str) -> str:
    """The storage URL with its password replaced by ***, rendered from SQLAlchemy's parse of it."""
    parsed = _parsed(url)
    if parsed is None:
        return mask_text(url)
    return mask_text(parsed.render_as_string(hide_password=True), url)  # the query's password= too


def mask_text(text: str, url: str | None = None) -> str:
    """A message with ``url``'s password (wherever it appears) and any URL-shaped password replaced by ***."""
    for secret in _secrets(url) if url else []:
        text = text.replace(secret, "***")
    return _QUERY_PASSWORD.sub(r"\g<head>***", _URL_PASSWORD.sub(r"\g<head>:***@", text))


@dataclass(frozen=True)
class StorageLocation:
    """A checked storage URL: a journal file, or an SQLAlchemy URL with its driver resolved."""

    url: str  # as the user wrote it (print it through mask_url)
    journal: Path | None = None  # the embedded journal file
    rdb_url: str | None = None  # the SQLAlchemy URL for RDBStorage
    local_file: Path | None = None  # the journal or SQLite file; None for a database server


def locate_storage(url: str) -> StorageLocation:
    """Check a storage URL without touching anything; a malformed one is a UserError saying how to write it."""
    if not isinstance(url, str) or not url.strip():
        raise UserError("no storage URL given", URL_HELP)
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("", "journal", "file"):
        rest = url.split("://", 1)[1] if scheme else url
        path = Path(rest).expanduser()
        if not rest or str(path) in (".", "/"):
            raise UserError(f"storage URL {mask_url(url)!r} names no file", "use e.g. journal:///path/to/study.log")
        if path.is_dir():
            raise UserError(f"storage path {path} is a directory", "name a file inside it, e.g. study.log")
        if path.exists() and not path.is_file():
            raise UserError(f"storage path {path} is not a regular file (a device, pipe or socket)",
                            "name a journal file, e.g. runs/studies.log")
        return StorageLocation(url, journal=path, local_file=path)
    if scheme.split("+", 1)[0] not in RDB_SCHEMES:
        raise UserError(f"storage URL {mask_url(url)!r} has an unknown scheme {scheme!r}", URL_HELP)
    return _locate_rdb(url)


def _locate_rdb(url: str) -> StorageLocation:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(re.sub(r"^postgres(?=[+:])", "postgresql", url, flags=re.IGNORECASE))
    except (ArgumentError, ValueError) as error:
        raise UserError(f"storage URL {mask_url(url)!r} is malformed: {mask_text(str(error), url)}",
                        "write it as scheme://user:password@host:port/database, e.g. "
                        "postgresql://optuna:secret@db.example.org:5432/studies") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise UserError(f"storage URL {mask_url(url)!r} is an in-memory database: the study would be lost "
                            "when the command ends", "name a file, e.g. sqlite:///studies.db, or use a journal .log file")
        return StorageLocation(url, rdb_url=parsed.render_as_string(hide_password=False),
                               local_file=Path(parsed.database).expanduser())
    if not parsed.database:
        raise UserError(f"storage URL {mask_url(url)!r} names no database", "add it after the host: .../DATABASE")
    if parsed.drivername == "postgresql":  # SQLAlchemy's default driver may not be the installed one
        installed = [name for name, module in POSTGRES_DRIVERS if importlib.util.find_spec(module)]
        if not installed:
            raise UserError("no PostgreSQL driver is installed", "pip install psycopg2-binary (or 'psycopg[binary]')")
        parsed = parsed.set(drivername=f"postgresql+{installed[0]}")
    return StorageLocation(url, rdb_url=parsed.render_as_string(hide_password=False))


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
    ``_storage``, which Optuna wraps in a caching layer for RDB storages."""
    from optuna.storages._cached_storage import _CachedStorage

    if isinstance(storage, _CachedStorage):  # what optuna.load_study/create_study make of an RDBStorage
        storage = storage._backend
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


class _RecordsLostWorkers:
    """Stale trials get ``failure`` = worker_lost before Optuna fails them; their retries start clean.

    A heartbeat that cannot be written (a full disk, a database outage) is skipped quietly: it runs in
    Optuna's background thread, and the trial's own next write meets the same fault and reports it once.
    """

    _grace_period: float

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            self._beat(trial_id)
        except Exception as error:  # noqa: BLE001 - see the class docstring
            log.debug("heartbeat of trial id %d not recorded: %s", trial_id, error)

    def _beat(self, trial_id: int) -> None:
        raise NotImplementedError

    def _record_lost(self, trial_ids: list[int]) -> list[int]:
        for trial_id in trial_ids:
            trial = self.get_trial(trial_id)  # type: ignore[attr-defined]
            worker = trial.user_attrs.get("worker", "unknown worker")
            message = (f"no heartbeat from {worker} for over {self._grace_period:g} s: the worker process was killed "
                       "or lost; the trial was failed and queued again")
            try:
                self.set_trial_user_attr(trial_id, "failure", {"kind": LOST_WORKER, "message": message})  # type: ignore[attr-defined]
            except UpdateFinishedTrialError:  # finished meanwhile: another worker failed it, or it completed
                pass
        return trial_ids


@contextlib.contextmanager
def storage_faults(url: str) -> Iterator[None]:
    """Turn a storage that fails mid-search (a full disk, a database server gone) into one UserError.

    Optuna, failing to record a trial's end, raises ``AssertionError: Should not reach`` over the real
    error, so the chain of causes is searched for it.
    """
    try:
        yield
    except UserError:
        raise
    except Exception as error:
        fault = _storage_fault(error, url)
        if fault is None:
            raise
        raise fault from None


def _storage_fault(error: BaseException | None, url: str) -> UserError | None:
    import sqlalchemy.exc

    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, UserError):
            return error
        if isinstance(error, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)):
            text = str(error.orig if error.orig is not None else error).strip()
            first = mask_text((text.splitlines() or [type(error).__name__])[0], url)
            return UserError(f"lost the study storage {mask_url(url)}: {first}",
                             "once the database server is reachable again, run the same command to resume: the "
                             "interrupted trial is failed after the grace period and run again")
        error = error.__cause__ or error.__context__
    return None


def retry_stale_trial(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queue a stale trial again (Optuna's retry callback), without its failure and old heartbeat."""
    clean = copy.deepcopy(trial)
    clean.user_attrs.pop("failure", None)
    clean.system_attrs.pop(HEARTBEAT_ATTR, None)
    with warnings.catch_warnings():  # experimental since Optuna 2.8, and the only retry callback there is
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)(study, clean)


class HeartbeatJournalStorage(_RecordsLostWorkers, JournalStorage, BaseHeartbeat):
    """A journal-file storage whose running trials record a heartbeat as a system attribute."""

    def __init__(self, path: Path, heartbeat_interval: float, grace_period: float,
                 stale_callback: Callable[[optuna.Study, FrozenTrial], None] | None) -> None:
        self.path = path
        super().__init__(SafeJournalBackend(path, FileLock(path.with_name(path.name + ".flock"))))
        self._heartbeat_interval = heartbeat_interval
        self._grace_period = grace_period
        self._stale_callback = stale_callback

    def _beat(self, trial_id: int) -> None:
        self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            start = trial.datetime_start.timestamp() if trial.datetime_start is not None else 0.0
            last = max(trial.system_attrs.get(HEARTBEAT_ATTR, 0.0), start)  # a retried trial starts afresh
            if last and now - last > self._grace_period:
                stale.append(trial._trial_id)
        return self._record_lost(stale)

    def get_heartbeat_interval(self) -> float | None:
        return self._heartbeat_interval

    def get_heartbeat_stale_trial_callback(self) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return self._stale_callback


class HeartbeatRDBStorage(_RecordsLostWorkers, RDBStorage):
    """Optuna's RDB storage (heartbeats in the database), recording why a stale trial failed."""

    def __init__(self, url: str, heartbeat_interval: float, grace_period: float, **kwargs) -> None:
        super().__init__(url, heartbeat_interval=heartbeat_interval, grace_period=grace_period, **kwargs)
        self._grace_period = grace_period

    def _beat(self, trial_id: int) -> None:
        RDBStorage.record_heartbeat(self, trial_id)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        return self._record_lost(super()._get_stale_trial_ids(study_id))


def open_storage(url: str, heartbeat_interval: float = DEFAULT_HEARTBEAT_S,
                 grace_period: float = DEFAULT_GRACE_S) -> BaseStorage:
    """Open a storage URL: a journal file (``journal:///abs/path.log`` or a path) or an RDB URL.

    Stale trials (no heartbeat for ``grace_period`` s) are failed and retried up to MAX_RETRY times.
    """
    if not 0 < heartbeat_interval < grace_period:
        raise UserError(f"the heartbeat interval ({heartbeat_interval} s) must be positive and shorter than the "
                        f"grace period ({grace_period} s)", "e.g. heartbeat_interval=10, grace_period=60")
    location = locate_storage(url)
    if location.journal is not None:
        path = location.journal
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists() and not os.access(path, os.R_OK | os.W_OK):
                raise PermissionError(f"Permission denied: '{path}'")
            return HeartbeatJournalStorage(path, heartbeat_interval, grace_period, retry_stale_trial)
        except OSError as error:
            raise UserError(f"cannot open the journal {path}: {error.strerror or error}",
                            "check the folder exists and is writable, or pass another --storage") from None
        except ValueError as error:  # a file that is not a journal (Optuna reads it at once)
            raise UserError(f"{path} is not an Optuna journal ({error})",
                            "pass the journal file the search wrote, or a new file name") from None
    assert location.rdb_url is not None
    scheme = location.rdb_url.split("://", 1)[0]
    try:
        return _open_rdb(location.rdb_url, heartbeat_interval, grace_period, scheme)
    except ImportError:
        raise UserError(f"the database driver for {mask_url(url).split('://', 1)[0]!r} is not installed",
                        f"install it into the environment, e.g. pip install {_driver_hint(scheme)}") from None
    except Exception as error:  # sqlalchemy's OperationalError & co: unreachable, bad credentials
        message = mask_text(str(error).splitlines()[0] if str(error) else type(error).__name__, url)
        raise UserError(f"cannot open storage {mask_url(url)!r}: {message}",
                        "check that the database server is running and the URL (host, port, user, database) is right") from None


def _open_rdb(url: str, heartbeat_interval: float, grace_period: float, scheme: str) -> HeartbeatRDBStorage:
    """Open (creating Optuna's tables on first use) an RDB storage.

    Workers started together on a new database race to create the tables; the loser's CREATE
    fails on a unique constraint, and by then the tables exist, so it tries once more.
    """
    import sqlalchemy.exc

    def attempt() -> HeartbeatRDBStorage:
        with warnings.catch_warnings():  # heartbeats are experimental in Optuna's RDB storage since 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return HeartbeatRDBStorage(url, heartbeat_interval, grace_period,
                                       heartbeat_stale_trial_callback=retry_stale_trial,
                                       engine_kwargs=_engine_kwargs(scheme))

    try:
        return attempt()
    except sqlalchemy.exc.IntegrityError:
        time.sleep(0.5)
        return attempt()


def _engine_kwargs(scheme: str) -> dict:
    """Fail fast on an unreachable server instead of hanging."""
    if scheme.startswith("postgres"):
        return {"connect_args": {"connect_timeout": 10}}
    return {}


def _driver_hint(scheme: str) -> str:
    return {"postgresql": "psycopg2-binary", "mysql": "pymysql"}.get(
        scheme.split("+", 1)[0], "the SQLAlchemy driver for your database")
