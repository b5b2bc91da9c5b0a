"""Run a study: per-stage IndexNet choices weighed against parameters and FLOPs.

One process (or one per worker, or one per machine sharing an RDB storage) runs `work`; every
trial fine-tunes the warm-started host with one IndexNet configuration and stores its recipe,
metrics, costs and timing. A trial's failure is the trial's: the study records it and goes on.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import multiprocessing
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import TrialState
from torch import nn

from indexnas import __version__
from indexnas.errors import UserError
from indexnas.spec import IndexSpec, paper_variants
from search import space as search_space
from indexnas.atomic import atomic_save
from search.settings import SearchSettings
from search.storage import mask_url, open_storage

log = logging.getLogger("indexnas.search")
ATTR = "indexnas"  # the study-level user attribute holding settings, pairs and host figures
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
    """Create or resume the study, enqueue the paper's grid, run the workers, keep Pareto weights."""
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    storage = open_storage(settings.storage)
    context = prepare(settings)
    study = open_study(storage, settings, context)
    if settings.workers == 1:
        work(study, context)
    else:
        spawn = multiprocessing.get_context("spawn")
        workers = [spawn.Process(target=_worker_main, args=(settings.to_dict(), index), daemon=False)
                   for index in range(settings.workers)]
        for process in workers:
            process.start()
        for process in workers:
            process.join()
    keep_pareto_checkpoints(study, settings.out_dir)
    return study


def _worker_main(settings: dict[str, Any], index: int) -> None:
    """One worker process: its own GPU when there are several, the shared study otherwise."""
    if torch.cuda.is_available() and torch.cuda.device_count() > 1:
        torch.cuda.set_device(index % torch.cuda.device_count())
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(settings["workers"])))
    worker_settings = SearchSettings(**{**settings, "progress": False})
    context = prepare(worker_settings)
    study = optuna.load_study(study_name=worker_settings.study, storage=open_storage(worker_settings.storage),
                              sampler=make_sampler(worker_settings, seed_offset=index + 1))
    work(study, context)


def make_sampler(settings: SearchSettings, seed_offset: int = 0) -> optuna.samplers.BaseSampler:
    seed = settings.seed + seed_offset
    if settings.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=settings.workers > 1)


def prepare(settings: SearchSettings) -> SearchContext:
    """Load the host and the data, find the pairs, and warm-start the host (trained once, cached)."""
    from search.host import build_datasets, describe_pairs, load_host
    from search.tasks import get_task

    task = get_task(settings.task)
    train_set, val_set = build_datasets(settings)
    host, example = load_host(settings, train_set)
    pairs, allowed = describe_pairs(host, example, settings.mode)
    if not pairs:
        raise UserError(f"{settings.model} has no down/up pairs that mode {settings.mode!r} can rewrite",
                        "run `indexnas pairs MODEL` to see what was found, or try another --mode")
    spaces = [search_space.PairSpace.from_allowed(p["name"], allowed[p["name"]]) for p in pairs]
    host_summary = warm_start(settings, task, host, train_set, val_set)
    return SearchContext(settings, task, host, example, train_set, val_set, spaces, pairs, host_summary)


def warm_start(settings: SearchSettings, task: Any, host: nn.Module, train_set: Any, val_set: Any) -> dict[str, Any]:
    """Train the host once (or load the cached weights) so that every trial is a fine-tune."""
    from search.train import train_and_evaluate

    path = settings.out_dir / "host.pt"
    if not settings.warm_start:
        return {"trained": False}
    if path.exists():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        host.load_state_dict(saved["state_dict"])
        return saved["summary"]
    result = train_and_evaluate(host, task, train_set, val_set, train_config(settings, label="host"))
    summary = {"trained": True, "metrics": result.metrics, "train_seconds": result.train_seconds,
               "steps": result.steps}
    atomic_save({"state_dict": host.state_dict(), "summary": summary}, path)
    return summary


def train_config(settings: SearchSettings, label: str) -> Any:
    from search.train import TrainConfig

    return TrainConfig(steps=settings.budget_steps, seconds=settings.budget_seconds, batch_size=settings.batch_size,
                       lr=settings.lr, seed=settings.seed, progress=settings.progress, label=label)


def open_study(storage: optuna.storages.BaseStorage, settings: SearchSettings, context: SearchContext) -> optuna.Study:
    """Create the study with its settings, or resume it after checking the settings agree."""
    directions = [context.task.direction, "minimize", "minimize"]
    study = optuna.create_study(storage=storage, study_name=settings.study, directions=directions,
                                sampler=make_sampler(settings), load_if_exists=True)
    saved = study.user_attrs.get(ATTR)
    if saved is None:
        study.set_user_attr(ATTR, study_attrs(settings, context))
        if settings.paper_grid:
            enqueue_paper_grid(study, context)
        return study
    differences = {k: (saved["settings"].get(k), v) for k, v in settings.identity().items()
                   if saved["settings"].get(k) != v}
    if differences:
        listed = "; ".join(f"{k}: stored {a!r}, now {b!r}" for k, (a, b) in differences.items())
        raise UserError(f"study {settings.study!r} in {mask_url(settings.storage)} was run with other settings ({listed})",
                        "resume it with the same settings, or pass a new --study name")
    return study


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


def work(study: optuna.Study, context: SearchContext) -> None:
    """Run trials until the study holds the requested number of completed ones."""
    wanted = context.settings.trials
    objective = Objective(context)
    while True:
        state = counts(study)
        done, running = state[TrialState.COMPLETE], state[TrialState.RUNNING]
        if done >= wanted:
            return
        if state[TrialState.FAIL] >= max(5, wanted * MAX_FAILURES_FACTOR) and state[TrialState.WAITING] == 0:
            log.error("stopping: %d trials failed; see `indexnas report` for their reasons", state[TrialState.FAIL])
            return
        if state[TrialState.PRUNED] >= wanted * MAX_PRUNED_FACTOR:
            log.error("stopping: %d configurations were over budget; relax --max-params/--max-gflops",
                      state[TrialState.PRUNED])
            return
        if done + running >= wanted and state[TrialState.WAITING] == 0:
            time.sleep(1.0)  # others are finishing the last trials; one may die and be retried
            optuna.storages.fail_stale_trials(study)
            continue
        study.optimize(objective, n_trials=1, catch=(TrialFailure,), gc_after_trial=True)
        keep_pareto_checkpoints(study, context.settings.out_dir)


class Objective:
    """One trial: rewrite the warm host, check the budget, fine-tune, evaluate, store everything."""

    def __init__(self, context: SearchContext) -> None:
        self.context = context

    def __call__(self, trial: optuna.Trial) -> tuple[float, float, float]:
        from search.host import rewrite
        from search.train import DivergedError, train_and_evaluate

        ctx, settings = self.context, self.context.settings
        choices = search_space.suggest_choices(trial, ctx.spaces)
        trial.set_user_attr("choices", {name: str(spec) for name, spec in choices.items()})
        trial.set_user_attr("worker", f"{socket.gethostname()}-{os.getpid()}")
        try:
            model, cost = rewrite(copy.deepcopy(ctx.host), ctx.example, choices, settings.mode, settings.model)
        except UserError as error:
            self._fail(trial, "model_error", str(error))
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
        except DivergedError as error:
            self._fail(trial, "diverged", str(error))
        except torch.cuda.OutOfMemoryError as error:
            self._fail(trial, "oom", str(error).splitlines()[0])
        except UserError:
            raise
        except Exception as error:  # the user's model raised: the trial's failure, not the study's
            self._fail(trial, "model_error", f"{type(error).__name__}: {error}")
        metric = result.metrics[ctx.task.primary_metric]
        trial.set_user_attr("metrics", result.metrics)
        trial.set_user_attr("train_seconds", result.train_seconds)
        trial.set_user_attr("steps", result.steps)
        trial.set_user_attr("device", result.device)
        trial.set_user_attr("latency_ms", measure_latency(model, ctx.example, result.device))
        path = checkpoint_path(settings.out_dir, trial.number)
        atomic_save({"state_dict": model.state_dict(), "recipe": cost["recipe"]}, path)
        trial.set_user_attr("checkpoint", str(path))
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
