"""Which BatchNorm fix holds for every configuration: a final training phase on large crops against the stopgap.

On the demo's denoising search (`indexnas.search.demo.DEMO`), each case (a paper configuration and a trial
number, whose seed is `search.scoring.trial_seed(0, number)`) is fine-tuned from the warm host twice:
  patches      every step on the 40x40 training patches (`final_phase=0`)
  final phase  the last 25% of the steps on the training set's 128x128 `recalibration` crops (the default)
and each trained model is scored (PSNR on the 240 crops of 96x96 and on the 3 whole held-out photographs) with
  running      the running statistics as trained
  recal-128    statistics re-estimated (exact average, weights fixed) over 256 of the 128x128 crops
So "patches + running" is no fix, "patches + recal-128" the earlier stopgap, "final phase + ..." the fix.
With --diagnostics, the patch-trained models are also scored with each image's own statistics (per-image)
and with statistics re-estimated over 256 patches of 40x40 (recal-40: if that fixed it, the running
statistics would merely have lagged the weights). Usage::

    python benchmarks/bench_batchnorm.py --threads 1 [--out runs/bench_fidelity]   # reuses that run's warm host
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from indexnas.search.demo import DEMO
from indexnas.search.scoring import trial_seed
from indexnas.search.settings import SearchSettings
from indexnas.search.context import budget, prepare
from indexnas.tasks.train import TrainConfig, evaluate_items, fit, recalibrate_batchnorm, train_and_evaluate
from indexnas.spec import IndexSpec
from indexnas.tasks.problem import TaskProblem

# (configuration, trial number): 100-103 are bench_fidelity's BatchNorm cases (102: the m2o the stopgap cost
# 3.4 dB), 15 its m2o-nl-c, 201-202 other seeds of the two configurations the stopgap changed most.
CASES = (("keep", 100), ("holistic", 101), ("m2o", 102), ("o2o-shared-nl", 103), ("m2o-nl-c", 15),
         ("holistic", 201), ("m2o", 202))
TRAININGS = {"patches": 0.0, "final phase": 0.25}  # TrainConfig.final_phase


def per_image_statistics(model: nn.Module) -> nn.Module:
    """A copy whose BatchNorms normalise with each batch's (here: each image's) own statistics."""
    copied = copy.deepcopy(model)
    for norm in copied.modules():
        if isinstance(norm, nn.modules.batchnorm._BatchNorm):
            norm.track_running_stats, norm.running_mean, norm.running_var = False, None, None
    return copied


def recalibrated(model: nn.Module, problem, source, config: TrainConfig) -> nn.Module:
    """A copy with statistics re-estimated over 256 samples of `source.recalibration`."""
    copied = copy.deepcopy(model)
    recalibrate_batchnorm(copied, problem.task_spec, source, dataclasses.replace(config, bn_recalibration=256),
                          torch.device("cpu"), "off")
    return copied


def timing(ctx, settings: SearchSettings, rounds: int) -> int:
    """CPU seconds of one demo trial's training (the host configuration) under each regime, rounds interleaved."""
    problem = ctx.problem
    regimes = {"patches (no fix)": (0.0, 0), "patches + recal-128 (the stopgap)": (0.0, 256),
               "final phase + recal-128 (the default)": (0.25, 256)}
    seconds: dict[str, list[float]] = {label: [] for label in regimes}
    for round_ in range(rounds):
        for label, (phase, samples) in regimes.items():
            config = dataclasses.replace(problem.config(budget(settings, "keep")), seed=trial_seed(settings.seed, round_),
                                         final_phase=phase, bn_recalibration=samples)
            model = ctx.space.rewrite({}).model
            start = time.thread_time()
            fit(model, problem.task_spec, problem.train_set, config)
            seconds[label].append(time.thread_time() - start)
    base = statistics.median(seconds["patches + recal-128 (the stopgap)"])
    print(f"| regime | CPU s per {settings.budget_steps}-step trial (median of {rounds}) | vs the stopgap |\n|---|---|---|")
    for label, values in seconds.items():
        print(f"| {label} | {statistics.median(values):.1f} | {statistics.median(values) / base:.2f}x |")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/bench_fidelity")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--diagnostics", action="store_true", help="also per-image and recal-40 statistics")
    parser.add_argument("--cases", help="NAME:TRIAL,... instead of all CASES (e.g. to split the run over cores)")
    parser.add_argument("--timing", type=int, metavar="N", help="only time N rounds of one trial's training per "
                        "regime (CPU seconds of this thread: steady under load)")
    args = parser.parse_args()
    cases = CASES if not args.cases else [(c.split(":")[0], int(c.split(":")[1])) for c in args.cases.split(",")]
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = SearchSettings(study="fidelity", storage=str(Path(args.out) / "studies.log"), out=args.out,
                              progress=False, **DEMO)
    ctx = prepare(settings, TaskProblem)
    problem = ctx.problem
    if args.timing:
        return timing(ctx, settings, args.timing)
    crops40 = SimpleNamespace(recalibration=problem.train_set)
    rows = ["| configuration | trial | training | statistics | crops PSNR | whole PSNR | per photo (camera, coins, "
            "coffee) | seconds (train + recal) |", "|---|---|---|---|---|---|---|---|"]
    for name, number in cases:
        seed = trial_seed(settings.seed, number)
        for training, phase in TRAININGS.items():
            config = dataclasses.replace(problem.config(budget(settings, name)), seed=seed, bn_recalibration=0,
                                         final_phase=phase)
            torch.manual_seed(seed)
            model = ctx.space.rewrite({pair["name"]: IndexSpec.parse(name) for pair in ctx.pairs}).model
            result = train_and_evaluate(model, problem.task_spec, problem.train_set, problem.val_set, config)
            assert result.steps == settings.budget_steps, result.steps  # the final phase is part of the budget
            start = time.perf_counter()
            regimes = {"running": model, "recal-128": recalibrated(model, problem, problem.train_set, config)}
            seconds = {"running": result.train_seconds, "recal-128": result.train_seconds + time.perf_counter() - start}
            if args.diagnostics and not phase:
                regimes |= {"per-image": per_image_statistics(model),
                            "recal-40": recalibrated(model, problem, crops40, config)}
            for label, candidate in regimes.items():
                metrics, items = evaluate_items(candidate, problem.task_spec, problem.val_set, dataclasses.replace(
                    config, eval_batch_size=1 if label == "per-image" else None))
                rows.append(f"| {name} | {number} | {training} ({result.final_steps} final steps) | {label} | "
                            f"{metrics['psnr']:.2f} | {metrics['whole_psnr']:.2f} | "
                            f"{', '.join(f'{v:.2f}' for v in items['whole'])} | {seconds.get(label, float('nan')):.1f} |")
                print(rows[-1], flush=True)
    print("\n" + "\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
