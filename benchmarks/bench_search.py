"""Search vs the paper's grid: hypervolume of (PSNR up, Delta params down) at an equal number of trained trials.

All arms run the demo's denoising search (`indexnas.search.cli.DEMO`: dncnn_segnet at width 0.25, built-in data)
in this process, on ONE warm-started host trained once and shared, with the same data and training seed:
  G    the paper's grid alone: the untouched host and the 15 uniform configurations (16 trials)
  S    the host and then TPE trials up to the same 16 (multi-objective, multivariate, grouped),
       once per sampler seed (--seeds); only the sampler's seed differs between them
  G+S  the grid study continued with --extra TPE trials (sampler seed: the first of --seeds)
  noise  the host, the grid's best configuration and the best configuration outside the grid trained again
       with --noise-seeds other seeds (initial IndexNet weights and batch order): how far one configuration's
       PSNR moves with the seed alone, the scale on which to read every difference above

Hypervolume is over (PSNR, log10(1 + Delta params)), as `reports.hypervolume_curve` computes it, with one
reference point for every arm: the host trial's PSNR and log10(1 + the largest Delta params of any arm) + 0.1;
a linear-params hypervolume (reference 1.1 x the largest Delta params) is printed beside it. Usage::

    python benchmarks/bench_search.py --threads 1           # the full benchmark: 93 trainings, ~14 min on 2 cores
    python benchmarks/bench_search.py --quick               # tiny settings: checks that the script works (~1 min)
    python benchmarks/bench_search.py --budget-steps 100 --seeds 0 1 --extra 8 --markdown section.md
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import torch

from indexnas.atomic import atomic_write_bytes
from indexnas.errors import UserError
from indexnas.spec import IndexSpec, paper_variants
from indexnas.reports import hypervolume_2d, hypervolume_curve, pareto_mask, results_from_study, trials_frame
from indexnas.reports.frame import CHOICE_PREFIX, METRIC_PREFIX
from indexnas.reports.hypervolume import PARAMS_REFERENCE_MARGIN, log_params
from indexnas.search import space as search_space
from indexnas.search.cli import DEMO
from indexnas.search.settings import SearchSettings
from indexnas.search.study import (
    Objective, SearchContext, TrialFailure, counts, keep_pareto_checkpoints, make_sampler, next_step, open_study,
    budget, prepare, settings_storage,
)
from indexnas.search.train import train_and_evaluate

GRID_TRIALS = 16  # the untouched host + the paper's 15 uniform configurations
# --quick: every arm and code path, at a few training steps on small evaluation crops.
QUICK = dict(budget_steps=2, batch_size=4, eval_size=32)
NOISE_SEED_BASE = 1000  # training seeds of the noise repeats: far from the study's own
GRID_LABELS = {"host", *(str(spec) for spec in paper_variants())}
# A trial's kind: one of the grid's 16 configurations, another uniform one (e.g. "avg" everywhere, or a
# linear-with-context variant the paper's grid leaves out), or mixed (different choices per pair).
KINDS = ("grid", "off-grid", "mixed")
PSNR = METRIC_PREFIX + "psnr"


@dataclasses.dataclass
class Arm:
    """One compared arm: its completed trials (as a `reports.trials_frame`) and what it cost."""

    name: str
    frame: pd.DataFrame
    wall_s: float
    cpu_s: float


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget-steps", type=int, default=DEMO["budget_steps"],
                        help=f"training steps per trial (default {DEMO['budget_steps']}, the demo's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="TPE sampler seeds of arm S (default 0 1 2)")
    parser.add_argument("--extra", type=int, default=16,
                        help="TPE trials after the grid in arm G+S (default 16; 0: no G+S)")
    parser.add_argument("--noise-seeds", type=int, default=4,
                        help="other seeds for each noise configuration (default 4; 0: skip)")
    parser.add_argument("--out", default="runs/bench_search", help="run directory (default runs/bench_search); "
                        "a run there is resumed, so pass a new one for a fresh measurement")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own); on a shared, loaded "
                        "machine 1 avoids the spinning of oversubscribed OpenMP threads")
    parser.add_argument("--markdown", help="also write the results as a Markdown section to this file")
    parser.add_argument("--quick", action="store_true",
                        help=f"tiny settings ({QUICK}, at most 2 seeds, 2 extra trials, 1 noise seed): a smoke test")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.extra, args.noise_seeds = args.seeds[:2], min(args.extra, 2), min(args.noise_seeds, 1)
    if min(args.extra, args.noise_seeds) < 0 or args.budget_steps < 1 or (args.threads or 1) < 1:
        parser.error("--extra and --noise-seeds must be >= 0, --budget-steps and --threads >= 1")
    return args


def base_settings(args: argparse.Namespace) -> SearchSettings:
    """The demo's settings at this benchmark's budget (what makes every arm's trials comparable)."""
    options: dict[str, Any] = {**DEMO, "budget_steps": args.budget_steps}
    if args.quick:
        options.update(QUICK)
    out = Path(args.out)
    return SearchSettings(study="bench", storage=str(out / "studies.log"), out=str(out), trials=GRID_TRIALS,
                          progress=False, **options)


def arm_context(context: SearchContext, name: str, trials: int, paper_grid: bool) -> SearchContext:
    """The shared context (host, data, space) with one arm's study name, trial count and checkpoint folder."""
    settings = dataclasses.replace(context.settings, study=name, trials=trials, paper_grid=paper_grid,
                                   out=str(Path(context.settings.out) / name))
    return dataclasses.replace(context, settings=settings)


def run_trials(context: SearchContext, name: str, trials: int, paper_grid: bool, sampler_seed: int) -> optuna.Study:
    """Create (or resume) one arm's study and run it to ``trials`` completed trials, printing each one.

    The trials are `indexnas.search.study.Objective`'s, as `indexnas search` runs them, but the loop is this one:
    `indexnas.search.study.work` re-seeds the sampler per call from the study's process count, and the arms need
    their own sampler seeds.
    """
    ctx = arm_context(context, name, trials, paper_grid)
    study = open_study(settings_storage(ctx.settings), ctx.settings, ctx)
    if not paper_grid and not study.trials:  # arm S starts from the untouched host, like the grid
        keep = search_space.params_for(search_space.uniform(ctx.spaces, IndexSpec("keep")), ctx.spaces)
        study.enqueue_trial(keep, user_attrs={"uniform": "host"})
    study.sampler = make_sampler(ctx.settings, seed_offset=sampler_seed - ctx.settings.seed)
    objective = Objective(ctx)
    with warnings.catch_warnings():  # experimental in Optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # a trial left RUNNING by an interrupted run
    while (step := next_step(counts(study), trials)) == "start":
        study.optimize(objective, n_trials=1, catch=(TrialFailure,), callbacks=[_print_trial(name)])
    if step == "wait":
        raise UserError(f"study {name!r} in {ctx.settings.storage} has a trial marked RUNNING by another process",
                        "wait for it to finish, or pass a new --out")
    keep_pareto_checkpoints(study, ctx.settings.out_dir)
    return study


def _print_trial(arm: str):
    def report(_study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        attrs = trial.user_attrs
        psnr = attrs.get("metrics", {}).get("psnr", float("nan"))
        print(f"  {arm} trial {trial.number:>2} {trial.state.name:<8} psnr {psnr:7.3f}  "
              f"params+ {attrs.get('params_added', 0):>8,}  {attrs.get('train_seconds', 0):5.1f} s  "
              f"{config_label(attrs.get('choices', {}))}", flush=True)
    return report


def timed(label: str, fn, *args) -> tuple[Any, float, float]:
    """(result, wall seconds, CPU seconds of this process: all its threads) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    print(f"{label} ...", flush=True)
    result = fn(*args)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{label}: {wall:.0f} s wall, {cpu:.0f} s CPU", flush=True)
    return result, wall, cpu


def complete_frame(study: optuna.Study, arm: str, first: int | None = None) -> pd.DataFrame:
    """The study's completed trials (the first ``first`` of them, in trial order) as a trials frame, with
    each trial's configuration label, kind (grid / off-grid / mixed) and arm."""
    frame = trials_frame(results_from_study(study))
    attrs = dict(frame.attrs)
    frame = frame[frame["state"] == "COMPLETE"].sort_values("number")
    frame = frame.head(first) if first is not None else frame
    frame = frame.copy()
    frame.attrs.update(attrs)
    frame["config"] = [config_label(row) for row in _choices(frame)]
    frame["kind"] = [kind(row) for row in _choices(frame)]
    frame["arm"] = arm
    return frame


def _choices(frame: pd.DataFrame) -> list[dict[str, str]]:
    columns = [c for c in frame.columns if c.startswith(CHOICE_PREFIX)]
    return [{c[len(CHOICE_PREFIX):]: row[c] for c in columns} for _, row in frame.iterrows()]


def config_label(choices: dict[str, str]) -> str:
    """"m2o-nl" for a uniform configuration ("host" when all keep), else the per-pair choices joined by ' / '."""
    values = list(choices.values())
    if not values:
        return "?"
    if len(set(values)) == 1:
        return "host" if values[0] == "keep" else values[0]
    return " / ".join(values)


def kind(choices: dict[str, str]) -> str:
    """"grid", "off-grid" (uniform, but not one of the grid's 16) or "mixed"."""
    if len(set(choices.values())) > 1:
        return "mixed"
    return "grid" if config_label(choices) in GRID_LABELS else "off-grid"


def points(frame: pd.DataFrame) -> np.ndarray:
    """(PSNR, Delta params) per completed trial."""
    return np.column_stack([frame[PSNR].to_numpy(float), frame["params_added"].to_numpy(float)])


def hypervolumes(arm: Arm, host_psnr: float, max_params: float) -> dict[str, float]:
    """The arm's hypervolume in log10(1 + params) and in linear params, on the common references."""
    log_reference = (host_psnr, float(log_params(max_params)) + PARAMS_REFERENCE_MARGIN)
    curve = hypervolume_curve(arm.frame, log_reference)
    linear = hypervolume_2d(points(arm.frame), (host_psnr, 1.1 * max_params), ("maximize", "minimize"))
    return {"log": float(curve["hypervolume"].iloc[-1]), "linear": linear, "curve": curve["hypervolume"].to_numpy()}


def front(frame: pd.DataFrame) -> pd.DataFrame:
    """The 2-D Pareto front (PSNR up, Delta params down) of an arm, cheapest first."""
    mask = pareto_mask(points(frame), ("maximize", "minimize"))
    return frame[mask].sort_values(["params_added", PSNR])


def dominations(candidates: pd.DataFrame, grid: pd.DataFrame) -> list[tuple[pd.Series, list[pd.Series]]]:
    """Each trial of ``candidates`` outside the grid with the grid trials it dominates in (PSNR, Delta params)."""
    found = []
    for _, trial in candidates[candidates["kind"] != "grid"].iterrows():
        beaten = [g for _, g in grid.iterrows() if dominates(trial, g)]
        if beaten:
            found.append((trial, beaten))
    return found


def dominates(a: pd.Series, b: pd.Series) -> bool:
    """Trial ``a`` is at least as good as ``b`` in PSNR and Delta params, and better in one."""
    pa, pb = a[PSNR], b[PSNR]
    ca, cb = a["params_added"], b["params_added"]
    return bool(pa >= pb and ca <= cb and (pa > pb or ca < cb))


def noise_subjects(arms: list[Arm], best: pd.Series) -> dict[str, pd.Series]:
    """What the seed noise is measured on: the host, the grid's best, and the challenger outside the grid
    (the highest-PSNR trial that dominates the grid's best, else the highest-PSNR trial outside the grid)."""
    grid = arms[0].frame
    subjects = {"host": grid[grid["config"] == "host"].iloc[0], "grid's best": best}
    outside = pd.concat([a.frame[a.frame["kind"] != "grid"] for a in arms], ignore_index=True)
    if not outside.empty:
        beating = outside[[dominates(row, best) for _, row in outside.iterrows()]]
        pool = beating if not beating.empty else outside
        subjects["challenger" if not beating.empty else "best outside the grid"] = pool.iloc[int(np.argmax(pool[PSNR]))]
    return subjects


def noise_repeats(context: SearchContext, trial: pd.Series, count: int) -> list[float]:
    """PSNR of one trial's configuration trained again with ``count`` other seeds."""
    choices = {name[len(CHOICE_PREFIX):]: IndexSpec.parse(value) for name, value in trial.items()
               if name.startswith(CHOICE_PREFIX)}
    settings = context.settings
    values = []
    for index in range(count):
        seed = settings.seed + NOISE_SEED_BASE + index
        torch.manual_seed(seed)  # the IndexNet's initial weights vary with the seed too, like the training order
        model = context.space.rewrite(choices).model
        problem = context.problem
        config = dataclasses.replace(problem.config(budget(settings, "noise")), seed=seed)
        result = train_and_evaluate(model, problem.task_spec, problem.train_set, problem.val_set, config)
        values.append(result.metrics["psnr"])
        print(f"  noise: {trial['config']} with seed {seed}: psnr {values[-1]:.3f}", flush=True)
    return values


def machine() -> str:
    """CPU model, cores, torch threads and version, and the load average (the machine may be shared)."""
    model = platform.processor() or "unknown CPU"
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return (f"{model}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"optuna {optuna.__version__}, Python {platform.python_version()}; load average {load}")


def render(arms: list[Arm], scores: dict[str, dict[str, Any]], noise: dict[str, tuple[pd.Series, list[float]]],
           best: pd.Series,
           references: tuple[float, float], setup: dict[str, Any]) -> str:
    """The results as Markdown: settings, hypervolume table, curves, fronts, dominations, noise."""
    lines = [*_setup_lines(references, setup), "", *_summary_table(arms, scores)]
    hosts = ", ".join(f"{a.name} {a.frame[a.frame['config'] == 'host'][PSNR].iloc[0]:.3f}" for a in arms
                      if (a.frame["config"] == "host").any())
    lines += ["", f"The host trial's PSNR in each arm (the same configuration, data and seed): {hosts} dB."]
    searched = [scores[a.name]["log"] for a in arms if a.name.startswith("S")]
    if len(searched) > 1:
        lines += ["", f"Arm S over {len(searched)} sampler seeds: HV log mean {np.mean(searched):.3f}, "
                  f"min {min(searched):.3f}, max {max(searched):.3f} (G: {scores[arms[0].name]['log']:.3f})."]
    if noise:
        lines += ["", *_noise_table(noise)]
    lines += ["", *_curve_table(arms, scores)]
    for arm in arms:
        lines += ["", f"Pareto front of {arm.name} (PSNR vs Delta params):", "",
                  "| trial | kind | configuration | PSNR | Delta params |", "|---|---|---|---|---|"]
        lines += [f"| {r['number']} | {r['kind']} | {r['config']} | {r[PSNR]:.3f} | {int(r['params_added']):,} |"
                  for _, r in front(arm.frame).iterrows()]
    lines += ["", *_domination_lines(arms, best)]
    return "\n".join(lines) + "\n"


def _setup_lines(references: tuple[float, float], setup: dict[str, Any]) -> list[str]:
    return [
        f"Command: `{setup['command']}`  ",
        f"Machine: {setup['machine_start']} (start); load average at the end {setup['load_end']}  ",
        f"Settings: {setup['settings']}  ",
        f"Host warm start: {setup['host_wall']:.0f} s wall, {setup['host_cpu']:.0f} s CPU; whole run "
        f"{setup['total_wall'] / 60:.1f} min wall, {setup['total_cpu'] / 60:.1f} min CPU (all threads).  ",
        f"Reference point: PSNR {references[0]:.3f} dB (arm G's host trial) and Delta params {references[1]:,.0f} "
        f"(the largest of any arm): HV log is in dB x log10(1 + params) up to log10(1 + {references[1]:,.0f}) + "
        f"{PARAMS_REFERENCE_MARGIN}; HV linear in dB x params up to 1.1 x {references[1]:,.0f}.  ",
        f"Pairs (the order of a mixed configuration's choices): {setup['pairs']}",
    ]


def _summary_table(arms: list[Arm], scores: dict[str, dict[str, Any]]) -> list[str]:
    baseline = scores[arms[0].name]
    lines = ["| arm | trials | HV log | HV log / G | HV linear | HV linear / G | best PSNR "
             "| front: grid/off-grid/mixed | wall | CPU |", "|---|---|---|---|---|---|---|---|---|---|"]
    for arm in arms:
        score, on_front = scores[arm.name], front(arm.frame)
        kinds = "/".join(str(int((on_front["kind"] == k).sum())) for k in KINDS)
        lines.append(f"| {arm.name} | {len(arm.frame)} | {score['log']:.3f} | {_ratio(score['log'], baseline['log'])} "
                     f"| {score['linear']:,.0f} | {_ratio(score['linear'], baseline['linear'])} "
                     f"| {arm.frame[PSNR].max():.3f} | {kinds} "
                     f"| {arm.wall_s / 60:.1f} min | {arm.cpu_s / 60:.1f} min |")
    return lines


def _noise_table(noise: dict[str, tuple[pd.Series, list[float]]]) -> list[str]:
    lines = ["Seed noise (the same configuration trained again with other seeds):", "",
             "| role | arm trial | configuration | Delta params | PSNR in the study | PSNR, other seeds | mean | sd "
             "| range |", "|---|---|---|---|---|---|---|---|---|"]
    for role, (trial, values) in noise.items():
        every = [trial[PSNR], *values]
        lines.append(f"| {role} | {trial['arm']} {trial['number']} | {trial['config']} | {int(trial['params_added']):,} "
                     f"| {trial[PSNR]:.3f} | {', '.join(f'{v:.3f}' for v in values)} | {np.mean(every):.3f} "
                     f"| {np.std(every, ddof=1):.3f} | {max(every) - min(every):.3f} |")
    return lines


def _curve_table(arms: list[Arm], scores: dict[str, dict[str, Any]]) -> list[str]:
    sizes = {len(a.frame) for a in arms}
    columns = sorted({n for n in (4, 8, 12, 16, 24, 32, 48, 64) if n <= max(sizes)} | sizes)
    lines = ["Hypervolume (log) after n completed trials:", "",
             "| arm | " + " | ".join(f"n={n}" for n in columns) + " |", "|---|" + "---|" * len(columns)]
    for arm in arms:
        curve = scores[arm.name]["curve"]
        lines.append(f"| {arm.name} | " + " | ".join(f"{curve[n - 1]:.3f}" if n <= len(curve) else "" for n in columns)
                     + " |")
    return lines


def _domination_lines(arms: list[Arm], best: pd.Series) -> list[str]:
    """Per arm: how many trials outside the grid dominate a grid trial, and which grid trials the ones on
    the arm's front dominate."""
    lines = [f"Trials outside the grid that dominate grid trials (the grid's best PSNR: {best['config']}, "
             f"{best[PSNR]:.3f} dB, {int(best['params_added']):,} params); listed: those on their arm's front:", ""]
    for arm in arms:
        found, outside = dominations(arm.frame, arms[0].frame), int((arm.frame["kind"] != "grid").sum())
        if not outside:
            continue
        lines.append(f"- {arm.name}: {len(found)} of its {outside} trials outside the grid dominate at least one "
                     "grid trial; of them, dominating the grid's best: "
                     f"{sum(best['number'] in {b['number'] for b in beaten} for _, beaten in found)}")
        on_front = set(front(arm.frame)["number"])
        for trial, beaten in found:
            if trial["number"] in on_front:
                names = ", ".join(b["config"] + (" (the grid's best)" if b["number"] == best["number"] else "")
                                  for b in beaten)
                lines.append(f"  - trial {trial['number']} ({trial['kind']}) {trial['config']} ({trial[PSNR]:.3f} dB, "
                             f"{int(trial['params_added']):,} params) dominates {names}")
    return lines


def _ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.2f}" if baseline > 0 else "n/a"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = base_settings(args)
    command = "python benchmarks/bench_search.py " + " ".join(sys.argv[1:] if argv is None else argv)
    setup: dict[str, Any] = {"command": command.strip(), "machine_start": machine(),
                             "settings": f"denoise, {settings.model} width {settings.width}, {settings.budget_steps} "
                             f"steps x batch {settings.batch_size} (patch {settings.patch}, lr {settings.lr:g}, sigma "
                             f"{settings.sigma:g}), training seed {settings.seed}, eval_size {settings.eval_size}"}
    print(f"{dt.datetime.now():%Y-%m-%d %H:%M:%S} {setup['machine_start']}", flush=True)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    context, setup["host_wall"], setup["host_cpu"] = timed("host warm start (trained once, shared)", prepare, settings)
    setup["pairs"] = " / ".join(p["name"] for p in context.pairs)

    grid_study, wall, cpu = timed("arm G: the paper's grid", run_trials, context, "G", GRID_TRIALS, True, args.seeds[0])
    arms = [Arm("G", complete_frame(grid_study, "G", GRID_TRIALS), wall, cpu)]
    for seed in args.seeds:
        study, wall, cpu = timed(f"arm S seed {seed}: host + TPE", run_trials, context, f"S-seed{seed}", GRID_TRIALS,
                                 False, seed)
        arms.append(Arm(f"S-seed{seed}", complete_frame(study, f"S-seed{seed}"), wall, cpu))
    sequences = {tuple(arm.frame["config"]) for arm in arms[1:]}
    if len(args.seeds) > 1 and len(sequences) == 1:
        raise UserError("every sampler seed of arm S proposed the same configurations: the seed did not reach "
                        "the sampler", "check how search.study sets the study's sampler")
    if args.extra:
        study, wall, cpu = timed(f"arm G+S: grid + {args.extra} TPE", run_trials, context, "G",
                                 GRID_TRIALS + args.extra, True, args.seeds[0])
        name = f"G+S-seed{args.seeds[0]}"  # its cost includes the grid's
        arms.append(Arm(name, complete_frame(study, name), arms[0].wall_s + wall, arms[0].cpu_s + cpu))

    grid = arms[0]
    best = grid.frame.loc[grid.frame[PSNR].idxmax()]
    noise = {}
    if args.noise_seeds:
        for role, trial in noise_subjects(arms, best).items():
            values, _, _ = timed(f"noise: {role} {trial['config']} with {args.noise_seeds} other seeds",
                                 noise_repeats, context, trial, args.noise_seeds)
            noise[role] = (trial, values)
    host = grid.frame[grid.frame["config"] == "host"]
    host_psnr = float(host[PSNR].iloc[0]) if not host.empty else float(grid.frame.attrs["host_metric"])
    max_params = float(max(arm.frame["params_added"].max() for arm in arms))
    scores = {arm.name: hypervolumes(arm, host_psnr, max_params) for arm in arms}
    setup["total_wall"], setup["total_cpu"] = time.perf_counter() - wall0, time.process_time() - cpu0
    setup["load_end"] = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    text = render(arms, scores, noise, best, (host_psnr, max_params), setup)
    print("\n" + text)
    for arm in arms[1:]:
        print(f"ratio {arm.name} / G: hypervolume log {_ratio(scores[arm.name]['log'], scores['G']['log'])}, "
              f"linear {_ratio(scores[arm.name]['linear'], scores['G']['linear'])}")
    if args.markdown:
        atomic_write_bytes(text.encode(), Path(args.markdown))
        print(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as error:
        print(f"bench_search: error: {error}", file=sys.stderr)
        sys.exit(2)
