"""`indexnas search` (a study over per-pair IndexNet choices) and `indexnas demo` (the README's main job)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import sys
import time
import types
import typing
from collections.abc import Iterator
from dataclasses import MISSING, Field
from pathlib import Path
from typing import Any

from indexnas.errors import UserError
from indexnas.search.demo import DEMO_TRIALS, demo_settings
from indexnas.search.settings import (
    DEFAULT_RUNS, DEFAULT_STORAGE, SearchSettings, cli_default, declaration, default_out, flag,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    search = subparsers.add_parser(
        "search", help="search per-pair IndexNet choices with Optuna (accuracy vs parameters vs FLOPs)",
        description="Fine-tune the warm-started host with one IndexNet configuration per trial and keep the "
        "Pareto front of task metric, parameters added and GFLOPs. Re-running with the same --study resumes it; "
        "the same command on other machines joins it through a shared --storage.",
    )
    add_setting_options(search)
    search.add_argument("--no-report", dest="report", action="store_false",
                        help="do not write the HTML report at the end")
    search.set_defaults(handler=run_search_command)

    export = subparsers.add_parser(
        "export", help="write a searched trial as a ready model file (and optionally ONNX / torch.export)",
        description="Pick a kept (Pareto-optimal) trial of a study and write it as a self-describing model file that "
        "indexnas.load(PATH) turns into a ready nn.Module; optionally also as ONNX and a torch.export program.",
    )
    export.add_argument("study", metavar="STUDY", help="the study's name")
    export.add_argument("--storage", default=DEFAULT_STORAGE, help="where the study lives "
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


def cli_fields() -> list[Field]:
    """The SearchSettings fields declared as `indexnas search` options, in declaration order."""
    return [field for field in dataclasses.fields(SearchSettings) if declaration(field).cli]


def add_setting_options(parser: argparse.ArgumentParser) -> None:
    """One option per setting declared for the command line (search/settings.py), with its help and default."""
    from indexnas.surgery.loading import add_model_arg_option

    hints = typing.get_type_hints(SearchSettings)
    for field in cli_fields():
        if field.name == "model_args":  # KEY=VALUE pairs, the option the surgery commands share (surgery/loading.py)
            add_model_arg_option(parser)
        else:
            parser.add_argument(flag(field), dest=field.name, **option_keywords(field, hints[field.name]))


def option_keywords(field: Field, hint: Any) -> dict[str, Any]:
    """`add_argument` keywords of a setting's option, from its type, default, help and choices."""
    setting, default = declaration(field), cli_default(field)
    keywords: dict[str, Any] = {"help": setting.help}
    if hint is bool:  # a flag that flips the default (--no-paper-grid, --quiet)
        return {**keywords, "action": "store_false" if default else "store_true"}
    if default is MISSING:
        return {**keywords, "required": True}
    if isinstance(hint, types.UnionType):  # X | None: an X, or unset
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    if typing.get_origin(hint) is tuple:  # comma-separated on the command line; the setting's check parses it
        return {**keywords, "default": ",".join(map(str, default))}
    return {**keywords, "default": default, "type": hint, "choices": setting.choices}


def settings_from_args(args: argparse.Namespace) -> SearchSettings:
    """The settings `indexnas search` was given: its options, the study and run folder named when not given."""
    from indexnas.surgery.loading import parse_model_args

    values = {field.name: getattr(args, field.name) for field in cli_fields() if field.name != "model_args"}
    values["model_args"] = parse_model_args(args.model_arg)
    values["study"] = values["study"] or default_study(values)
    values["out"] = values["out"] or default_out(values["study"])
    return SearchSettings(**values)


def default_study(values: dict[str, Any]) -> str:
    """TASK-MODEL-MODE (the model descriptor made a file name), with -oneshot for that strategy."""
    strategy = "" if values["strategy"] == "trials" else f"-{values['strategy']}"
    return f"{values['task']}-{values['model'].replace(':', '_').replace('/', '_')}-{values['mode']}{strategy}"


def run_search_command(args: argparse.Namespace) -> int:
    return _run(settings_from_args(args), report=args.report)


def run_export_command(args: argparse.Namespace) -> int:
    import optuna

    from indexnas.search.export import export_trial, pick_trial
    from indexnas.search.record import CHOICES, UNIFORM, TrialRecord
    from indexnas.search.storage import open_storage
    from indexnas.search.storage_urls import locate_storage, mask_url

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
    return _run(demo_settings(Path(args.out), args.trials), report=True)


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
    from indexnas.search.run import run_search
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
