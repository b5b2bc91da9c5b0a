"""Heartbeat storages: a killed worker's trial is failed (and queued again) instead of staying RUNNING forever.

Optuna's journal file storage has no heartbeat; `HeartbeatJournalStorage` adds the one Optuna's RDB storage has
(a system attribute per running trial). Both record why a stale trial failed (``failure`` = worker_lost).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import JournalStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState

from indexnas.search import record
from indexnas.search.journal import SafeJournalBackend
from indexnas.search.optuna_private import BaseHeartbeat, BaseJournalFileLock, trial_id_of
from indexnas.search.record import TrialRecord

log = logging.getLogger("indexnas.search")
HEARTBEAT_ATTR = "indexnas:heartbeat"
LOST_WORKER = "worker_lost"  # failure kind of a trial whose worker stopped sending heartbeats


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
            worker = TrialRecord.of(trial).get(record.WORKER, "unknown worker")
            message = (f"no heartbeat from {worker} for over {self._grace_period:g} s: the worker process was killed "
                       "or lost; the trial was failed and queued again")
            try:
                record.write_stored(self, trial_id, record.FAILURE, {"kind": LOST_WORKER, "message": message})
            except UpdateFinishedTrialError:  # finished meanwhile: another worker failed it, or it completed
                pass
        return trial_ids


class HeartbeatJournalStorage(_RecordsLostWorkers, JournalStorage, BaseHeartbeat):
    """A journal-file storage whose running trials record a heartbeat as a system attribute."""

    def __init__(self, path: Path, lock: BaseJournalFileLock, heartbeat_interval: float, grace_period: float,
                 stale_callback: Callable[[optuna.Study, FrozenTrial], None] | None) -> None:
        self.path = path
        super().__init__(SafeJournalBackend(path, lock))
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
                stale.append(trial_id_of(trial))
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
