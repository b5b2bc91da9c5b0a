"""Why encoder-decoders collapse on whole images, and what fixes it: BatchNorm statistics under five regimes.

On the demo's denoising search (`indexnas.search.cli.DEMO`), the warm host and a few paper configurations are
fine-tuned with the running statistics kept as trained (`bn_recalibration=0`), then scored on the 240 crops and
the 3 whole held-out photographs with:
  running      the running statistics of training (momentum 0.1 over 40x40 patches)
  per-image    each image's own statistics (train-mode BatchNorm at evaluation)
  recal-40     statistics re-estimated (exact average, weights fixed) over 256 training patches of 40x40:
               if this fixed it, the running statistics had lagged the weights
  recal-128    the same over 256 training crops of 128x128 (the default fix), with two sampling seeds
  recal-128/64 only 64 crops of 128x128: how much the fix depends on the sample size
Usage::

    python benchmarks/bench_batchnorm.py --threads 1 [--out runs/bench_fidelity]   # reuses that run's warm host
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from indexnas.spec import IndexSpec
from indexnas.search.cli import DEMO
from indexnas.search.scoring import trial_seed
from indexnas.search.settings import SearchSettings
from indexnas.search.study import budget, prepare
from indexnas.search.train import evaluate_items, recalibrate_batchnorm, train_and_evaluate

SUBJECTS = ("keep", "holistic", "m2o")


def per_image_statistics(model: nn.Module) -> nn.Module:
    """A copy whose BatchNorms normalise with each batch's (here: each image's) own statistics."""
    copied = copy.deepcopy(model)
    for norm in copied.modules():
        if isinstance(norm, nn.modules.batchnorm._BatchNorm):
            norm.track_running_stats, norm.running_mean, norm.running_var = False, None, None
    return copied


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/bench_fidelity")
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = SearchSettings(study="fidelity", storage=str(Path(args.out) / "studies.log"), out=args.out,
                              progress=False, **DEMO)
    ctx = prepare(settings)
    problem = ctx.problem
    crops40 = SimpleNamespace(recalibration=problem.train_set)
    rows = ["| configuration | regime | crops PSNR | whole PSNR | per photo (camera, coins, coffee) |", "|---|---|---|---|---|"]
    for number, name in enumerate(SUBJECTS):
        seed = trial_seed(settings.seed, 200 + number)
        config = dataclasses.replace(problem.config(budget(settings, name)), seed=seed, bn_recalibration=0)
        torch.manual_seed(seed)
        model = ctx.space.rewrite({pair["name"]: IndexSpec.parse(name) for pair in ctx.pairs}).model
        train_and_evaluate(model, problem.task_spec, problem.train_set, problem.val_set, config)
        regimes = {"running": model, "per-image": per_image_statistics(model)}
        for label, source, samples, recal_seed in (("recal-40", crops40, 256, seed),
                                                   ("recal-128", problem.train_set, 256, seed),
                                                   ("recal-128 (other seed)", problem.train_set, 256, seed + 1000),
                                                   ("recal-128/64", problem.train_set, 64, seed)):
            copied = copy.deepcopy(model)
            recalibrate_batchnorm(copied, problem.task_spec, source, dataclasses.replace(config, bn_recalibration=samples,
                                                                                 seed=recal_seed), torch.device("cpu"), "off")
            regimes[label] = copied
        for label, candidate in regimes.items():
            metrics, items = evaluate_items(candidate, problem.task_spec, problem.val_set, dataclasses.replace(config, eval_batch_size=1
                                            if label == "per-image" else None))
            rows.append(f"| {name} | {label} | {metrics['psnr']:.2f} | {metrics['whole_psnr']:.2f} | "
                        f"{', '.join(f'{v:.2f}' for v in items['whole'])} |")
            print(rows[-1], flush=True)
    print("\n" + "\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
