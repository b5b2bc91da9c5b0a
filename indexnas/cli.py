"""The `indexnas` console script: a thin dispatcher over per-package command modules.

Each module in COMMAND_MODULES exposes `register(subparsers)`, which adds its sub-commands
and sets `handler=function(args) -> int` on each. A UserError becomes one message and exit
status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from indexnas.version import __version__
from indexnas.errors import UserError

# Which package owns which sub-commands; the order is the order in `indexnas --help`.
COMMAND_MODULES: tuple[str, ...] = (
    "indexnas.commands",  # variants
    "indexnas.zoo.cli",  # models
    "indexnas.surgery.cli",  # pairs, insert, table
    "indexnas.search.cli",  # search, demo
    "indexnas.reports.cli",  # report
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="indexnas",
        description="Learned index-guided down/upsampling (Index Networks): operators, model "
        "surgery, architecture search and reports.",
    )
    parser.add_argument("--version", action="version", version=f"indexnas {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0
    try:
        return int(handler(args) or 0)
    except UserError as error:
        print(f"indexnas: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("indexnas: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
