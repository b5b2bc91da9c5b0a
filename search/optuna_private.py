"""Every use of Optuna's private API in the project, each with why it is needed (Optuna 5).

Optuna offers no public way to reach a study's storage, a trial's storage id, the order waiting trials start
in, or the interfaces its heartbeat and journal lock hooks look for; the search needs each of them. Keeping
them here means an Optuna upgrade is checked in one file; tests/contracts/test_optuna_private.py fails when
another module touches them.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.storages._cached_storage import _CachedStorage
# The heartbeat hook Optuna's optimize loop looks for (`is_heartbeat_enabled`): search/heartbeat.py's journal
# storage implements it, as Optuna's RDB storage does.
from optuna.storages._heartbeat import BaseHeartbeat
# The lock interface JournalFileBackend takes, and the context manager that holds one: the search's flock lock
# (search/locks.py) and its journal backend (search/journal.py) use them.
from optuna.storages.journal._file import BaseJournalFileLock, get_lock_file
from optuna.trial import FrozenTrial, TrialState

__all__ = ["BaseHeartbeat", "BaseJournalFileLock", "get_lock_file", "pop_waiting_in_order", "storage_of",
           "study_id_of", "trial_id_of", "uncached"]


def storage_of(study: optuna.Study) -> BaseStorage:
    """The study's storage (``Study._storage``): the study lock, the join count and a trial's retry need it."""
    return study._storage


def study_id_of(study: optuna.Study) -> int:
    """The study's id in its storage (``Study._study_id``), which the storage's study attributes are keyed by."""
    return study._study_id


def trial_id_of(trial: optuna.Trial | FrozenTrial) -> int:
    """The trial's id in its storage (``_trial_id``), which storage calls (heartbeat, state) are keyed by."""
    return trial._trial_id


def uncached(storage: BaseStorage) -> BaseStorage:
    """The storage under Optuna's caching layer (``_CachedStorage._backend``), which optuna.load_study and
    create_study wrap around an RDBStorage: the study lock depends on the database behind it."""
    return storage._backend if isinstance(storage, _CachedStorage) else storage


def pop_waiting_in_order(study: optuna.Study, key: Callable[[FrozenTrial], Any]) -> None:
    """Make this study object start its waiting trials in ``key`` order rather than by trial number.

    Replaces ``Study._pop_waiting_trial_id`` (the only hook into which waiting trial a new trial takes) on
    this object only; Optuna 5 takes the lowest trial number (see search/workers.py's `pop_in_place`).
    """

    def pop(self: optuna.Study) -> int | None:
        waiting = self._storage.get_all_trials(self._study_id, deepcopy=False, states=(TrialState.WAITING,))
        for trial in sorted(waiting, key=key):
            try:  # another worker may take it first: then try the next
                if self._storage.set_trial_state_values(trial._trial_id, state=TrialState.RUNNING):
                    return trial._trial_id
            except UpdateFinishedTrialError:
                continue
        return None

    study._pop_waiting_trial_id = types.MethodType(pop, study)  # type: ignore[method-assign]
