"""Worker processes of one search, and what a signal does to them.

SIGTERM or SIGINT (Ctrl-C) to ``indexnas search`` reaches every worker: each fails its running trial at
once with the reason ``interrupted``, queues it again in its place, and exits without a traceback; the
command then says how to resume. A trial queued again (interrupted, or its worker lost) is started
before the rest of the queue, so the host's or a paper configuration's retry is never left behind.
"""

from __future__ import annotations

import copy
import logging
import multiprocessing
import os
import signal
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial

from indexnas.search import record
from indexnas.search.optuna_private import pop_waiting_in_order, storage_of, trial_id_of
from indexnas.search.storage import retry_stale_trial, storage_faults

log = logging.getLogger("indexnas.search")
INTERRUPTED = "interrupted"  # failure kind of a trial stopped by a signal
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(KeyboardInterrupt):
    """A stop signal: a KeyboardInterrupt, so Optuna fails the trial and the CLI exits without a traceback."""

    def __init__(self, signum: int) -> None:
        self.signame = signal.Signals(signum).name
        super().__init__(f"stopped by {self.signame}")


@contextmanager
def interruptible() -> Iterator[None]:
    """SIGTERM and SIGINT raise Interrupted once; a second signal (Ctrl-C reaches a worker from the terminal
    and from its parent) is ignored while the first is being handled."""

    def stop(signum: int, _frame: types.FrameType | None) -> None:
        for each in SIGNALS:
            signal.signal(each, signal.SIG_IGN)
        raise Interrupted(signum)

    previous = {signum: signal.signal(signum, stop) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def requeue_when_interrupted(objective: Callable[[optuna.Trial], Any]) -> Callable[[optuna.Trial], Any]:
    """The objective, which on a signal records the reason ``interrupted`` and queues the trial again."""

    def run(trial: optuna.Trial) -> Any:
        try:
            return objective(trial)
        except KeyboardInterrupt as stop:
            reason = str(stop) or "stopped by SIGINT"
            message = f"{reason} while it ran; queued again, and run first when the search resumes"
            frozen = copy.deepcopy(storage_of(trial.study).get_trial(trial_id_of(trial)))
            retry_stale_trial(trial.study, frozen)
            try:
                record.write(trial, record.FAILURE, {"kind": INTERRUPTED, "message": message})
            except UpdateFinishedTrialError:  # failed as lost by another worker meanwhile
                pass
            log.warning("trial %d: %s", trial.number, message)
            raise

    return run


def queue_position(trial: FrozenTrial) -> int:
    """Where a waiting trial stands in the queue: a retry at the place of the trial it repeats."""
    history = trial.system_attrs.get("retry_history")
    return history[0] if history else trial.number


def pop_in_place(study: optuna.Study) -> None:
    """Make the study start waiting trials in queue order (`queue_position`) rather than by trial number
    (Optuna 5 takes the lowest trial number, which puts every retry behind the whole paper grid)."""
    pop_waiting_in_order(study, key=lambda trial: (queue_position(trial), trial.number))


def run_workers(target: Callable[..., None], settings: dict[str, Any], count: int, *extra: Any) -> None:
    """Start ``count`` spawned processes running ``target(settings, index, *extra)``, forward SIGTERM/SIGINT to them,
    wait for all; raise Interrupted once they are done if a signal came."""
    spawn = multiprocessing.get_context("spawn")
    processes = [spawn.Process(target=target, args=(settings, index, *extra), daemon=False) for index in range(count)]
    received: list[int] = []

    def forward(signum: int, _frame: types.FrameType | None) -> None:
        received.append(signum)
        for process in processes:
            if process.pid is not None and process.exitcode is None:
                os.kill(process.pid, signum)

    previous = {signum: signal.signal(signum, forward) for signum in SIGNALS}
    try:
        for process in processes:
            if not received:
                process.start()
        for process in processes:
            if process.pid is not None:
                process.join()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received:
        raise Interrupted(received[0])
    for index, process in enumerate(processes):
        if process.exitcode:
            log.error("worker %d exited with status %s; the others went on", index, process.exitcode)


@contextmanager
def worker_process(storage_url: str) -> Iterator[None]:
    """In a worker: Optuna's own failure messages off (the worker reports each failed trial once), a lost
    storage reported as one UserError, and a signal ending the process quietly after its trial was
    failed and queued again."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with interruptible(), storage_faults(storage_url):
            yield
    except KeyboardInterrupt:
        raise SystemExit(130) from None
