"""The surgery commands: ``pairs`` (here) plus ``insert`` and ``table`` (surgery.cli_rewrite).

``indexnas pairs MODEL`` prints the transitions, the up/down pairs, the ups left unpaired with
the reason, and the global pools ignored; ``--json`` prints the same as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Sequence

from indexnas.surgery import cli_rewrite
from indexnas.surgery.loading import DESCRIPTOR_HELP, add_model_arg_option
from indexnas.surgery.pairs import Pair, PairReport, Size


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``pairs`` and the rewrite commands to the indexnas command line."""
    pairs = subparsers.add_parser(
        "pairs",
        help="find a model's down/up pairs (where IndexNet can go)",
        description="Trace MODEL with torch.fx, check the graph against eager, and pair every upsampling "
        "with the downsampling it inverts. Ups with no partner are listed with the reason.",
    )
    pairs.add_argument("model", metavar="MODEL", help=DESCRIPTOR_HELP)
    pairs.add_argument("--size", type=int, default=None, help="example input side in pixels (default: the model's)")
    pairs.add_argument("--json", action="store_true", help="print the report as JSON")
    add_model_arg_option(pairs)
    pairs.set_defaults(handler=run_pairs)
    cli_rewrite.register(subparsers)


def run_pairs(args: argparse.Namespace) -> int:
    from indexnas.surgery import analyze
    from indexnas.surgery.loading import load_model, parse_model_args

    model, example = load_model(args.model, args.size, parse_model_args(args.model_arg))
    _, report = analyze(model, example)
    if args.json:
        payload = {"model": args.model, "input": list(example.shape), **dataclasses.asdict(report)}
        print(json.dumps(payload, indent=2))
    else:
        print(format_report(report, args.model, tuple(example.shape)))
    return 0


def _size(size: Size) -> str:
    return f"{size[0]}x{size[1]}"


def _table(headers: Sequence[str], rows: list[Sequence[object]]) -> str:
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  " + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _inverts(pair: Pair) -> str:
    """The transitions a pair inverts, or the part of one: "stem (x2 of x4, at 1/2)"."""
    if pair.part is None:
        return " + ".join(t.name for t in pair.transitions)
    (transition,), (coarsening, factor) = pair.transitions, pair.part
    at = f", at 1/{coarsening}" if coarsening > 1 else ""
    return f"{transition.name} (x{factor} of x{transition.factor}{at})"


def format_report(report: PairReport, model: str, input_shape: tuple[int, ...]) -> str:
    """The pair report as readable tables."""
    exact = sum(not p.compound and p.part is None for p in report.pairs)
    parts_of = sum(p.part is not None for p in report.pairs)
    parts = [f"{model}: input {'x'.join(map(str, input_shape))}, graph checked against eager"]
    parts.append(f"\nTransitions ({len(report.transitions)}): downsampling steps, parallel downs merged")
    parts.append(_table(
        ["transition", "kind", "resolution", "channels", "downs"],
        [[t.name, "+".join(dict.fromkeys(d.kind for d in t.downs)), f"{_size(t.in_size)} -> {_size(t.out_size)}",
          t.channels, ", ".join(d.target for d in t.downs)] for t in report.transitions],
    ))
    split = f", {parts_of} part of a larger transition" if parts_of else ""
    parts.append(f"\nPairs ({len(report.pairs)}): {exact} exact, {len(report.pairs) - exact - parts_of} compound{split}")
    parts.append(_table(
        ["pair", "up", "kind", "resolution", "channels", "inverts"],
        [[p.name, p.up.target, p.up.kind + (f" ({p.up.mode})" if p.up.mode else ""),
          f"{_size(p.up.in_size)} -> {_size(p.up.out_size)}", f"{p.up.in_channels} -> {p.up.out_channels}",
          _inverts(p)] for p in report.pairs],
    ))
    if report.unpaired:
        parts.append(f"\nUnpaired ups ({len(report.unpaired)}):")
        parts.append(_table(
            ["up", "kind", "resolution", "why", "candidates"],
            [[u.up.target, u.up.kind, f"{_size(u.up.in_size)} -> {_size(u.up.out_size)}", u.reason,
              ", ".join(u.candidates) or "-"] for u in report.unpaired],
        ))
    if report.ignored:
        parts.append(f"\nIgnored ({len(report.ignored)}): not transitions")
        parts.append(_table(["node", "why"], [list(item) for item in report.ignored]))
    if report.warnings:
        parts.append(f"\nWarnings ({len(report.warnings)}):")
        parts.extend(f"  - {w}" for w in report.warnings)
    return "\n".join(parts)
