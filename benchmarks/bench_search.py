"""Search strategies against the paper's grid at equal training compute (issue 17, item 6).

For each host (--hosts: the denoising demo host and a segmentation host) and each seed (--seeds), one
warm host is trained and shared by every arm of that seed; each arm is a study run with `indexnas.search`'s
own `run_search` (its trial: `search.trial.TrialRun`), stopped by `ArmBudget` once it has spent the grid's
training compute:
  grid          the untouched host + the paper's 15 uniform configurations (16 trainings: the budget C)
  tpe           the host, then TPE trials (Optuna's multi-objective TPE, with the study cache)
  tpe-halving   the same with successive halving at half the budget (`--prune halving`)
  random        the host, then random trials
  frontier      the host, then the cost-aware sampler (`search.frontier`: exact costs, an additive model of the
                metric, optimistic hypervolume gain)
  oneshot       the supernet trained once (it scores the host, the grid and TPE candidates), then its Pareto
                set under that score fine-tuned as ordinary trials (it may end below the budget)
Compute is counted in training steps: every trained trial's steps (a pruned one's too; a repeat answered
from the study cache costs none) plus the supernet's. Each arm's hypervolume of (metric up, log10(1 +
Delta params) down) is read after 25 %, 50 % and 100 % of C, against the grid's at 100 %, on one reference
point per host (the worst host trial's metric of any arm, log10(1 + the largest Delta params) + 0.1).
Over the seeds: the mean, its 90 % t-interval, and the 90 % interval of the per-seed difference to the
grid (the same seed's warm host, data and trial seeds; "beyond" when the interval excludes 0). Finally the
best mixed configuration on each arm's front that dominates the grid's best is retrained with
--retrain-seeds other seeds, and so is the grid's best: does it still win beyond the retraining spread?
Usage::

    python benchmarks/bench_search.py --threads 1 --markdown section.md          # the full benchmark
    python benchmarks/bench_search.py --quick                                    # every path, tiny settings
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from optuna.trial import FrozenTrial, TrialState
from scipy import stats

from indexnas.atomic import atomic_save, atomic_write_bytes
from indexnas.cost import PARAMS_REFERENCE_MARGIN, log_params
from indexnas.reports.pareto import hypervolume_2d, pareto_mask
from indexnas.search import pair_space
from indexnas.search.cache import is_duplicate
from indexnas.search.context import SearchContext, prepare
from indexnas.search.demo import DEMO
from indexnas.search.record import (CHOICES, METRICS, ONESHOT, PARAMS_ADDED, SETTINGS, STEPS, TRAIN_STEPS, UNIFORM,
                                    StudyRecord, TrialRecord)
from indexnas.search.run import run_search
from indexnas.search.settings import SearchSettings
from indexnas.search.study import open_study, settings_storage
from indexnas.spec import IndexSpec, paper_variants
from indexnas.tasks.problem import TaskProblem
from indexnas.zoo.checkpoint import read_checkpoint

GRID_TRIALS = 16  # the untouched host + the paper's 15 uniform configurations
GRID_LABELS = {"host", *(str(spec) for spec in paper_variants())}
# The hosts: the demo's denoising search, and SegNet on the built-in texture mosaics at the same budget.
HOSTS: dict[str, dict[str, Any]] = {
    "denoise": dict(DEMO),
    # (patch 48, batch 8: a training step costs about what the denoising host's does; at the segment task's
    # default patch 64 x batch 16 it costs ~2.8x)
    "segment": dict(task="segment", model="segnet", width=0.25, budget_steps=DEMO["budget_steps"], batch_size=8,
                    patch=48, lr=2e-3),
}
# Each arm's settings on top of the host's; "grid" runs the enqueued grid only.
# (`trials` is the count of completed trials run_search stops at: 16 by default; the sampler arms stop at their
# compute instead (`ArmBudget`), so theirs is past TRIAL_CAP)
TRIAL_CAP = 20 * GRID_TRIALS  # an arm stops past this many trials: a sampler stuck on over-budget or repeats
UNCAPPED = dict(trials=TRIAL_CAP + 1)
STRATEGIES: dict[str, dict[str, Any]] = {
    "grid": dict(paper_grid=True),
    "tpe": dict(paper_grid=False, sampler="tpe", **UNCAPPED),
    "tpe-halving": dict(paper_grid=False, sampler="tpe", prune="halving", **UNCAPPED),
    "random": dict(paper_grid=False, sampler="random", **UNCAPPED),
    "frontier": dict(paper_grid=False, sampler="frontier", **UNCAPPED),
    # the supernet scores the host, the grid and 30 TPE candidates (the search's default is 100: at the ~5 s a
    # supernet score costs on a shared CPU core that alone would take ~10 min per seed)
    "oneshot": dict(paper_grid=True, sampler="tpe", strategy="oneshot", oneshot_candidates=30),
}
FRACTIONS = (0.25, 0.5, 1.0)
QUICK = dict(budget_steps=2, batch_size=4, eval_size=32)  # --quick: every path, a few steps each
WALL_ATTR = "bench:wall_s"  # study user attr: wall seconds this benchmark spent on the arm
RETRAIN_SEED_BASE = 5000  # seeds of the dominance check's retrainings: far from every trial's


@dataclasses.dataclass
class ArmRun:
    """One arm at one seed: its trials in order, the steps each cost, and the strategy's own steps."""

    host: str
    strategy: str
    seed: int
    trials: list[FrozenTrial]
    up_front_steps: int  # trained before any trial (the supernet)
    wall_s: float
    metric: str
    direction: str

    def spent(self) -> list[int]:
        """Cumulative training steps after each trial (repeats from the cache cost nothing)."""
        total, out = self.up_front_steps, []
        for trial in self.trials:
            total += 0 if is_duplicate(trial) else steps_of(trial)
            out.append(total)
        return out

    def complete_within(self, steps: float) -> list[FrozenTrial]:
        return [t for t, s in zip(self.trials, self.spent(), strict=True)
                if s <= steps and t.state == TrialState.COMPLETE]

    def trainings(self, steps: float) -> dict[str, int]:
        """Within ``steps``: trials trained in full, answered from the cache, and stopped at a rung."""
        within = [t for t, s in zip(self.trials, self.spent(), strict=True) if s <= steps]
        complete = [t for t in within if t.state == TrialState.COMPLETE]
        return {"full": sum(not is_duplicate(t) for t in complete), "cache": sum(is_duplicate(t) for t in complete),
                "pruned": sum(t.state == TrialState.PRUNED and steps_of(t) > 0 for t in within)}


def steps_of(trial: FrozenTrial) -> int:
    """The training steps a trial used (``train_steps``, which a trial stopped at a rung records too)."""
    attrs = TrialRecord.of(trial)
    return int(attrs.get(TRAIN_STEPS, attrs.get(STEPS)) or 0)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", nargs="+", default=list(HOSTS), choices=list(HOSTS))
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--retrain-seeds", type=int, default=2, help="dominance check: retrainings per side")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--out", default="/tmp/indexnas_bench_search", help="studies, warm hosts, checkpoints")
    parser.add_argument("--markdown", default=None, help="also write the section to this file")
    parser.add_argument("--quick", action="store_true", help="tiny settings: checks that every path runs")
    parser.add_argument("--summary-only", action="store_true",
                        help="run no arm: summarise the arms stored under --out (e.g. after runs in parallel)")
    return parser.parse_args(argv)


def host_settings(host: str, seed: int, out: Path, quick: bool) -> SearchSettings:
    options = {**HOSTS[host], **(QUICK if quick else {})}
    return SearchSettings(study=f"{host}-warm", storage=str(out / "studies.log"), out=str(out), trials=GRID_TRIALS,
                          seed=seed, progress=False, **options)


def arm_settings(base: SearchSettings, strategy: str) -> SearchSettings:
    """One arm's settings: the seed's, with the strategy's options, its own study, storage and folder."""
    fields = {f.name for f in dataclasses.fields(SearchSettings)}
    missing = sorted(set(STRATEGIES[strategy]) - fields)
    if missing:
        raise SystemExit(f"strategy {strategy!r} needs settings this version lacks: {', '.join(missing)}")
    out = Path(base.out) / strategy
    # retrain_seeds 0: the dominance check below retrains what it compares, not run_search's front retraining
    return dataclasses.replace(base, study=strategy, out=str(out), storage=str(out / "studies.log"),
                               **{"trials": GRID_TRIALS, "retrain_seeds": 0, **STRATEGIES[strategy]})


def run_arm(context: SearchContext, strategy: str, compute: int) -> None:
    """Run (or resume) one strategy's study through `run_search` until it has spent ``compute`` training steps
    (the grid: its 16 trials; `ArmBudget`); the study keeps everything the summary reads, the wall time included."""
    settings = arm_settings(context.settings, strategy)
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    share_warm_host(context.settings, settings)
    start = time.perf_counter()
    if not settings.paper_grid:  # the trial arms start from the untouched host, like the grid
        ctx = dataclasses.replace(context, settings=settings)
        study = open_study(settings_storage(settings), settings, ctx)
        if not study.trials:
            keep = pair_space.params_for(pair_space.uniform(ctx.spaces, IndexSpec("keep")), ctx.spaces)
            study.enqueue_trial(keep, user_attrs={"uniform": "host"})
    study = run_search(settings, TaskProblem, stop=ArmBudget(settings, strategy, compute))
    study.set_user_attr(WALL_ATTR, study.user_attrs.get(WALL_ATTR, 0.0) + time.perf_counter() - start)


def share_warm_host(base: SearchSettings, settings: SearchSettings) -> None:
    """The seed's warm host as one arm's: the same weights and summary, under the arm's settings, since a search
    loads a warm host only with the settings it was trained under (the oneshot arm's strategy differs)."""
    saved = read_checkpoint(base.out_dir / "host.pt")
    atomic_save({**saved, "identity": settings.identity()}, settings.out_dir / "host.pt")


@dataclasses.dataclass
class ArmBudget:
    """One arm's stop condition for `run_search`, asked between trials: the grid stops after its 16 trials, any
    other arm once it has spent ``compute`` training steps, every arm past TRIAL_CAP trials (a sampler stuck on
    over-budget or repeated configurations). It prints each trial that finished since it was last asked."""

    settings: SearchSettings
    strategy: str
    compute: int
    printed: set[int] | None = None  # trial numbers printed (a resumed arm's earlier trials: by their run)

    def __call__(self, study: optuna.Study) -> bool:
        run = arm_run(study, self.settings, self.strategy)
        finished = [t for t in run.trials if t.state.is_finished()]
        if self.printed is None:
            self.printed = {t.number for t in finished}
        for trial in finished:
            if trial.number not in self.printed:
                _print_trial(self.settings.task, self.strategy, self.settings.seed, trial)
                self.printed.add(trial.number)
        if len(run.trials) > TRIAL_CAP:
            return True
        if self.strategy == "grid":
            return sum(t.state == TrialState.COMPLETE for t in run.trials) >= GRID_TRIALS
        return (run.spent()[-1] if run.trials else run.up_front_steps) >= self.compute


def load_arm(settings: SearchSettings, strategy: str) -> ArmRun:
    """One arm's stored study as an ArmRun."""
    return arm_run(optuna.load_study(study_name=strategy, storage=settings_storage(settings)), settings, strategy)


def arm_run(study: optuna.Study, settings: SearchSettings, strategy: str) -> ArmRun:
    """One arm's study as an ArmRun (its trials in order, the supernet's steps, its wall time)."""
    stored = StudyRecord.of(study)
    attrs = stored.get(SETTINGS, {})
    up_front = int(stored.get(ONESHOT, {}).get("steps", 0))
    return ArmRun(settings.task, strategy, settings.seed, study.get_trials(deepcopy=False), up_front,
                  float(study.user_attrs.get(WALL_ATTR, 0.0)), attrs["primary_metric"], attrs["direction"])


def _print_trial(host: str, strategy: str, seed: int, trial: FrozenTrial) -> None:
    attrs = TrialRecord.of(trial)
    metric = next(iter(attrs.get(METRICS, {}).values()), float("nan"))
    note = " (cache)" if is_duplicate(trial) else ""
    print(f"  {host} s{seed} {strategy:<11} #{trial.number:<3} {trial.state.name:<8} {metric:8.3f}  "
          f"+{attrs.get(PARAMS_ADDED, 0):>9,}  {steps_of(trial):>4} steps  "
          f"{label(attrs.get(CHOICES, {}))}{note}", flush=True)


def label(choices: dict[str, str]) -> str:
    """"m2o-nl" for a uniform configuration ("host" when all keep), else the per-pair choices joined by ' / '."""
    values = list(choices.values())
    if not values:
        return "?"
    if len(set(values)) == 1:
        return "host" if values[0] == "keep" else values[0]
    return " / ".join(values)


def kind(choices: dict[str, str]) -> str:
    if len(set(choices.values())) > 1:
        return "mixed"
    return "grid" if label(choices) in GRID_LABELS else "off-grid"


def metric_of(trial: FrozenTrial, metric: str) -> float:
    return float(TrialRecord.of(trial).get(METRICS, {}).get(metric, float("nan")))


def params_of(trial: FrozenTrial) -> int:
    """Parameters the trial's rewrite adds (0 when it records none)."""
    return TrialRecord.of(trial).get(PARAMS_ADDED, 0)


def points(trials: list[FrozenTrial], metric: str) -> np.ndarray:
    if not trials:
        return np.empty((0, 2))
    return np.array([[metric_of(t, metric), float(params_of(t))] for t in trials])


def hypervolume(trials: list[FrozenTrial], metric: str, direction: str, reference: tuple[float, float]) -> float:
    pts = points(trials, metric)
    if not len(pts):
        return 0.0
    pts[:, 1] = log_params(pts[:, 1])
    return hypervolume_2d(pts, reference, (direction, "minimize"))


def host_trial(run: ArmRun) -> FrozenTrial | None:
    return next((t for t in run.trials if t.state == TrialState.COMPLETE and TrialRecord.of(t).get(UNIFORM) == "host"),
                None)


def reference_point(runs: list[ArmRun]) -> tuple[float, float]:
    """The worst host-trial metric of any arm (every host trial adds volume) and the largest Delta params + margin."""
    metric, direction = runs[0].metric, runs[0].direction
    hosts = [metric_of(t, metric) for r in runs if (t := host_trial(r)) is not None]
    worst = min(hosts) if direction == "maximize" else max(hosts)
    largest = max(float(params_of(t)) for r in runs for t in r.trials
                  if t.state == TrialState.COMPLETE)
    return worst, float(log_params(largest) + PARAMS_REFERENCE_MARGIN)


def interval(values: list[float], level: float = 0.90) -> tuple[float, float, float]:
    """(mean, low, high): the mean and its two-sided t-interval (NaN bounds with one value)."""
    data = np.asarray(values, dtype=float)
    mean = float(data.mean())
    if len(data) < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, len(data) - 1) * data.std(ddof=1) / math.sqrt(len(data)))
    return mean, mean - half, mean + half


def front(trials: list[FrozenTrial], metric: str, direction: str) -> list[FrozenTrial]:
    complete = [t for t in trials if t.state == TrialState.COMPLETE and not is_duplicate(t)]
    if not complete:
        return []
    mask = pareto_mask(points(complete, metric), (direction, "minimize"))
    return [t for t, keep in zip(complete, mask, strict=True) if keep]


def dominates(a: FrozenTrial, b: FrozenTrial, metric: str, direction: str) -> bool:
    ma, mb = metric_of(a, metric), metric_of(b, metric)
    better = ma >= mb if direction == "maximize" else ma <= mb
    strictly = ma != mb
    ca, cb = params_of(a), params_of(b)
    return bool(better and ca <= cb and (strictly or ca < cb))


def retrain(context: SearchContext, trial: FrozenTrial, seeds: list[int]) -> list[float]:
    """The trial's configuration fine-tuned again from the warm host with each of ``seeds`` (primary metric),
    exactly as `--retrain-seeds` does it (`SearchContext.train_configuration`)."""
    metric = next(iter(context.problem.directions))
    return [context.train_configuration(TrialRecord.of(trial)[CHOICES], seed, "retrain")[2][metric] for seed in seeds]


Retrain = Callable[[FrozenTrial, list[int]], list[float]]


def dominance_checks(runs: list[ArmRun], count: int, retrain_with: Retrain) -> list[dict[str, Any]]:
    """Per strategy arm: its best mixed front trial dominating the grid's best, both retrained ``count`` times."""
    grid = next((r for r in runs if r.strategy == "grid"), None)
    if grid is None or count < 1:
        return []
    metric, direction = grid.metric, grid.direction
    pick = max if direction == "maximize" else min
    complete = [t for t in grid.trials if t.state == TrialState.COMPLETE]
    best = pick(complete, key=lambda t: metric_of(t, metric))
    seeds = [RETRAIN_SEED_BASE + grid.seed * 100 + i for i in range(count)]
    checks = []
    for run in runs:
        challengers = [t for t in front(run.trials, metric, direction)
                       if kind(TrialRecord.of(t).get(CHOICES, {})) == "mixed" and dominates(t, best, metric, direction)]
        if run.strategy == "grid" or not challengers:
            checks.append({"strategy": run.strategy, "seed": run.seed, "challenger": None})
            continue
        challenger = pick(challengers, key=lambda t: metric_of(t, metric))
        best_scores = [metric_of(best, metric), *retrain_with(best, seeds)]
        scores = [metric_of(challenger, metric), *retrain_with(challenger, seeds)]
        difference = np.mean(scores) - np.mean(best_scores)
        spread = math.sqrt(np.var(scores, ddof=1) / len(scores) + np.var(best_scores, ddof=1) / len(best_scores))
        sign = 1 if direction == "maximize" else -1
        checks.append({"strategy": run.strategy, "seed": run.seed,
                       "challenger": label(TrialRecord.of(challenger)[CHOICES]),
                       "challenger_params": params_of(challenger), "challenger_scores": scores,
                       "best": label(TrialRecord.of(best)[CHOICES]), "best_params": params_of(best),
                       "best_scores": best_scores, "difference": float(difference), "se": spread,
                       "beyond": bool(sign * difference > 2 * spread)})
    return checks


def summarise(runs: list[ArmRun], compute: int) -> tuple[list[dict[str, Any]], tuple[float, float]]:
    """One row per (strategy, fraction): hypervolume over the seeds and its paired difference to the grid."""
    reference = reference_point(runs)
    metric, direction = runs[0].metric, runs[0].direction
    grid_hv = {r.seed: hypervolume(r.complete_within(float("inf")), metric, direction, reference)
               for r in runs if r.strategy == "grid"}
    rows = []
    for strategy in dict.fromkeys(r.strategy for r in runs):
        arm = [r for r in runs if r.strategy == strategy]
        for fraction in (1.0,) if strategy == "grid" else FRACTIONS:
            volumes = [hypervolume(r.complete_within(fraction * compute), metric, direction, reference) for r in arm]
            differences = [v - grid_hv[r.seed] for v, r in zip(volumes, arm, strict=True) if r.seed in grid_hv]
            within = [r.complete_within(fraction * compute) for r in arm]
            rows.append({"strategy": strategy, "fraction": fraction, "volumes": volumes, "hv": interval(volumes),
                         "difference": interval(differences) if differences else None,
                         "trainings": [r.trainings(fraction * compute) for r in arm],
                         "completed": [len(w) for w in within],
                         "best": [max((metric_of(t, metric) for t in w), default=float("nan")) if direction == "maximize"
                                  else min((metric_of(t, metric) for t in w), default=float("nan")) for w in within],
                         "grid_mean": float(np.mean(list(grid_hv.values()))) if grid_hv else float("nan")})
    return rows, reference


def render(host: str, settings: SearchSettings, runs: list[ArmRun], rows: list[dict[str, Any]],
           reference: tuple[float, float], checks: list[dict[str, Any]], compute: int) -> str:
    metric = runs[0].metric
    lines = [f"### {host}: {settings.model} width {settings.width}, {settings.task}, {settings.budget_steps} steps "
             f"x batch {settings.batch_size} per training (patch {settings.patch}, lr {settings.lr})", "",
             f"Seeds {sorted({r.seed for r in runs})}; C = the grid's {GRID_TRIALS} trainings = {compute:,} steps. "
             f"Reference point: {metric} {reference[0]:.3f}, log10(1 + Delta params) {reference[1]:.3f}. "
             f"Wall time of this host's arms: {sum(r.wall_s for r in runs) / 60:.1f} min.", "",
             "| strategy | compute | HV mean | 90% interval | HV / grid | difference to grid, 90% interval | beyond? "
             f"| completed trials | full trainings / cache / pruned | best {metric} |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        mean, low, high = row["hv"]
        diff = row["difference"]
        diff_text, beyond = "-", "-"
        if diff is not None and row["strategy"] != "grid":
            diff_text = f"{diff[0]:+.3f} [{diff[1]:+.3f}, {diff[2]:+.3f}]"
            beyond = "above" if diff[1] > 0 else "below" if diff[2] < 0 else "no"
        trainings = " ".join(f"{t['full']}/{t['cache']}/{t['pruned']}" for t in row["trainings"])
        lines.append(f"| {row['strategy']} | {row['fraction']:.0%} | {mean:.3f} | [{low:.3f}, {high:.3f}] | "
                     f"{mean / row['grid_mean']:.2f} | {diff_text} | {beyond} | "
                     f"{', '.join(map(str, row['completed']))} | {trainings} | "
                     f"{', '.join(f'{b:.2f}' for b in row['best'])} |")
    lines += ["", "Per seed, hypervolume at 100 % of C: " + "; ".join(
        f"{row['strategy']} " + ", ".join(f"{v:.3f}" for v in row["volumes"]) for row in rows if row["fraction"] == 1.0)]
    if any(c["challenger"] for c in checks):
        lines += ["", "Mixed configurations that dominate the grid's best in their study, retrained "
                  f"({len(next(c for c in checks if c['challenger'])['best_scores'])} runs each, the study's own "
                  "included):", "",
                  f"| strategy | seed | challenger (Delta params) | {metric} runs | grid's best (Delta params) | "
                  f"{metric} runs | difference +- se | beyond 2 se? |", "|---|---|---|---|---|---|---|---|"]
        for c in checks:
            if c["challenger"]:
                lines.append(f"| {c['strategy']} | {c['seed']} | {c['challenger']} ({c['challenger_params']:,}) | "
                             f"{', '.join(f'{v:.2f}' for v in c['challenger_scores'])} | {c['best']} "
                             f"({c['best_params']:,}) | {', '.join(f'{v:.2f}' for v in c['best_scores'])} | "
                             f"{c['difference']:+.3f} +- {c['se']:.3f} | {'yes' if c['beyond'] else 'no'} |")
    without = [f"{c['strategy']} s{c['seed']}" for c in checks if not c["challenger"] and c["strategy"] != "grid"]
    if without:
        lines += ["", f"No mixed front trial dominating the grid's best in: {', '.join(without)}."]
    return "\n".join(lines) + "\n"


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{model}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"optuna {optuna.__version__}; load average {load}")


def run_host(host: str, args: argparse.Namespace, emit: Callable[[str], None]) -> None:
    """Run (or resume) every arm of every seed, then summarise the host from the stored studies."""
    runs: list[ArmRun] = []
    checks: list[dict[str, Any]] = []
    settings, compute = None, 0
    for seed in args.seeds:
        out = Path(args.out) / host / f"seed{seed}"
        out.mkdir(parents=True, exist_ok=True)
        settings = host_settings(host, seed, out, args.quick)
        compute = GRID_TRIALS * settings.budget_steps
        print(f"{host} seed {seed}: warm host ...", flush=True)
        context = prepare(settings, TaskProblem)
        for strategy in args.strategies:
            if not args.summary_only:
                run_arm(context, strategy, compute)
        seed_runs = [load_arm(arm_settings(settings, s), s) for s in STRATEGIES
                     if (Path(arm_settings(settings, s).storage)).exists()]
        runs += seed_runs
        checks += cached_checks(out / "checks.json", context, seed_runs, args.retrain_seeds)
    if runs:
        rows, reference = summarise(runs, compute)
        emit(render(host, settings, runs, rows, reference, checks, compute))


def cached_checks(path: Path, context: SearchContext, runs: list[ArmRun], count: int) -> list[dict[str, Any]]:
    """The dominance checks of one seed; each retraining (configuration, seeds) is stored in ``path`` as it
    finishes and never run twice, so adding an arm retrains only its own challenger."""
    stored = json.loads(path.read_text()) if path.exists() else {}
    retrained: dict[str, list[float]] = stored.get("retrained", {})
    for check in stored.get("checks", []):  # the file's earlier form: whole checks, the retrainings inside them
        if check.get("challenger"):
            seeds = [RETRAIN_SEED_BASE + check["seed"] * 100 + i for i in range(len(check["best_scores"]) - 1)]
            retrained.setdefault(f"{check['best']} {seeds}", check["best_scores"][1:])
            retrained.setdefault(f"{check['challenger']} {seeds}", check["challenger_scores"][1:])

    def retrain_with(trial: FrozenTrial, seeds: list[int]) -> list[float]:
        key = f"{label(TrialRecord.of(trial)[CHOICES])} {seeds}"
        if key not in retrained:
            retrained[key] = retrain(context, trial, seeds)
            atomic_write_bytes(json.dumps({"retrained": retrained}, indent=1).encode(), path)
        return retrained[key]

    return dominance_checks(runs, count, retrain_with)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.getLogger("indexnas").setLevel(logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    sections = [f"Command: `python benchmarks/bench_search.py {' '.join(sys.argv[1:] if argv is None else argv)}`  ",
                f"Machine: {machine()} (start)  ", ""]

    def emit(text: str) -> None:
        print(text, flush=True)
        sections.append(text)

    for host in args.hosts:
        run_host(host, args, emit)
    sections.append(f"Whole run: {(time.perf_counter() - start_wall) / 60:.1f} min wall, "
                    f"{(time.process_time() - start_cpu) / 60:.1f} min CPU; load average at the end "
                    f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}.")
    if args.markdown:
        atomic_write_bytes(("\n".join(sections) + "\n").encode(), Path(args.markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
