"""Run a study: per-stage IndexNet choices weighed against parameters and FLOPs.

One process (or one per worker, or one per machine sharing an RDB storage) runs `work`; every
trial fine-tunes the warm-started host with one IndexNet configuration and stores its recipe,
metrics, costs and timing. A trial's failure is the trial's: the study records it and goes on.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import math
import os
import socket
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState
from torch import nn

from indexnas import __version__
from indexnas.atomic import atomic_save
from indexnas.errors import UserError
from indexnas.spec import IndexSpec, paper_variants
from indexnas.search import space as search_space
from indexnas.search.preflight import check_settings, check_training
from indexnas.search.settings import SearchSettings
from indexnas.search.summary import describe_choices
from indexnas.search.storage import StudyLock, locate_storage, mask_url, open_storage, study_lock
from indexnas.search.workers import pop_in_place, requeue_when_interrupted, run_workers, worker_process

log = logging.getLogger("indexnas.search")
ATTR = "indexnas"  # the study-level user attribute holding settings, pairs and host figures
JOINED_ATTR = "indexnas:processes"  # study system attribute: processes that have worked on it (sampler seeds)
MAX_FAILURES_FACTOR = 1  # stop after max(5, trials) failed trials: something is wrong with the setup
MAX_PRUNED_FACTOR = 20  # over-budget configurations cost no training, but the sampler must find others


class TrialFailure(Exception):
    """A trial that could not produce a result (diverged, out of memory, model error)."""


@dataclass
class SearchContext:
    """What every trial of one worker shares: the trained host, the data, the search space."""

    settings: SearchSettings
    task: Any
    host: nn.Module  # trained (warm start) or freshly initialised host
    example: torch.Tensor  # the input the surgery analyses and FLOPs are counted at
    train_set: Any
    val_set: Any
    spaces: list[search_space.PairSpace]
    pairs: list[dict[str, Any]]
    host_summary: dict[str, Any]


def run_search(settings: SearchSettings) -> optuna.Study:
    """Create or resume the study, enqueue the paper's grid, run the workers, keep Pareto weights.

    Everything a user can get wrong (storage URL, resuming with other settings, model, data) is
    checked before anything is written, so a failed command leaves existing studies and runs as they were.
    """
    check_settings(settings)
    location = locate_storage(settings.storage)
    storage = None
    if location.journal is None or location.journal.exists():  # an existing study must agree before any work
        storage = settings_storage(settings)
        check_resumable(storage, settings)
    context = prepare(settings)
    study = open_study(storage or settings_storage(settings), settings, context)
    if settings.workers == 1:
        work(study, context)
    else:
        run_workers(_worker_main, settings.to_dict(), settings.workers)
    keep_pareto_checkpoints(study, settings.out_dir)
    return study


def _worker_main(settings: dict[str, Any], index: int) -> None:
    """One worker process: its own GPU when there are several, the shared study otherwise."""
    if torch.cuda.is_available() and torch.cuda.device_count() > 1:
        torch.cuda.set_device(index % torch.cuda.device_count())
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(settings["workers"])))
    worker_settings = SearchSettings(**{**settings, "progress": False})
    try:
        with worker_process(worker_settings.storage):
            context = prepare(worker_settings)
            study = optuna.load_study(study_name=worker_settings.study, storage=settings_storage(worker_settings),
                                      sampler=make_sampler(worker_settings))
            work(study, context)
    except UserError as error:  # one message, as the command line prints it, not a worker's traceback
        log.error("worker %d: %s", index, error)
        sys.exit(2)


def settings_storage(settings: SearchSettings) -> optuna.storages.BaseStorage:
    """The study's storage with the settings' heartbeat interval and grace period."""
    return open_storage(settings.storage, settings.heartbeat_interval, settings.grace_period)


def make_sampler(settings: SearchSettings, seed_offset: int = 0) -> optuna.samplers.BaseSampler:
    seed = settings.seed + seed_offset
    if settings.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    with warnings.catch_warnings():  # `group` is experimental in Optuna; we rely on it knowingly
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # constant liar: other processes (this command's workers, or other machines) may be running trials
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True)


def prepare(settings: SearchSettings) -> SearchContext:
    """Load the host and the data, find the pairs, and warm-start the host (trained once, cached)."""
    from indexnas.search.host import build_datasets, describe_pairs, load_host
    from indexnas.search.tasks import get_task

    task = get_task(settings.task)
    train_set, val_set = build_datasets(settings)
    host, example = load_host(settings, train_set)
    check_training(settings, task, host, example, train_set, val_set)
    pairs, allowed = describe_pairs(host, example, settings.mode)
    if not pairs:
        raise UserError(f"{settings.model} has no down/up pairs that mode {settings.mode!r} can rewrite",
                        "run `indexnas pairs MODEL` to see what was found, or try another --mode")
    spaces = [search_space.PairSpace.from_allowed(p["name"], allowed[p["name"]]) for p in pairs]
    host_summary = warm_start(settings, task, host, train_set, val_set)
    return SearchContext(settings, task, host, example, train_set, val_set, spaces, pairs, host_summary)


def warm_start(settings: SearchSettings, task: Any, host: nn.Module, train_set: Any, val_set: Any) -> dict[str, Any]:
    """Train the host once (or load the cached weights) so that every trial is a fine-tune."""
    from indexnas.search.train import DivergedError, train_and_evaluate

    path = settings.out_dir / "host.pt"
    if not settings.warm_start:
        return {"trained": False}
    if path.exists():
        return load_warm_host(path, settings, host)
    try:
        log.info("training the host once (%d steps); every trial fine-tunes from its weights", settings.budget_steps)
        result = train_and_evaluate(host, task, train_set, val_set, train_config(settings, label="host"))
    except UserError:
        raise
    except DivergedError as error:
        raise UserError(f"training the host {settings.model} diverged ({error}) at --lr {settings.lr:g}",
                        "lower --lr, or pass --no-warm-start to train every trial from scratch") from None
    except Exception as error:  # the user's model fails on the task's data: no trial can succeed
        kind = "ran out of memory" if is_out_of_memory(error) else "failed"
        raise UserError(f"training the host {settings.model} {kind}: {describe(error)}",
                        "lower --batch-size or --patch if out of memory; otherwise check that the model trains on "
                        f"{settings.task} batches (input {task.in_channels} channels)") from error
    summary = {"trained": True, "metrics": result.metrics, "train_seconds": result.train_seconds,
               "steps": result.steps}
    atomic_save({"state_dict": host.state_dict(), "summary": summary, "identity": settings.identity()}, path)
    return summary


def load_warm_host(path: Path, settings: SearchSettings, host: nn.Module) -> dict[str, Any]:
    """Load the cached warm-started host; weights of another search or a damaged file are refused."""
    from indexnas.zoo.checkpoint import load_state, read_checkpoint

    fix = f"pass another --out for this search, or delete {path} to train the host again"
    try:
        saved = read_checkpoint(path)
    except UserError as error:  # damaged, or a pickle with code in it: never loaded, never overwritten
        raise UserError(error.problem, fix) from None
    if not isinstance(saved, dict) or not {"state_dict", "summary", "identity"} <= set(saved):
        raise UserError(f"{path} is not the host checkpoint of an indexnas search", fix)
    differences = [f"{k}: stored {saved['identity'].get(k)!r}, now {v!r}" for k, v in settings.identity().items()
                   if saved["identity"].get(k) != v]
    if differences:
        raise UserError(f"{path} holds the host of another search ({'; '.join(differences)})", fix)
    load_state(host, saved["state_dict"], str(path), settings.model)
    return saved["summary"]


def train_config(settings: SearchSettings, label: str) -> Any:
    from indexnas.search.train import TrainConfig

    return TrainConfig(steps=settings.budget_steps, seconds=settings.budget_seconds, batch_size=settings.batch_size,
                       lr=settings.lr, seed=settings.seed, progress=settings.progress, label=label)


def open_study(storage: optuna.storages.BaseStorage, settings: SearchSettings, context: SearchContext) -> optuna.Study:
    """Create the study with its settings, or resume it after checking the settings agree.

    Under the study lock, so that workers starting together create it and enqueue its grid once.
    """
    with study_lock(storage, settings.study):
        if _stored_settings(storage, settings.study) is not None:
            check_resumable(storage, settings)
            return optuna.load_study(study_name=settings.study, storage=storage, sampler=make_sampler(settings))
        directions = [context.task.direction, "minimize", "minimize"]
        study = optuna.create_study(storage=storage, study_name=settings.study, directions=directions,
                                    sampler=make_sampler(settings), load_if_exists=True)
        study.set_user_attr(ATTR, study_attrs(settings, context))
        if settings.paper_grid:
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
    differences = {k: (saved.get(k), v) for k, v in settings.identity().items() if saved.get(k) != v}
    if differences:
        listed = "; ".join(f"{k}: stored {a!r}, now {b!r}" for k, (a, b) in differences.items())
        raise UserError(f"study {settings.study!r} in {mask_url(settings.storage)} was run with other settings ({listed})",
                        "resume it with the same settings, or pass a new --study name")


def study_attrs(settings: SearchSettings, context: SearchContext) -> dict[str, Any]:
    metric = context.task.primary_metric
    return {
        "settings": {**settings.to_dict(), "storage": mask_url(settings.storage)},
        "task": settings.task, "model": settings.model, "mode": settings.mode, "budget_steps": settings.budget_steps,
        "primary_metric": metric, "direction": context.task.direction,
        "objectives": [metric, "params_added", "gflops"], "pairs": context.pairs, "host": context.host_summary,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "indexnas_version": __version__, "seed": settings.seed,
    }


def enqueue_paper_grid(study: optuna.Study, context: SearchContext) -> list[str]:
    """Enqueue the untouched host and each of the paper's 15 uniform configurations the pairs allow."""
    enqueued = []
    for label, choice in [("host", IndexSpec("keep")), *((str(s), s) for s in paper_variants())]:
        params = search_space.params_for(search_space.uniform(context.spaces, choice), context.spaces)
        if params is None:
            log.info("paper configuration %s is not allowed at every pair; not enqueued", label)
            continue
        study.enqueue_trial(params, user_attrs={"uniform": label}, skip_if_exists=True)
        enqueued.append(label)
    return enqueued


def counts(study: optuna.Study) -> dict[TrialState, int]:
    trials = study.get_trials(deepcopy=False)
    return {state: sum(t.state == state for t in trials) for state in TrialState}


def next_step(state: dict[TrialState, int], wanted: int) -> str:
    """What a worker does next: "start" a trial, "wait" for running ones, or "stop" (and why)."""
    done, running = state[TrialState.COMPLETE], state[TrialState.RUNNING]
    if done >= wanted:
        return "stop"
    if state[TrialState.FAIL] >= max(5, wanted * MAX_FAILURES_FACTOR) and state[TrialState.WAITING] == 0:
        log.error("stopping: %d trials failed; see `indexnas report` for their reasons", state[TrialState.FAIL])
        return "stop"
    if state[TrialState.PRUNED] >= wanted * MAX_PRUNED_FACTOR:
        log.error("stopping: %d configurations were over budget; relax --max-params/--max-gflops",
                  state[TrialState.PRUNED])
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
        study.sampler = make_sampler(context.settings, seed_offset=_join(study))
    pop_in_place(study)  # a retry runs in the place of the trial it repeats
    started = _StartedTrial(requeue_when_interrupted(Objective(context)), lock)
    waiting = False
    while True:
        lock.acquire()
        try:
            state = counts(study)
            step = next_step(state, wanted)
            if step == "start":
                study.optimize(started, n_trials=1, catch=(TrialFailure,), gc_after_trial=True)
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
        self.lock = lock

    def __call__(self, trial: optuna.Trial) -> tuple[float, float, float]:
        self.lock.release()
        return self.objective(trial)


class Objective:
    """One trial: rewrite the warm host, check the budget, fine-tune, evaluate, store everything."""

    def __init__(self, context: SearchContext) -> None:
        self.context = context

    def __call__(self, trial: optuna.Trial) -> tuple[float, float, float]:
        from indexnas.search.host import rewrite
        from indexnas.search.train import DivergedError, train_and_evaluate

        ctx, settings = self.context, self.context.settings
        choices = search_space.suggest_choices(trial, ctx.spaces)
        trial.set_user_attr("choices", {name: str(spec) for name, spec in choices.items()})
        trial.set_user_attr("worker", f"{socket.gethostname()}-{os.getpid()}")
        try:
            model, cost = rewrite(copy.deepcopy(ctx.host), ctx.example, choices, settings.mode, settings.model)
        except Exception as error:  # a choice the model cannot take, or the user's model failing in surgery
            self._fail(trial, "model_error", describe(error))
        trial.set_user_attr("recipe", cost["recipe"])
        for key in ("params_added", "params_total", "gflops", "gflops_added"):
            trial.set_user_attr(key, cost[key])
        over = self._over_budget(cost)
        if over:
            trial.set_user_attr("failure", {"kind": "over_budget", "message": over})
            raise optuna.TrialPruned(over)
        try:
            result = train_and_evaluate(model, ctx.task, ctx.train_set, ctx.val_set,
                                        train_config(settings, label=f"trial {trial.number}"))
            latency = measure_latency(model, ctx.example, result.device)
        except DivergedError as error:
            self._fail(trial, "diverged", str(error))
        except Exception as error:  # out of memory, or the model raised (a UserError: e.g. a wrong output shape)
            self._fail(trial, "oom" if is_out_of_memory(error) else "model_error", describe(error))
        metric = result.metrics[ctx.task.primary_metric]
        if not math.isfinite(metric):  # e.g. no valid pixel to score: Optuna would fail it without a reason
            self._fail(trial, "no_metric", f"the validation {ctx.task.primary_metric} is {metric}: the validation "
                       "data gave nothing to score (e.g. depth maps without a valid pixel) or the output was not finite")
        trial.set_user_attr("metrics", result.metrics)
        trial.set_user_attr("train_seconds", result.train_seconds)
        trial.set_user_attr("steps", result.steps)
        trial.set_user_attr("device", result.device)
        trial.set_user_attr("latency_ms", latency)
        path = checkpoint_path(settings.out_dir, trial.number)
        try:
            atomic_save({"state_dict": model.state_dict(), "recipe": cost["recipe"]}, path)
        except OSError as error:  # the disk, not the trial: stop, and let the user resume once it is fixed
            raise UserError(f"cannot write the checkpoint {path}: {error.strerror or error}",
                            "free disk space or fix the permissions of --out, then run the same command to resume") from None
        trial.set_user_attr("checkpoint", str(path))
        log.info("trial %d (%s): %s %.4g, +%s parameters, %.3f GFLOPs, trained %.0f s", trial.number,
                 trial.user_attrs.get("uniform") or describe_choices(trial.user_attrs["choices"]),
                 ctx.task.primary_metric, metric, f"{cost['params_added']:,}", cost["gflops"], result.train_seconds)
        return float(metric), float(cost["params_added"]), float(cost["gflops"])

    def _over_budget(self, cost: dict[str, Any]) -> str | None:
        s = self.context.settings
        if s.max_params is not None and cost["params_added"] > s.max_params:
            return f"adds {cost['params_added']:,} parameters, over --max-params {s.max_params:,.0f}"
        if s.max_gflops is not None and cost["gflops"] > s.max_gflops:
            return f"{cost['gflops']:.3f} GFLOPs, over --max-gflops {s.max_gflops}"
        return None

    @staticmethod
    def _fail(trial: optuna.Trial, kind: str, message: str) -> None:
        trial.set_user_attr("failure", {"kind": kind, "message": message[:2000]})
        log.warning("trial %d failed (%s): %s", trial.number, kind, message.splitlines()[0] if message else kind)
        raise TrialFailure(f"{kind}: {message}")


def is_out_of_memory(error: BaseException) -> bool:
    """GPU or CPU allocation failure (CUDA's OutOfMemoryError, the CPU allocator's RuntimeError, MemoryError)."""
    text = str(error).lower()
    return isinstance(error, (torch.cuda.OutOfMemoryError, MemoryError)) or (
        isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text))


def describe(error: BaseException) -> str:
    """One readable message: a UserError as it reads, anything else prefixed with its type."""
    return str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {error}"


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
