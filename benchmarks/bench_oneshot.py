"""One-shot ranking check: does the supernet score rank configurations as stand-alone training does?

On the demo's denoising search (`indexnas.search.demo.DEMO`: dncnn_segnet at width 0.25, built-in data): one
warm host and one supernet trained from it (`search.oneshot.trained_supernet`, 4 x the trial budget, a path
per batch), then each of 25 configurations (the paper's 15 uniform ones and 10 mixed ones drawn per pair) is
scored both ways: with the supernet's shared weights after BatchNorm recalibration (`TaskProblem.path_scorer`,
as `--strategy oneshot` scores), and stand-alone, fine-tuned from the warm host exactly as a study trial is
(`study.train_and_score` with the trial's seed). Figures: Kendall's tau and Spearman's rho (with p-values)
between the two scores over all 25, the 15 and the 10; where the supernet's favourite lands stand-alone; and
what each way cost. Usage::

    python benchmarks/bench_oneshot.py --threads 1        # the demo's settings (~15 min on one idle core)
    python benchmarks/bench_oneshot.py --quick            # a smoke run (tiny settings, 5 configurations)
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from indexnas.atomic import atomic_write_bytes
from indexnas.spec import paper_variants
from indexnas.search import oneshot
from indexnas.search import pair_space
from indexnas.search.canonical import configuration_key
from indexnas.search.demo import DEMO
from indexnas.search.scoring import trial_seed
from indexnas.search.settings import SearchSettings
from indexnas.search.context import SearchContext, budget, prepare, train_and_score
from indexnas.seeding import seed_everything
from indexnas.surgery.supernet import Supernet
from indexnas.tasks.problem import TaskProblem

from bench_search import machine  # the machine line every search benchmark prints (benchmarks/ is on sys.path)

QUICK = dict(budget_steps=8, batch_size=4)
MIXED = 10


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/bench_oneshot", help="run directory (warm host and supernet cached there)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (1 on a shared machine)")
    parser.add_argument("--markdown", help="also write the results as Markdown to this file")
    parser.add_argument("--quick", action="store_true", help=f"tiny settings ({QUICK}), 3 paper + 2 mixed configurations")
    return parser.parse_args(argv)


def configurations(context: SearchContext, supernet: Supernet, mixed: int, paper: int) -> list[tuple[str, dict]]:
    """The paper's uniform configurations the pairs allow, then ``mixed`` distinct non-uniform ones drawn per pair."""
    chosen: list[tuple[str, dict]] = []
    seen: set[str] = set()
    for spec in paper_variants()[:paper]:
        choices = {n: str(s) for n, s in pair_space.uniform(context.spaces, spec).items()}
        if pair_space.params_for(choices, context.spaces) is not None:
            chosen.append((str(spec), choices))
            seen.add(configuration_key(choices, context.pairs))
    rng = random.Random(context.settings.seed)
    while sum(label == "mixed" for label, _ in chosen) < mixed:
        choices = oneshot.draw_path(context.spaces, supernet, rng)
        key = configuration_key(choices, context.pairs)
        if key not in seen and len(set(choices.values())) > 1:
            chosen.append(("mixed", choices))
            seen.add(key)
    return chosen


def correlation(a: list[float], b: list[float]) -> str:
    tau, tau_p = stats.kendalltau(a, b)
    rho, rho_p = stats.spearmanr(a, b)
    return f"{tau:.2f} ({tau_p:.3f}) | {rho:.2f} ({rho_p:.3f})"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    options = {**DEMO, **(QUICK if args.quick else {})}
    settings = SearchSettings(study="oneshot", storage=str(Path(args.out) / "studies.log"), out=args.out,
                              progress=False, strategy="oneshot", **options)
    start, cpu = time.perf_counter(), time.process_time()
    context = prepare(settings, TaskProblem)
    print(f"warm host ready ({time.perf_counter() - start:.0f} s)", flush=True)
    supernet, facts = oneshot.trained_supernet(context)
    print(f"supernet ready: {facts['steps']} steps, trained {facts['train_seconds']:.0f} s", flush=True)
    score = context.problem.path_scorer(oneshot.RECALIBRATION)
    problem, metric = context.problem, context.problem.task_spec.primary_metric

    rows = []
    for number, (label, choices) in enumerate(configurations(context, supernet, 2 if args.quick else MIXED,
                                                              3 if args.quick else 15)):
        begun = time.perf_counter()
        supernet.activate(choices)
        shared, params = score(supernet), supernet.params_added()
        score_seconds = time.perf_counter() - begun
        seed = trial_seed(settings.seed, number)  # a study trial: its seed for the IndexNets and the batches
        seed_everything(seed)
        model = context.space.rewrite(choices).model
        seed_everything(seed)
        _, train_seconds, metrics = train_and_score(problem, model, dataclasses.replace(budget(settings, label), seed=seed))
        rows.append(dict(label=label, choices=choices, params=params, shared=shared, alone=metrics[metric],
                         score_seconds=score_seconds, train_seconds=train_seconds))
        print(f"  {label:14s} +{params:>8,}  supernet {shared:6.2f}  stand-alone {metrics[metric]:6.2f}  "
              f"({time.perf_counter() - start:.0f} s)", flush=True)

    lines = [f"Command: `python benchmarks/bench_oneshot.py {' '.join(sys.argv[1:] if argv is None else argv)}`  ",
             f"Machine: {machine()}  ",
             f"Settings: denoise, {settings.model} width {settings.width}, trials {settings.budget_steps} steps x batch "
             f"{settings.batch_size} from the warm host; supernet {facts['steps']} steps from the warm host, a path per "
             f"batch; supernet score: {metric} on the 240 crops after BatchNorm recalibration on "
             f"{oneshot.RECALIBRATION} crops; stand-alone: {metric} on the same crops (a study trial's score)  ", "",
             "| configuration | params added | supernet | stand-alone |", "|---|---|---|---|"]
    for row in rows:
        name = row["label"] if row["label"] != "mixed" else "mixed: " + " / ".join(row["choices"].values())
        lines.append(f"| {name} | {row['params']:,} | {row['shared']:.2f} | {row['alone']:.2f} |")
    lines += ["", "| configurations | n | Kendall tau (p) | Spearman rho (p) |", "|---|---|---|---|"]
    for title, subset in (("all", rows), ("paper's uniform", [r for r in rows if r["label"] != "mixed"]),
                          ("mixed", [r for r in rows if r["label"] == "mixed"])):
        if len(subset) > 2:
            lines.append(f"| {title} | {len(subset)} | "
                         f"{correlation([r['shared'] for r in subset], [r['alone'] for r in subset])} |")
    alone = [r["alone"] for r in rows]
    favourite = rows[int(np.argmax([r["shared"] for r in rows]))]
    rank = 1 + sum(a > favourite["alone"] for a in alone)
    best = rows[int(np.argmax(alone))]
    lines += ["", f"The supernet's favourite ({favourite['label']}, {favourite['shared']:.2f}) is number {rank} of "
              f"{len(rows)} stand-alone ({favourite['alone']:.2f}); the stand-alone best is {best['label']} "
              f"({best['alone']:.2f}, number {1 + sum(r['shared'] > best['shared'] for r in rows)} by the supernet).  ",
              f"Cost: supernet {facts['steps']} steps ({facts['train_seconds']:.0f} s) + "
              f"{sum(r['score_seconds'] for r in rows):.0f} s scoring {len(rows)} configurations; stand-alone "
              f"{len(rows)} x {settings.budget_steps} = {len(rows) * settings.budget_steps} steps "
              f"({sum(r['train_seconds'] for r in rows):.0f} s training).  ",
              f"Whole run: {(time.perf_counter() - start) / 60:.1f} min wall, {(time.process_time() - cpu) / 60:.1f} min CPU."]
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    if args.markdown:
        atomic_write_bytes(text.encode(), Path(args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
