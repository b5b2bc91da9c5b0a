"""Run a study: per-stage IndexNet choices weighed against parameters and FLOPs.

One process (or one per worker, or one per machine sharing an RDB storage) runs `work`; every
trial fine-tunes the warm-started host with one IndexNet configuration and stores its recipe,
metrics, costs and timing. A trial's failure is the trial's: the study records it and goes on.
What is searched on is a `search.problem.Problem`: a built-in task (the CLI) or a user's model with
their own train/evaluate callables (`indexnas.search`); both run through this one study.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import logging
import os
import pickle
import socket
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import optuna
import torch
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState
from torch import nn

from indexnas.seeding import seed_everything
from indexnas.version import __version__
from indexnas.errors import UserError, describe
from indexnas.spec import IndexSpec, paper_variants
from indexnas.search import cache, halving, objectives, oneshot, scoring
from indexnas.search import pair_space
from indexnas.search.problem import Budget, DivergedError, MetricNotFinite, Problem, ProblemFactory, check_metrics
from indexnas.search.retrain import retrain_front
from indexnas.search.preflight import check_settings
from indexnas.search.settings import SearchSettings
from indexnas.search.space import SearchSpace
from indexnas.search.summary import Progress, describe_choices
from indexnas.search.storage import StudyLock, locate_storage, mask_url, open_storage, study_lock
from indexnas.search.weights import load_warm_host, save_or_stop
from indexnas.search.workers import pop_in_place, requeue_when_interrupted, run_workers, worker_process

log = logging.getLogger("indexnas.search")
ATTR = "indexnas"  # the study-level user attribute holding settings, pairs and host figures
JOINED_ATTR = "indexnas:processes"  # study system attribute: processes that have worked on it (sampler seeds)
MAX_FAILURES_FACTOR = 1  # stop after max(5, trials) failed trials: something is wrong with the setup
MAX_PRUNED_FACTOR = 20  # over-budget configurations cost no training, but the sampler must find others
CHECKPOINT_FORMAT = "indexnas-model"  # a trial's weights with everything `indexnas.load` needs to rebuild it


class TrialFailure(Exception):
    """A trial that could not produce a result (diverged, out of memory, model error)."""


@dataclass
class SearchContext:
    """What every trial of one worker shares: the problem (host, training, scoring) and the analysed host."""

    settings: SearchSettings
    problem: Problem
    space: SearchSpace  # the host analysed once per worker; each trial rewrites a copy
    host_summary: dict[str, Any]

    @property
    def pairs(self) -> list[dict[str, Any]]:
        return self.space.rewritable_pairs

    @property
    def spaces(self) -> list[pair_space.PairSpace]:
        return self.space.spaces

    def train_configuration(self, choices: dict[str, str], seed: int, label: str) -> tuple[dict[str, Any], float,
                                                                                          dict[str, float]]:
        """Fine-tune the warm host rewritten with ``choices`` as a trial does (its IndexNets initialised and
        its batches drawn from ``seed``): (what the training reports, its seconds, the checked metrics)."""
        seed_everything(seed)
        model = self.space.rewrite(choices).model
        seed_everything(seed)
        return train_and_score(self.problem, model, dataclasses.replace(budget(self.settings, label), seed=seed))


def run_search(settings: SearchSettings, problem: Problem | ProblemFactory) -> optuna.Study:
    """Create or resume the study, enqueue the paper's grid, run the workers, keep Pareto weights.

    ``problem``: what to search on, or a picklable factory that builds it from the settings in each process
    (the CLI passes `indexnas.tasks.TaskProblem`, so a worker builds its own data instead of receiving it).
    Everything a user can get wrong (storage URL, resuming with other settings, model, data) is
    checked before anything is written, so a failed command leaves existing studies and runs as they were.
    """
    check_settings(settings)
    location = locate_storage(settings.storage)
    if settings.workers > 1:
        check_picklable(problem)
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
        work(study, context)
    else:
        run_workers(_worker_main, settings.to_dict(), settings.workers, problem)
    retrain_front(study, context)
    keep_pareto_checkpoints(study, settings.out_dir)
    return study


def check_picklable(problem: Problem | ProblemFactory) -> None:
    """Worker processes are spawned: the problem (model, callables) must pickle, or no worker could start."""
    try:
        pickle.dumps(problem)
    except (TypeError, AttributeError, pickle.PicklingError) as error:
        raise UserError(f"the search's model and callables cannot be sent to worker processes: {error}",
                        "define train and evaluate at the top level of a module (not lambdas or local "
                        "functions), or run with workers=1") from None


def _worker_main(settings: dict[str, Any], index: int, problem: Problem | ProblemFactory) -> None:
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
            work(study, context)
    except UserError as error:  # one message, as the command line prints it, not a worker's traceback
        log.error("worker %d: %s", index, error)
        sys.exit(2)


def settings_storage(settings: SearchSettings) -> optuna.storages.BaseStorage:
    """The study's storage with the settings' heartbeat interval and grace period."""
    return open_storage(settings.storage, settings.heartbeat_interval, settings.grace_period)


def make_sampler(settings: SearchSettings, seed_offset: int = 0,
                 space: SearchSpace | None = None) -> optuna.samplers.BaseSampler:
    """The study's sampler; ``space`` (the analysed host) is needed by ``frontier``, which prices configurations."""
    seed = settings.seed + seed_offset
    if settings.sampler == "frontier":
        if space is None:
            raise ValueError("the frontier sampler needs the analysed host (space=)")
        from indexnas.search.frontier import FrontierSampler

        return FrontierSampler(space, seed=seed, max_params=settings.max_params)
    if settings.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    with warnings.catch_warnings():  # `group` is experimental in Optuna; we rely on it knowingly
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # constant liar: other processes (this command's workers, or other machines) may be running trials
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True)


def prepare(settings: SearchSettings, problem: Problem | ProblemFactory) -> SearchContext:
    """Build the problem (a factory is called with the settings), check it, analyse its host once, warm-start it."""
    if not isinstance(problem, Problem):
        problem = problem(settings)
    problem.check()
    space = SearchSpace(problem.host, problem.example, settings.mode, name=settings.model)
    host_summary = warm_start(settings, problem)
    problem.host.cpu()  # trials copy the host with its analysed graph, which runs on the example input's device
    return SearchContext(settings, problem, space, host_summary)


def warm_start(settings: SearchSettings, problem: Problem) -> dict[str, Any]:
    """Train the host once (or load the cached weights) so that every trial is a fine-tune."""
    path = settings.out_dir / "host.pt"
    if not settings.warm_start:
        return {"trained": False}
    if path.exists():
        return load_warm_host(path, settings, problem.host)
    try:
        log.info("training the host once (%d steps); every trial fine-tunes from its weights", settings.budget_steps)
        facts, train_seconds, metrics = train_and_score(problem, problem.host, budget(settings, "host"))
    except UserError:
        raise
    except Exception as error:  # the user's model fails on the data: no trial can succeed
        kind = ("diverged" if isinstance(error, DivergedError) else
                "ran out of memory" if is_out_of_memory(error) else "failed")
        raise UserError(f"training the host {settings.model} {kind}: {describe(error)}",
                        problem.host_failure_fix()) from error
    summary = {"trained": True, "metrics": metrics, "train_seconds": train_seconds, "steps": facts.get("steps"),
               "item_scores": getattr(problem, "item_scores", {})}
    save_or_stop({"state_dict": problem.host.state_dict(), "summary": summary, "identity": settings.identity()}, path,
                 "the warm host")
    return summary


def train_and_score(problem: Problem, model: nn.Module, limit: Budget) -> tuple[dict[str, Any], float, dict[str, float]]:
    """Train ``model`` within ``limit``, then evaluate it: (what the training reports, its seconds, the checked
    metrics). The warm host and every trial go through this one sequence."""
    start = time.perf_counter()
    facts = problem.train(model, limit) or {}
    seconds = time.perf_counter() - start
    return facts, seconds, check_metrics(problem.evaluate(model), problem.directions)


def budget(settings: SearchSettings, label: str) -> Budget:
    """A trial's (or the host's) training budget from the settings."""
    return Budget(settings.budget_steps, settings.budget_seconds, label, settings.progress)


def trial_budget(settings: SearchSettings, trial: optuna.Trial, seed: int,
                 reports: halving.RungReports | None) -> Budget:
    """Trial ``trial``'s budget: its own seed, and the rung steps it reports at when the search prunes."""
    limit = dataclasses.replace(budget(settings, f"trial {trial.number}"), seed=seed)
    if reports is None:
        return limit
    return dataclasses.replace(limit, rungs=halving.rung_steps(settings.budget_steps, settings.rungs), report=reports)


def check_rungs_reported(limit: Budget, facts: dict[str, Any]) -> None:
    """A trial that trained past a rung without reporting it: the problem's train() cannot take part in pruning."""
    if not limit.rungs or limit.report is None:
        return
    passed = [step for step in limit.rungs if step < facts.get("steps", limit.steps or 0)]
    if passed and not limit.report.scores:
        raise UserError(f"pruning needs the training to report its metrics at the rung steps "
                        f"({', '.join(map(str, limit.rungs))}), and train() did not",
                        "call budget.report(step, metrics) in train() after each step in budget.rungs (metrics as "
                        "evaluate() returns them), or search with prune='off'")


def open_study(storage: optuna.storages.BaseStorage, settings: SearchSettings, context: SearchContext) -> optuna.Study:
    """Create the study with its settings, or resume it after checking the settings agree.

    Under the study lock, so that workers starting together create it and enqueue its grid once.
    """
    with study_lock(storage, settings.study):
        if _stored_settings(storage, settings.study) is not None:
            check_resumable(storage, settings)
            return optuna.load_study(study_name=settings.study, storage=storage,
                                     sampler=make_sampler(settings, space=context.space))
        metrics = context.problem.directions
        study = optuna.create_study(storage=storage, study_name=settings.study,
                                    directions=objectives.directions(objectives.parse(settings.objectives), metrics),
                                    sampler=make_sampler(settings, space=context.space), load_if_exists=True)
        with warnings.catch_warnings():  # experimental in Optuna: names the objectives in optuna-dashboard
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(objective_names(context.problem, settings))
        study.set_user_attr(ATTR, study_attrs(settings, context))
        if settings.paper_grid and settings.strategy == "trials":  # oneshot queues the supernet's front instead
            enqueue_paper_grid(study, context)
        return study


def _stored_settings(storage: optuna.storages.BaseStorage, name: str) -> dict[str, Any] | None:
    """The settings an existing study was created with (None when there is no such study yet)."""
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return None
    return storage.get_study_user_attrs(study_id).get(ATTR, {}).get("settings")


def check_resumable(storage: optuna.storages.BaseStorage, settings: SearchSettings) -> None:
    """Refuse to resume a study that was run with other settings (it would mix their results)."""
    saved = _stored_settings(storage, settings.study)
    if saved is None:
        return
    stored = SearchSettings.stored_identity(saved)
    differences = {k: (stored[k], v) for k, v in settings.identity().items() if stored[k] != v}
    if differences:
        listed = "; ".join(f"{k}: stored {a!r}, now {b!r}" for k, (a, b) in differences.items())
        raise UserError(f"study {settings.study!r} in {mask_url(settings.storage)} was run with other settings ({listed})",
                        "resume it with the same settings, or pass a new --study name")


def objective_names(problem: Problem, settings: SearchSettings) -> list[str]:
    """The study's objectives in value order (search.objectives): the searched metrics, then by default
    parameters added; GFLOPs too when asked for."""
    return objectives.stored_names(objectives.parse(settings.objectives), problem.directions)


def study_attrs(settings: SearchSettings, context: SearchContext) -> dict[str, Any]:
    metric, direction = next(iter(context.problem.directions.items()))
    return {
        "settings": {**settings.to_dict(), "storage": mask_url(settings.storage)},
        "task": settings.task, "model": settings.model, "mode": settings.mode, "budget_steps": settings.budget_steps,
        "primary_metric": metric, "direction": direction, "directions": context.problem.directions,
        "objectives": objective_names(context.problem, settings), "source": context.problem.source,
        "pairs": context.pairs, "host": context.host_summary,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "indexnas_version": __version__, "seed": settings.seed,
    }


def enqueue_paper_grid(study: optuna.Study, context: SearchContext) -> list[str]:
    """Enqueue the untouched host and each of the paper's 15 uniform configurations the pairs allow."""
    enqueued = []
    for label, choice in [("host", IndexSpec("keep")), *((str(s), s) for s in paper_variants())]:
        params = pair_space.params_for(pair_space.uniform(context.spaces, choice), context.spaces)
        if params is None:
            log.info("paper configuration %s is not allowed at every pair; not enqueued", label)
            continue
        study.enqueue_trial(params, user_attrs={"uniform": label}, skip_if_exists=True)
        enqueued.append(label)
    return enqueued


def report_queue(study: optuna.Study, wanted: int) -> None:
    """Say how many enqueued (paper grid) configurations this run's --trials leaves for a later one."""
    state = counts(study)
    left = state[TrialState.WAITING] - max(0, wanted - state[TrialState.COMPLETE] - state[TrialState.RUNNING])
    if left > 0:
        log.info("%d trials requested, %d complete: %d of the paper grid's queued configurations remain queued "
                 "(run again with a larger --trials to run them first)", wanted, state[TrialState.COMPLETE], left)


def counts(study: optuna.Study) -> dict[TrialState, int]:
    trials = study.get_trials(deepcopy=False)
    return {state: sum(t.state == state for t in trials) for state in TrialState}


def over_budget(study: optuna.Study) -> int:
    """Trials pruned before training because their configuration was over a budget (not those pruned at a rung)."""
    return sum(not halving.rung_pruned(t) for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)))


def next_step(state: dict[TrialState, int], wanted: int, over: int | None = None) -> str:
    """What a worker does next: "start" a trial, "wait" for running ones, or "stop" (and why).

    ``over``: the PRUNED trials that were over budget (`over_budget`; None: all of them). Trials pruned at a
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


def work(study: optuna.Study, context: SearchContext, lock: StudyLock | None = None) -> None:
    """Run trials until the study holds exactly the requested number of completed ones.

    A trial may start only while completed + running < requested, and the check and the start happen
    under the study lock, so workers never overshoot. A killed worker's trial stays RUNNING until its
    heartbeat is ``grace_period`` old; then it is failed and queued again, and a waiting worker runs it.
    """
    wanted = context.settings.trials
    lock = lock or study_lock(study._storage, study.study_name)
    with lock:  # every process working on the study samples from its own seed, or they would repeat each other
        study.sampler = make_sampler(context.settings, seed_offset=_join(study), space=context.space)
    pop_in_place(study)  # a retry runs in the place of the trial it repeats
    started = _StartedTrial(Objective(context), lock)
    progress = Progress(study, wanted)
    waiting = False
    while True:
        lock.acquire()
        try:
            state = counts(study)
            step = next_step(state, wanted, over_budget(study))
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
    storage, study_id = study._storage, study._study_id
    joined = storage.get_study_system_attrs(study_id).get(JOINED_ATTR, 0)
    storage.set_study_system_attr(study_id, JOINED_ATTR, joined + 1)
    return joined


class _StartedTrial:
    """The objective as `work` hands it to Optuna: once Optuna calls it, the trial exists (RUNNING),
    so the study lock taken to claim the slot is handed back before the trial's long work."""

    def __init__(self, objective: Objective, lock: StudyLock) -> None:
        self.objective = objective
        self.run = requeue_when_interrupted(objective)  # a signal fails the trial as `interrupted` and re-queues it
        self.lock = lock

    def __call__(self, trial: optuna.Trial) -> tuple[float, ...]:
        self.lock.release()
        return self.run(trial)


class Objective:
    """One trial: rewrite the warm host, check the budget, fine-tune, evaluate, store everything."""

    def __init__(self, context: SearchContext) -> None:
        self.context = context
        self.trained = False  # whether the last trial got past the budget gate into training

    def __call__(self, trial: optuna.Trial) -> tuple[float, ...]:

        ctx, settings, problem = self.context, self.context.settings, self.context.problem
        self.trained = False
        trial.set_user_attr("worker", f"{socket.gethostname()}-{os.getpid()}")
        seed = scoring.trial_seed(settings.seed, trial.number)
        trial.set_user_attr("seed", seed)
        seed_everything(seed)  # the IndexNets' initial weights, like the trial's batches
        try:
            suggestion = ctx.space.suggest(trial, settings.max_params, settings.max_gflops)
        except optuna.TrialPruned:  # over budget: nothing was trained
            trial.set_user_attr("train_steps", 0)
            raise
        except Exception as error:  # a choice the model cannot take, or the user's model failing in surgery
            self._fail(trial, "model_error", describe(error))
        if (original := cache.find_duplicate(trial, suggestion.choices, ctx.space.rewritable_pairs)) is not None:
            trial.set_user_attr("train_steps", 0)
            return cache.answer(trial, original)
        if settings.prune != "off":
            prune_repeat(trial)
        model, self.trained = suggestion.model, True
        limit = trial_budget(settings, trial, seed, self.rung_reports(trial))
        try:
            seed_everything(seed)
            facts, train_seconds, metrics = train_and_score(problem, model, limit)
            device = str(next(model.parameters()).device)
            latency = measure_latency(model, ctx.space.inputs[0], device)
        except optuna.TrialPruned:
            pruned_at = trial.user_attrs.get(halving.PRUNED_AT_ATTR)
            trial.set_user_attr("train_steps", pruned_at)
            log.info("trial %d (%s) pruned at step %s: %s", trial.number, describe_choices(suggestion.choices),
                     pruned_at, halving.describe_rung_scores(trial.user_attrs.get(halving.RUNGS_ATTR, {}),
                                                              next(iter(problem.directions))))
            raise
        except DivergedError as error:
            trial.set_user_attr("train_steps", error.step)
            self._fail(trial, "diverged", str(error))
        except MetricNotFinite as error:  # Optuna would fail the trial without saying why
            self._fail(trial, "no_metric", f"{error}: the validation data gave nothing to score (e.g. depth maps "
                       "without a valid pixel) or the model's output was not finite")
        except Exception as error:  # out of memory, or the model raised (a UserError: e.g. a wrong output shape)
            self._fail(trial, "oom" if is_out_of_memory(error) else "model_error", describe(error))
        check_rungs_reported(limit, facts)
        trial.set_user_attr("metrics", metrics)
        trial.set_user_attr("train_steps", facts.get("steps", settings.budget_steps))
        scoring.record(trial, getattr(problem, "item_scores", {}), ctx.host_summary)
        trial.set_user_attr("train_seconds", train_seconds)
        for key in ("steps", "device"):
            trial.set_user_attr(key, facts.get(key, device if key == "device" else None))
        trial.set_user_attr("latency_ms", latency)
        path = checkpoint_path(settings.out_dir, trial.number)
        save_or_stop(checkpoint(model, suggestion.recipe, problem, metrics, suggestion.costs(), trial.number,
                                settings.study), path, "the checkpoint")
        trial.set_user_attr("checkpoint", str(path))
        primary = next(iter(problem.directions))
        log.info("trial %d (%s): %s %.4g, +%s parameters, %.3f GFLOPs, trained %.0f s", trial.number,
                 trial.user_attrs.get("uniform") or describe_choices(suggestion.choices), primary, metrics[primary],
                 f"{suggestion.params_added:,}", suggestion.gflops, train_seconds)
        return objectives.values(objectives.parse(settings.objectives), problem.directions, metrics, suggestion.costs())

    def rung_reports(self, trial: optuna.Trial) -> halving.RungReports | None:
        """The trial's rung reporter when the search prunes (None: it trains without rung scores)."""
        settings, problem = self.context.settings, self.context.problem
        if settings.prune == "off":
            return None
        return halving.RungReports(trial, objectives.parse(settings.objectives), problem.directions,
                                    settings.reduction_factor)

    @staticmethod
    def _fail(trial: optuna.Trial, kind: str, message: str) -> NoReturn:
        trial.set_user_attr("failure", {"kind": kind, "message": message[:2000]})
        log.warning("trial %d failed (%s): %s", trial.number, kind, message.splitlines()[0] if message else kind)
        raise TrialFailure(f"{kind}: {message}")


def prune_repeat(trial: optuna.Trial) -> None:
    """Prune a repeat of a configuration stopped at a rung at once (`duplicate_of` its number), as a repeat of
    a completed one is answered from it: no configuration is trained twice."""
    pruned = halving.pruned_original(trial, trial.user_attrs[cache.KEY_ATTR])
    if pruned is None:
        return
    for key, value in ((cache.DUPLICATE_ATTR, pruned.number), ("train_steps", 0),
                       (halving.PRUNED_AT_ATTR, pruned.user_attrs[halving.PRUNED_AT_ATTR])):
        trial.set_user_attr(key, value)
    log.info("trial %d repeats trial %d, pruned at a rung: pruned without training", trial.number, pruned.number)
    raise optuna.TrialPruned(f"a repeat of trial {pruned.number}, pruned at a rung")


def checkpoint(model: nn.Module, recipe: dict[str, Any], problem: Problem, metrics: dict[str, float],
               costs: dict[str, Any], trial: int, study: str) -> dict[str, Any]:
    """A trial's weights and what rebuilds them (`indexnas.load`): the host's source and arguments, the recipe,
    the example input's shape, the task, metrics, costs and versions. Plain data: read with weights_only."""
    return {"format": CHECKPOINT_FORMAT, "version": 1, "state_dict": model.state_dict(), "recipe": recipe,
            "source": problem.source, "model": problem.label, "example_shape": list(problem.example.shape),
            "task": problem.task, "directions": problem.directions, "metrics": metrics, "costs": costs,
            "study": study, "trial": trial, "versions": versions()}


def versions() -> dict[str, str]:
    """The versions a checkpoint was written with (indexnas, torch, optuna, timm where installed)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"indexnas": __version__, "torch": str(torch.__version__), "optuna": str(optuna.__version__)}
    for name in ("timm", "segmentation-models-pytorch"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def is_out_of_memory(error: BaseException) -> bool:
    """GPU or CPU allocation failure (CUDA's OutOfMemoryError, the CPU allocator's RuntimeError, MemoryError)."""
    text = str(error).lower()
    return isinstance(error, (torch.cuda.OutOfMemoryError, MemoryError)) or (
        isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text))


def measure_latency(model: nn.Module, example: torch.Tensor, device: str, repeats: int = 5) -> float:
    """Median inference time in milliseconds for batch 1 at the example's size."""
    model = model.eval().to(device)
    x = example[:1].to(device)
    times = []
    with torch.no_grad():
        model(x)  # warm-up
        for _ in range(repeats):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(x)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append((time.perf_counter() - start) * 1000)
    return sorted(times)[len(times) // 2]


def checkpoint_path(out_dir: Path, number: int) -> Path:
    return out_dir / "checkpoints" / f"trial-{number:05d}.pt"


def keep_pareto_checkpoints(study: optuna.Study, out_dir: Path) -> None:
    """Delete the weights of completed trials that are no longer Pareto-optimal."""
    pareto = {t.number for t in study.best_trials}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
        if trial.number not in pareto:
            checkpoint_path(out_dir, trial.number).unlink(missing_ok=True)
