"""Scheduling a study's trials: when a worker starts one, waits for running ones, or stops, and the loop that
does so under the study lock, so that workers sharing a study never run more trials than requested."""

from __future__ import annotations

import gc
import logging
import time
import warnings
from collections.abc import Callable

import optuna
import torch
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from indexnas.search import halving, record
from indexnas.search.checkpoints import keep_pareto_checkpoints
from indexnas.search.context import SearchContext
from indexnas.search.locks import StudyLock, study_lock
from indexnas.search.optuna_private import storage_of, study_id_of
from indexnas.search.samplers import make_sampler
from indexnas.search.summary import Progress
from indexnas.search.trial import TrialFailure, TrialRun
from indexnas.search.workers import pop_in_place, requeue_when_interrupted

log = logging.getLogger("indexnas.search")
MAX_FAILURES_FACTOR = 1  # stop after max(5, trials) failed trials: something is wrong with the setup
MAX_PRUNED_FACTOR = 20  # over-budget configurations cost no training, but the sampler must find others
# The public stop hook (`run_search(..., stop=)`): given the study between trials, True ends the run there.
StopCondition = Callable[[optuna.Study], bool]


def counts(study: optuna.Study) -> dict[TrialState, int]:
    """How many of the study's trials are in each state."""
    trials = study.get_trials(deepcopy=False)
    return {state: sum(t.state == state for t in trials) for state in TrialState}


def count_over_budget(study: optuna.Study) -> int:
    """Trials pruned before training because their configuration was over a budget (not those pruned at a rung)."""
    return sum(not halving.rung_pruned(t) for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)))


def next_step(state: dict[TrialState, int], wanted: int, over: int | None = None) -> str:
    """What a worker does next: "start" a trial, "wait" for running ones, or "stop" (and why).

    ``over``: the PRUNED trials that were over budget (`count_over_budget`; None: all of them). Trials pruned at a
    rung trained and were stopped early: they count toward neither that limit nor the completed trials."""
    done, running = state[TrialState.COMPLETE], state[TrialState.RUNNING]
    over = state[TrialState.PRUNED] if over is None else over
    if done >= wanted:
        return "stop"
    if state[TrialState.FAIL] >= max(5, wanted * MAX_FAILURES_FACTOR) and state[TrialState.WAITING] == 0:
        log.error("stopping: %d trials failed; see `indexnas report` for their reasons", state[TrialState.FAIL])
        return "stop"
    if over >= wanted * MAX_PRUNED_FACTOR:
        log.error("stopping: %d configurations were over budget; relax --max-params/--max-gflops", over)
        return "stop"
    if done + running >= wanted:
        return "wait"  # the running trials would complete the study; one may die and be queued again
    return "start"


def work(study: optuna.Study, context: SearchContext, lock: StudyLock | None = None,
         stop: StopCondition | None = None) -> None:
    """Run trials until the study holds exactly the requested number of completed ones, or ``stop`` says so.

    A trial may start only while completed + running < requested, and the check and the start happen
    under the study lock, so workers never overshoot. A killed worker's trial stays RUNNING until its
    heartbeat is ``grace_period`` old; then it is failed and queued again, and a waiting worker runs it.
    ``stop`` is asked before each trial would start: True ends this worker's loop there, cleanly.
    """
    wanted = context.settings.trials
    lock = lock or study_lock(storage_of(study), study.study_name)
    with lock:  # every process working on the study samples from its own seed, or they would repeat each other
        study.sampler = make_sampler(context.settings, seed_offset=_join(study), space=context.space)
    pop_in_place(study)  # a retry runs in the place of the trial it repeats
    started = _StartedTrial(TrialRun(context), lock)
    progress = Progress(study, wanted)
    waiting = False
    while stop is None or not stop(study):
        lock.acquire()
        try:
            state = counts(study)
            step = next_step(state, wanted, count_over_budget(study))
            if step == "start":
                study.optimize(started, n_trials=1, catch=(TrialFailure,), gc_after_trial=False)
                if started.objective.trained:  # a trained model's cycles (and GPU memory) go before the next trial
                    gc.collect()  # (not after a configuration pruned over budget: nothing was built to train)
        except UpdateFinishedTrialError as error:  # failed as stale by another worker while it still ran
            log.warning("a trial of this worker was declared lost (no heartbeat for %g s) and queued again; its "
                        "result is discarded: %s", context.settings.grace_period, error)
        finally:
            lock.release()
        if step == "stop":
            return
        if step == "wait":
            if not waiting:
                log.info("waiting for %d running trial(s); one whose worker is gone is queued again after %g s "
                         "without a heartbeat", state[TrialState.RUNNING], context.settings.grace_period)
            waiting = True
            time.sleep(min(1.0, context.settings.heartbeat_interval))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
            continue
        waiting = False
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # a trial that ran out of memory leaves its blocks cached
        keep_pareto_checkpoints(study, context.settings.out_dir)
        progress.report()


def _join(study: optuna.Study) -> int:
    """How many processes worked on the study before this one (call under the study lock)."""
    storage, study_id = storage_of(study), study_id_of(study)
    joined = storage.get_study_system_attrs(study_id).get(record.JOINED, 0)
    storage.set_study_system_attr(study_id, record.JOINED, joined + 1)
    return joined


class _StartedTrial:
    """The objective as `work` hands it to Optuna: once Optuna calls it, the trial exists (RUNNING),
    so the study lock taken to claim the slot is handed back before the trial's long work."""

    def __init__(self, objective: TrialRun, lock: StudyLock) -> None:
        self.objective = objective
        self.run = requeue_when_interrupted(objective)  # a signal fails the trial as `interrupted` and re-queues it
        self.lock = lock

    def __call__(self, trial: optuna.Trial) -> tuple[float, ...]:
        self.lock.release()
        return self.run(trial)
