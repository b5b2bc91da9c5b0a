"""Where studies live: an embedded journal file by default, an RDB URL for many machines.

The journal file (Optuna's JournalFileBackend) needs no server and is safe for several local
worker processes; we add the heartbeat Optuna's RDB storage has, so a killed worker's trial is
failed and retried instead of staying RUNNING forever. Passwords in URLs are never printed.
"""

from __future__ import annotations

import os
import re
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat  # the hook Optuna's optimize loop looks for
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.trial import FrozenTrial, TrialState

from indexnas.errors import UserError

HEARTBEAT_ATTR = "indexnas:heartbeat"
DEFAULT_HEARTBEAT_S = 10
DEFAULT_GRACE_S = 60
MAX_RETRY = 3
RDB_SCHEMES = ("postgresql", "postgres", "mysql", "sqlite")
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@]+):[^@/]*@", re.IGNORECASE)


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***, for logs, errors and reports."""
    return _URL_PASSWORD.sub(r"\g<head>:***@", url)


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """A journal-file storage whose running trials record a heartbeat as a system attribute."""

    def __init__(self, path: Path, heartbeat_interval: int, grace_period: int,
                 stale_callback: Callable[[optuna.Study, FrozenTrial], None] | None) -> None:
        super().__init__(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))
        self._heartbeat_interval = heartbeat_interval
        self._grace_period = grace_period
        self._stale_callback = stale_callback

    def record_heartbeat(self, trial_id: int) -> None:
        self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            last = trial.system_attrs.get(HEARTBEAT_ATTR)
            if last is None and trial.datetime_start is not None:
                last = trial.datetime_start.timestamp()
            if last is not None and now - last > self._grace_period:
                stale.append(trial._trial_id)
        return stale

    def get_heartbeat_interval(self) -> int | None:
        return self._heartbeat_interval

    def get_heartbeat_stale_trial_callback(self) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return self._stale_callback


def open_storage(url: str, heartbeat_interval: int = DEFAULT_HEARTBEAT_S,
                 grace_period: int = DEFAULT_GRACE_S) -> BaseStorage:
    """Open a storage URL: a journal file (``journal:///abs/path.log`` or a path) or an RDB URL.

    Stale trials (no heartbeat for ``grace_period`` s) are failed and retried up to MAX_RETRY times.
    """
    with warnings.catch_warnings():  # experimental since Optuna 2.8, and the only retry callback there is
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("", "journal", "file"):
        path = Path(url.split("://", 1)[1] if scheme else url).expanduser()
        if not str(path) or str(path) in (".", "/"):
            raise UserError(f"storage URL {mask_url(url)!r} names no file", "use e.g. journal:///path/to/study.log")
        if path.exists() and path.is_dir():
            raise UserError(f"storage path {path} is a directory", "name a file inside it, e.g. study.log")
        if not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and not os.access(path, os.R_OK | os.W_OK):
            raise UserError(f"storage file {path} is not readable and writable", "fix its permissions or pick another")
        return HeartbeatJournalStorage(path, heartbeat_interval, grace_period, retry)
    if scheme.split("+", 1)[0] not in RDB_SCHEMES:
        raise UserError(
            f"storage URL {mask_url(url)!r} has an unknown scheme {scheme!r}",
            "use a journal file (journal:///abs/path/study.log or a path ending in .log) "
            "or an RDB URL (postgresql://user:pass@host/db, sqlite:///file.db)",
        )
    try:
        return RDBStorage(url, heartbeat_interval=heartbeat_interval, grace_period=grace_period,
                          heartbeat_stale_trial_callback=retry, engine_kwargs=_engine_kwargs(scheme))
    except ImportError as error:
        raise UserError(f"the database driver for {scheme!r} is not installed ({error.name})",
                        f"install it into the environment, e.g. pip install {_driver_hint(scheme)}") from None
    except Exception as error:  # sqlalchemy's OperationalError & co: unreachable, bad credentials
        message = mask_url(str(error).splitlines()[0] if str(error) else type(error).__name__)
        raise UserError(f"cannot open storage {mask_url(url)!r}: {message}",
                        "check that the database server is running and the URL (host, port, user, database) is right") from None


def _engine_kwargs(scheme: str) -> dict:
    """Fail fast on an unreachable server instead of hanging."""
    if scheme.startswith("postgres"):
        return {"connect_args": {"connect_timeout": 10}}
    return {}


def _driver_hint(scheme: str) -> str:
    return {"postgresql": "psycopg2-binary", "postgres": "psycopg2-binary", "mysql": "pymysql"}.get(
        scheme.split("+", 1)[0], "the SQLAlchemy driver for your database")
