"""Multi-fidelity check: do early scores rank configurations as their final scores do?

Before any pruning (successive halving, Hyperband) is trusted, this measures, on the demo's denoising search
(`indexnas.search.demo.DEMO`: dncnn_segnet at width 0.25, built-in data), the rank correlation between a trial's
score after 1/4 and 1/2 of its budget and after the whole budget, over the untouched host and the paper's 15
uniform configurations. Every configuration fine-tunes the one warm-started host exactly as a study trial does
(`indexnas.search.context.prepare`, trial seed `search.scoring.trial_seed`, BatchNorm recalibrated before every
score) and is scored at the intermediate steps on a copy (`TrainConfig.eval_at`), so its run is the same as
without them. Figures: Spearman's rho and Kendall's tau (with their p-values) on the 240 crops and on the whole
photographs, the leader at each fidelity, and whether halving at that fidelity (keeping the better half)
would keep the final top 3.

A second, small part shows the BatchNorm fix: a few configurations trained with the running statistics as
trained on the 40x40 patches alone (`final_phase=0`, `bn_recalibration=0`: the training before the fix of
bench_batchnorm.py), scored, then recalibrated on 128x128 training crops and scored again. Usage::

    python benchmarks/bench_fidelity.py --threads 1                  # the demo's budget (150 steps)
    python benchmarks/bench_fidelity.py --quick                      # a smoke test (~1 min)
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from indexnas.atomic import atomic_write_bytes
from indexnas.spec import IndexSpec, paper_variants
from indexnas.search.demo import DEMO
from indexnas.search.scoring import trial_seed
from indexnas.search.settings import SearchSettings
from indexnas.search.context import SearchContext, budget, prepare
from indexnas.tasks.train import evaluate_items, recalibrate_batchnorm, resolve_device, train_and_evaluate
from indexnas.tasks.problem import TaskProblem

from bench_search import machine  # the machine line every search benchmark prints (benchmarks/ is on sys.path)

FRACTIONS = (0.25, 0.5)
BN_SUBJECTS = ("keep", "holistic", "m2o", "o2o-shared-nl")
QUICK = dict(budget_steps=8, batch_size=4)

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget-steps", type=int, default=DEMO["budget_steps"])
    parser.add_argument("--out", default="runs/bench_fidelity", help="run directory (the warm host is cached there)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (1 on a shared machine)")
    parser.add_argument("--markdown", help="also write the results as Markdown to this file")
    parser.add_argument("--quick", action="store_true", help=f"tiny settings ({QUICK}), 4 configurations")
    args = parser.parse_args(argv)
    if args.budget_steps < 4:
        parser.error("--budget-steps must be >= 4 (scores at 1/4 and 1/2 of it)")
    return args

def configurations(quick: bool) -> list[tuple[str, IndexSpec]]:
    every = [("host", IndexSpec("keep")), *((str(s), s) for s in paper_variants())]
    return every[:4] if quick else every

def train_one(context: SearchContext, spec: IndexSpec, number: int, **config_changes) -> tuple:
    """(model, TrainResult) of one configuration fine-tuned from the warm host as study trial ``number``."""
    settings, problem = context.settings, context.problem
    seed = trial_seed(settings.seed, number)
    torch.manual_seed(seed)
    model = context.space.rewrite({pair["name"]: spec for pair in context.pairs}).model
    config = dataclasses.replace(problem.config(budget(settings, str(spec))), seed=seed, **config_changes)
    return model, train_and_evaluate(model, problem.task_spec, problem.train_set, problem.val_set, config)


def correlations(early: list[float], final: list[float]) -> dict[str, float]:
    rho, rho_p = stats.spearmanr(early, final)
    tau, tau_p = stats.kendalltau(early, final)
    return {"rho": float(rho), "rho_p": float(rho_p), "tau": float(tau), "tau_p": float(tau_p)}

def halving_keeps_top(early: list[float], final: list[float], top: int = 3) -> int:
    """How many of the final top ``top`` are in the better half by the early score."""
    kept = set(np.argsort(early)[::-1][: (len(early) + 1) // 2])
    return len(kept & set(np.argsort(final)[::-1][:top]))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    options = {**DEMO, "budget_steps": args.budget_steps, **(QUICK if args.quick else {})}
    settings = SearchSettings(study="fidelity", storage=str(Path(args.out) / "studies.log"), out=args.out,
                              progress=False, **options)
    steps = settings.budget_steps
    marks = tuple(max(1, round(f * steps)) for f in FRACTIONS)
    start, cpu = time.perf_counter(), time.process_time()
    lines = [f"Command: `python benchmarks/bench_fidelity.py {' '.join(sys.argv[1:] if argv is None else argv)}`  ",
             f"Machine: {machine()}  ",
             f"Settings: denoise, {settings.model} width {settings.width}, {steps} steps x batch {settings.batch_size} "
             f"(patch {settings.patch}, lr {settings.lr:g}, cosine), early scores after {marks[0]} and {marks[1]} "
             "steps; validation: 240 crops of 96x96 (the score) and the 3 whole held-out photographs  "]
    context = prepare(settings, TaskProblem)
    print(f"warm host ready ({time.perf_counter() - start:.0f} s)", flush=True)

    names, scores = [], {part: {mark: [] for mark in (*marks, steps)} for part in ("psnr", "whole_psnr")}
    for number, (name, spec) in enumerate(configurations(args.quick)):
        _, result = train_one(context, spec, number, eval_at=marks)
        names.append(name)
        for part in scores:
            for mark in marks:
                scores[part][mark].append(result.intermediate[mark][part])
            scores[part][steps].append(result.metrics[part])
        print(f"  {name:16s} " + "  ".join(f"{part} " + " / ".join(f"{scores[part][m][-1]:.2f}" for m in (*marks, steps))
                                       for part in scores) + f"  ({time.perf_counter() - start:.0f} s)", flush=True)

    lines += ["", "| configuration | crops @1/4 | crops @1/2 | crops final | whole @1/4 | whole @1/2 | whole final |",
              "|---|---|---|---|---|---|---|"]
    for i, name in enumerate(names):
        lines.append(f"| {name} | " + " | ".join(f"{scores[part][m][i]:.2f}" for part in scores for m in (*marks, steps))
                     + " |")
    lines += ["", "| score | early | Spearman rho (p) | Kendall tau (p) | leader early -> final | final top 3 kept "
              "by halving |", "|---|---|---|---|---|---|"]
    for part, label in (("psnr", "240 crops"), ("whole_psnr", "whole images")):
        final = scores[part][steps]
        for fraction, mark in zip(FRACTIONS, marks, strict=True):
            early = scores[part][mark]
            c = correlations(early, final)
            lines.append(f"| {label} | {fraction:g} ({mark} steps) | {c['rho']:.2f} ({c['rho_p']:.3f}) | "
                         f"{c['tau']:.2f} ({c['tau_p']:.3f}) | {names[int(np.argmax(early))]} -> "
                         f"{names[int(np.argmax(final))]} | {halving_keeps_top(early, final)} of 3 |")

    lines += ["", "BatchNorm statistics, before (running statistics of the 40x40 training patches) and after "
              "recalibration on 256 training crops of 128x128 (PSNR, dB):", "",
              "| configuration | crops before | crops after | whole before | whole after | whole per photo before "
              "| whole per photo after |", "|---|---|---|---|---|---|---|"]
    device = resolve_device("auto")
    subjects = BN_SUBJECTS[:2] if args.quick else BN_SUBJECTS
    for number, name in enumerate(subjects):
        model, before = train_one(context, IndexSpec.parse(name), 100 + number, bn_recalibration=0,
                                  final_phase=0.0)
        problem = context.problem
        config = dataclasses.replace(problem.config(budget(settings, name)), seed=trial_seed(settings.seed, 100 + number))
        recalibrate_batchnorm(model, problem.task_spec, problem.train_set, config, device, "off")
        after, items = evaluate_items(model, problem.task_spec, problem.val_set, config, device=device)
        lines.append(f"| {name} | {before.metrics['psnr']:.2f} | {after['psnr']:.2f} | {before.metrics['whole_psnr']:.2f} "
                     f"| {after['whole_psnr']:.2f} | {', '.join(f'{v:.2f}' for v in before.item_scores['whole'])} "
                     f"| {', '.join(f'{v:.2f}' for v in items['whole'])} |")
        print(lines[-1], flush=True)
    lines += ["", f"Whole run: {(time.perf_counter() - start) / 60:.1f} min wall, "
              f"{(time.process_time() - cpu) / 60:.1f} min CPU."]
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    if args.markdown:
        atomic_write_bytes(text.encode(), Path(args.markdown))
    return 0

if __name__ == "__main__":
    sys.exit(main())
