"""`indexnas report`: write a study's report folder (HTML page, tables, figures) from its storage or a results file."""

from __future__ import annotations

import argparse

from indexnas.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `report` to the indexnas command line."""
    report = subparsers.add_parser(
        "report",
        help="write a study's report: one self-contained HTML page, the paper-layout table, figures",
        description="Read a study (its storage URL and name) or a results.json written by an earlier report, and "
        "write OUT/report.html (self-contained: open it in any browser, offline), trials.csv, table.csv / "
        "table.md / table.tex (the paper's Tables 5-7 layout), results.json and figures/*.png|svg.",
    )
    report.add_argument("study", metavar="STUDY", nargs="?", help="the study name (not needed with --results)")
    report.add_argument("--storage", metavar="URL",
                        help="where the study lives: a journal .log file, journal:///abs/path.log, or an RDB URL")
    report.add_argument("--results", metavar="FILE", help="read a results.json instead of a study storage")
    report.add_argument("--out", metavar="DIR", required=True,
                        help="folder to write the report into (a report already there is kept unless --force)")
    report.add_argument("--force", action="store_true", help="replace the report files already in --out")
    report.add_argument("--mixed", type=int, default=5, metavar="N",
                        help="how many mixed (per-pair) Pareto trials close the paper-layout table (default 5)")
    report.add_argument("--allow-code", action="store_true",
                        help="rebuild a model given as file.py:factory to draw its index maps: this EXECUTES that "
                        "file, so pass it only for files you trust (without it, that figure is left out with a note)")
    report.set_defaults(handler=run_report)


def run_report(args: argparse.Namespace) -> int:
    from indexnas.reports.report import write_report
    from indexnas.reports.source import load_results, load_study

    if args.results:
        if args.storage:
            raise UserError("both --results and --storage given", "pass one source: a results file or a study storage")
        results = load_results(args.results)
        if args.study and args.study != results.study_name:
            raise UserError(f"{args.results} holds study {results.study_name!r}, not {args.study!r}",
                            "drop STUDY, or pass the results file of that study")
    else:
        if not args.study or not args.storage:
            raise UserError("no study to report on", "pass STUDY --storage URL, or --results FILE")
        results = load_study(args.storage, args.study)
    path = write_report(results, args.out, force=args.force, mixed=args.mixed, allow_code=args.allow_code)
    print(f"report written: {path}")
    return 0
