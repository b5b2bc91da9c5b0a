"""Where studies live: an embedded journal file by default, an RDB URL for many machines, opened here.

The journal file (Optuna's JournalFileBackend, kept whole by search/journal.py) needs no server and is safe for
several local worker processes; both kinds get a heartbeat (search/heartbeat.py), so a killed worker's trial is
failed and retried. A storage that fails to open, or fails mid-search, is one UserError whose text never holds
the URL's password (search/storage_urls.py).
"""

from __future__ import annotations

import contextlib
import copy
import os
import time
import warnings
from collections.abc import Iterator

import optuna
from optuna.storages import BaseStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial

from indexnas.errors import UserError
from indexnas.search import record
from indexnas.search.heartbeat import HEARTBEAT_ATTR, HeartbeatJournalStorage, HeartbeatRDBStorage
from indexnas.search.locks import FileLock
from indexnas.search.settings import DEFAULT_GRACE_S, DEFAULT_HEARTBEAT_S
from indexnas.search.storage_urls import locate_storage, mask_text, mask_url

MAX_RETRY = 3


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
    record.drop(clean, record.FAILURE)
    clean.system_attrs.pop(HEARTBEAT_ATTR, None)
    with warnings.catch_warnings():  # experimental since Optuna 2.8, and the only retry callback there is
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)(study, clean)


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
            return HeartbeatJournalStorage(path, FileLock(path.with_name(path.name + ".flock")), heartbeat_interval,
                                           grace_period, retry_stale_trial)
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
