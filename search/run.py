"""Run a search: per-stage IndexNet choices weighed against parameters and FLOPs.

One process (or one per worker, or one per machine sharing an RDB storage) runs the scheduling loop
(search/schedule.py); every trial (search/trial.py) fine-tunes the warm-started host with one IndexNet
configuration and stores its recipe, metrics, costs and timing. A trial's failure is the trial's: the study
records it and goes on. A caller may end the run early between trials (``stop``).
"""

from __future__ import annotations

import logging
import os
import pickle
import sys
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from indexnas.errors import UserError
from indexnas.search import oneshot
from indexnas.search.checkpoints import keep_pareto_checkpoints
from indexnas.search.context import prepare
from indexnas.search.preflight import check_settings
from indexnas.search.problem import Problem, ProblemFactory
from indexnas.search.retrain import retrain_front
from indexnas.search.samplers import make_sampler
from indexnas.search.schedule import StopCondition, counts, work
from indexnas.search.settings import SearchSettings
from indexnas.search.storage_urls import locate_storage
from indexnas.search.study import check_resumable, open_study, settings_storage
from indexnas.search.workers import run_workers, worker_process

log = logging.getLogger("indexnas.search")


def run_search(settings: SearchSettings, problem: Problem | ProblemFactory,
               stop: StopCondition | None = None) -> optuna.Study:
    """Create or resume the study, enqueue the paper's grid, run the workers, keep Pareto weights.

    ``problem``: what to search on, or a picklable factory that builds it from the settings in each process
    (the CLI passes `indexnas.tasks.TaskProblem`, so a worker builds its own data instead of receiving it).
    ``stop``: asked with the study before each trial would start; True ends the run there (each worker's
    loop: it must pickle when there are several), and the front is retrained and its weights kept as after
    a full run. Everything a user can get wrong (storage URL, resuming with other settings, model, data) is
    checked before anything is written, so a failed command leaves existing studies and runs as they were.
    """
    check_settings(settings)
    location = locate_storage(settings.storage)
    if settings.workers > 1:
        check_picklable(problem, stop)
    storage = None
    if location.journal is None or location.journal.exists():  # an existing study must agree before any work
        storage = settings_storage(settings)
        check_resumable(storage, settings)
    context = prepare(settings, problem)
    study = open_study(storage or settings_storage(settings), settings, context)
    if settings.strategy == "oneshot":  # the supernet's front becomes the queue and bounds settings.trials
        oneshot.enqueue_front(study, context)
    report_queue(study, settings.trials)
    if settings.workers == 1:
        work(study, context, stop=stop)
    else:
        run_workers(_worker_main, settings.to_dict(), settings.workers, problem, stop)
    retrain_front(study, context)
    keep_pareto_checkpoints(study, settings.out_dir)
    return study


def check_picklable(*sent: object) -> None:
    """Worker processes are spawned: what they are sent (the problem's model and callables, the stop hook) must
    pickle, or no worker could start."""
    try:
        pickle.dumps(sent)
    except (TypeError, AttributeError, pickle.PicklingError) as error:
        raise UserError(f"the search's model and callables cannot be sent to worker processes: {error}",
                        "define train and evaluate at the top level of a module (not lambdas or local "
                        "functions), or run with workers=1") from None


def _worker_main(settings: dict[str, Any], index: int, problem: Problem | ProblemFactory,
                 stop: StopCondition | None) -> None:
    """One worker process: its own GPU when there are several, the shared study otherwise."""
    if torch.cuda.is_available() and torch.cuda.device_count() > 1:
        torch.cuda.set_device(index % torch.cuda.device_count())
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(settings["workers"])))
    worker_settings = SearchSettings(**{**settings, "progress": False})
    try:
        with worker_process(worker_settings.storage):
            context = prepare(worker_settings, problem)
            study = optuna.load_study(study_name=worker_settings.study, storage=settings_storage(worker_settings),
                                      sampler=make_sampler(worker_settings, space=context.space))
            work(study, context, stop=stop)
    except UserError as error:  # one message, as the command line prints it, not a worker's traceback
        log.error("worker %d: %s", index, error)
        sys.exit(2)


def report_queue(study: optuna.Study, wanted: int) -> None:
    """Say how many enqueued (paper grid) configurations this run's --trials leaves for a later one."""
    state = counts(study)
    left = state[TrialState.WAITING] - max(0, wanted - state[TrialState.COMPLETE] - state[TrialState.RUNNING])
    if left > 0:
        log.info("%d trials requested, %d complete: %d of the paper grid's queued configurations remain queued "
                 "(run again with a larger --trials to run them first)", wanted, state[TrialState.COMPLETE], left)
