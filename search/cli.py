"""`indexnas search` (a study over per-pair IndexNet choices) and `indexnas demo` (the README's main job)."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from indexnas.errors import UserError
from indexnas.search.settings import MODES, PRUNERS, SAMPLERS, STRATEGIES, SearchSettings

DEFAULT_RUNS = Path("runs")
# The demo: a small denoising search that finishes on an idle 2-core CPU in roughly 10 minutes (20 trials, then
# its front retrained with 2 more seeds; README.md, "Quick start").
DEMO = dict(task="denoise", model="dncnn_segnet", width=0.25, budget_steps=150, batch_size=16,
            patch=40, sigma=25.0, lr=2e-3)
DEMO_TRIALS = 20


def register(subparsers: argparse._SubParsersAction) -> None:
    from indexnas.surgery.loading import add_model_arg_option

    search = subparsers.add_parser(
        "search", help="search per-pair IndexNet choices with Optuna (accuracy vs parameters vs FLOPs)",
        description="Fine-tune the warm-started host with one IndexNet configuration per trial and keep the "
        "Pareto front of task metric, parameters added and GFLOPs. Re-running with the same --study resumes it; "
        "the same command on other machines joins it through a shared --storage.",
    )
    search.add_argument("--task", required=True, help="denoise | segment | matting | depth")
    search.add_argument("--model", required=True, help="a zoo name, timm:NAME, smp:ARCH:ENCODER or file.py:factory")
    add_model_arg_option(search)
    search.add_argument("--trials", type=int, default=40, help="completed trials the study should hold (default 40)")
    search.add_argument("--budget-steps", type=int, default=500, help="training steps per trial (default 500)")
    search.add_argument("--budget-seconds", type=float, help="also stop each trial's training after this many seconds")
    search.add_argument("--study", help="study name (default: TASK-MODEL-MODE, with -oneshot for that strategy)")
    search.add_argument("--storage", help="journal:///path/study.log, a .log path, or postgresql://... "
                        "(default: runs/studies.log)")
    search.add_argument("--out", help="run directory for host weights, Pareto checkpoints and the report "
                        "(default: runs/STUDY)")
    search.add_argument("--workers", type=int, default=1, help="worker processes (one per GPU when there are GPUs)")
    search.add_argument("--mode", choices=MODES, default="pool", help="surgery mode (default pool)")
    search.add_argument("--width", type=float, help="zoo width multiplier (smaller is faster)")
    search.add_argument("--data", help="dataset folder in the task's standard layout (default: built-in offline data)")
    search.add_argument("--max-params", type=float, help="budget: parameters added; configurations over it are not trained")
    search.add_argument("--max-gflops", type=float, help="budget: GFLOPs of the whole model at --flops-size")
    search.add_argument("--objectives", default="metric,params",
                        help="what the study optimises, comma-separated: metric, params (added), gflops "
                        "(default metric,params; bound GFLOPs with --max-gflops)")
    search.add_argument("--sampler", choices=SAMPLERS, default="frontier",
                        help="what proposes the trials after the grid (default frontier: exact parameter costs, an "
                        "additive model of the metric, the configuration of largest optimistic hypervolume gain "
                        "next); tpe, nsga2 and random are Optuna's")
    search.add_argument("--strategy", choices=STRATEGIES, default="trials",
                        help="trials: every trial fine-tunes one configuration (default); oneshot: train one "
                        "weight-sharing supernet, score configurations with it, train its Pareto front as the trials")
    search.add_argument("--oneshot-steps", type=int, help="oneshot: supernet training steps (default 4 x --budget-steps)")
    search.add_argument("--oneshot-candidates", type=int, default=100,
                        help="oneshot: configurations the supernet scores beyond the host and the paper grid (default 100)")
    search.add_argument("--no-paper-grid", action="store_true", help="do not enqueue the paper's 15 uniform configurations")
    search.add_argument("--no-warm-start", action="store_true", help="train every trial from scratch")
    search.add_argument("--seed", type=int, default=0)
    search.add_argument("--batch-size", type=int, default=16)
    search.add_argument("--lr", type=float, default=1e-3)
    search.add_argument("--sigma", type=float, default=25.0, help="denoising noise level, 0-255 scale (default 25)")
    search.add_argument("--patch", type=int, default=40, help="training patch size (default 40, the paper's)")
    search.add_argument("--prune", choices=PRUNERS, default="off",
                        help="halving: stop a trial at a rung unless it is in the best 1/eta of the trials that "
                        "reached it (metric and parameters added); never the host or the paper grid (default off)")
    search.add_argument("--rungs", default="0.5", help="with --prune halving: fractions of the budget where trials "
                        "are scored, comma-separated (default 0.5; a quarter ranks configurations poorly)")
    search.add_argument("--reduction-factor", type=int, default=2,
                        help="with --prune halving: eta, the 1/eta kept at each rung (default 2)")
    search.add_argument("--retrain-seeds", type=int, default=2,
                        help="train each trial of the final Pareto front this many more times with other seeds and "
                        "report mean +- sd (default 2; 0: off)")
    search.add_argument("--no-report", action="store_true", help="do not write the HTML report at the end")
    search.add_argument("--quiet", action="store_true", help="no progress bars")
    search.set_defaults(handler=run_search_command)

    export = subparsers.add_parser(
        "export", help="write a searched trial as a ready model file (and optionally ONNX / torch.export)",
        description="Pick a kept (Pareto-optimal) trial of a study and write it as a self-describing model file that "
        "indexnas.load(PATH) turns into a ready nn.Module; optionally also as ONNX and a torch.export program.",
    )
    export.add_argument("study", metavar="STUDY", help="the study's name")
    export.add_argument("--storage", default=str(DEFAULT_RUNS / "studies.log"), help="where the study lives "
                        "(default runs/studies.log)")
    export.add_argument("--trial", default="best", help="a trial number, or best (default)")
    export.add_argument("--metric", help="with --trial best: the objective to be best at (default: the study's first)")
    export.add_argument("--out", required=True, help="the model file to write, e.g. model.pt")
    export.add_argument("--onnx", help="also write an ONNX file")
    export.add_argument("--torch-export", help="also write a torch.export program (.pt2)")
    export.set_defaults(handler=run_export_command)

    demo = subparsers.add_parser(
        "demo", help="a small denoising search on built-in data (roughly 10 minutes on a 2-core CPU) and its report",
        description="Search IndexNet choices for a narrow DnCNN-SegNet on the built-in denoising data (real photos "
        "from scikit-image), then write the study and an HTML report and print where they are.",
    )
    demo.add_argument("--out", default=str(DEFAULT_RUNS / "demo"), help="run directory (default runs/demo)")
    demo.add_argument("--trials", type=int, default=DEMO_TRIALS, help=f"completed trials (default {DEMO_TRIALS})")
    demo.set_defaults(handler=run_demo_command)


def run_search_command(args: argparse.Namespace) -> int:
    from indexnas.surgery.loading import parse_model_args

    strategy = "" if args.strategy == "trials" else f"-{args.strategy}"
    study_name = args.study or f"{args.task}-{args.model.replace(':', '_').replace('/', '_')}-{args.mode}{strategy}"
    settings = SearchSettings(
        task=args.task, model=args.model, study=study_name,
        storage=args.storage or str(DEFAULT_RUNS / "studies.log"), out=args.out or str(DEFAULT_RUNS / study_name),
        trials=args.trials, mode=args.mode, width=args.width, model_args=parse_model_args(args.model_arg),
        budget_steps=args.budget_steps,
        budget_seconds=args.budget_seconds, data=args.data, sigma=args.sigma, patch=args.patch,
        batch_size=args.batch_size, lr=args.lr, seed=args.seed, workers=args.workers, sampler=args.sampler,
        paper_grid=not args.no_paper_grid, warm_start=not args.no_warm_start, max_params=args.max_params,
        max_gflops=args.max_gflops, objectives=args.objectives, progress=not args.quiet, prune=args.prune,
        rungs=args.rungs, reduction_factor=args.reduction_factor, retrain_seeds=args.retrain_seeds,
        strategy=args.strategy, oneshot_steps=args.oneshot_steps, oneshot_candidates=args.oneshot_candidates,
    )
    return _run(settings, report=not args.no_report)


def run_export_command(args: argparse.Namespace) -> int:
    import optuna

    from indexnas.search.export import export_trial, pick_trial
    from indexnas.search.record import CHOICES, UNIFORM, TrialRecord
    from indexnas.search.storage import locate_storage, mask_url, open_storage

    journal = locate_storage(args.storage).journal
    if journal is not None and not journal.is_file():  # reading must not create an empty journal
        raise UserError(f"no study storage at {journal}", "pass the --storage the search wrote to")
    storage = open_storage(args.storage)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    if args.study not in names:
        raise UserError(f"no study {args.study!r} in {mask_url(args.storage)}",
                        f"studies there: {', '.join(names) or 'none'}; pass --storage for another file")
    trial = pick_trial(optuna.load_study(study_name=args.study, storage=storage), args.trial, args.metric)
    written = export_trial(trial, Path(args.out), args.onnx and Path(args.onnx),
                           args.torch_export and Path(args.torch_export))
    attrs = TrialRecord.of(trial)
    print(f"trial {trial.number} ({attrs.get(UNIFORM) or ' | '.join(attrs[CHOICES].values())})"
          f": {', '.join(str(path) for path in written)}")
    print(f"load it with: indexnas.load({str(written[0])!r})")
    return 0


def run_demo_command(args: argparse.Namespace) -> int:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out)
    settings = SearchSettings(study=f"demo-{stamp}", storage=str(out / "studies.log"), out=str(out / f"demo-{stamp}"),
                              trials=args.trials, progress=False, **DEMO)
    return _run(settings, report=True)


@contextlib.contextmanager
def progress_messages() -> Iterator[None]:
    """Show the search's INFO messages on this command's stderr, for this command only."""
    logger = logging.getLogger("indexnas")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def _run(settings: SearchSettings, report: bool) -> int:
    from optuna.trial import TrialState

    from indexnas.search.storage import storage_faults
    from indexnas.search.study import run_search
    from indexnas.search.summary import print_summary
    from indexnas.search.workers import interruptible
    from indexnas.tasks.problem import TaskProblem

    logging.getLogger("optuna").setLevel(logging.ERROR)  # failed trials are logged once, by us, without a traceback
    start = time.perf_counter()
    with progress_messages(), interruptible(), storage_faults(settings.storage):
        study = run_search(settings, TaskProblem)
    report_path = None
    if report:
        from indexnas.reports import write_report

        # the study's own report, refreshed; its model file has just run in this command
        report_path = write_report(study, settings.out_dir / "report", force=True, allow_code=True)
    print_summary(study, settings, time.perf_counter() - start, report_path)
    completed = sum(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False))
    if completed < settings.trials:
        print(f"indexnas: error: the study stopped with {completed} of {settings.trials} completed trials\n"
              "  fix: read the failed trials' reasons above (or in the report), fix the cause, and run the same "
              "command again to resume", file=sys.stderr)
        return 1
    return 0
