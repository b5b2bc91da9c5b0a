"""The `insert` and `table` commands: rewrite a model with IndexNet, and print the paper's cost table for it.

`surgery.cli.register` calls `register` here, so both commands sit beside `pairs` in `indexnas --help`.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap

from indexnas.errors import UserError
from indexnas.surgery.loading import DESCRIPTOR_HELP, add_model_arg_option

MODES = ("pool", "stride", "decoder")  # surgery.compat.MODES (not imported: keeps `indexnas --help` light)
CHANNEL_FITS = ("strict", "group")  # surgery.compat.CHANNEL_FITS
TABLE_FORMATS = ("text", "csv", "markdown", "latex")  # surgery.cost_table.FORMATS
TEXT_WIDTH = 100  # the text tables fit a terminal this wide
CHANNELS_HEADER = "channels pooled / up"  # PairRow.channels: the feature the down pools, the up's output
CHANNEL_FIT_HELP = (
    "strict: depthwise maps only where widths match (default for insert); group: also where one width is a "
    "multiple of the other, the map averaged over channel groups or repeated"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `insert` and `table` to the indexnas command line."""
    insert = subparsers.add_parser(
        "insert",
        help="insert IndexNet at a model's down/up pairs and save the rewrite as a JSON recipe",
        description="Rewrite every (or every chosen) down/up pair of MODEL with an IndexNet choice, print the "
        "per-pair report (params and FLOPs added), and save the rewrite as a recipe that replays onto a fresh "
        "instance of the same model.",
    )
    insert.add_argument("model", metavar="MODEL", help=DESCRIPTOR_HELP)
    insert.add_argument(
        "--choice",
        action="append",
        default=[],
        metavar="SPEC|PAIR=SPEC",
        help="IndexNet choice for every pair (e.g. m2o-nl-c), or for one pair (PAIR=SPEC); repeatable; "
        "pairs not named take the plain SPEC, else 'keep'",
    )
    insert.add_argument("--mode", choices=MODES, default="pool", help="which downs are replaced (default: pool)")
    insert.add_argument("--channel-fit", choices=CHANNEL_FITS, default="strict", help=CHANNEL_FIT_HELP)
    insert.add_argument("--recipe", metavar="FILE", help="replay a saved recipe instead of --choice/--mode")
    insert.add_argument("--out", metavar="FILE", help="write the recipe (JSON) here")
    insert.add_argument("--weights", metavar="FILE", help="also save the rewritten model's state_dict here")
    insert.add_argument("--size", type=int, default=None, help="example input side in pixels (default: the model's)")
    insert.add_argument("--no-flops", action="store_true", help="skip FLOP counting (faster on big models)")
    insert.add_argument("--allowed", action="store_true", help="only list the choices each pair may take in --mode")
    insert.add_argument("--json", action="store_true", help="print the report as JSON")
    add_model_arg_option(insert)
    insert.set_defaults(handler=run_insert)

    table = subparsers.add_parser(
        "table",
        help="the cost half of the paper's table for a model: all 15 IndexNet variants, no training",
        description="Rewrite MODEL with each of the paper's 15 uniform IndexNet variants and print the baseline "
        "and each variant's #Param / Delta-params / GFLOPs in the layout of the paper's Tables 5-7 (beside the "
        "paper's own figures for the zoo hosts it reports).",
    )
    table.add_argument("model", metavar="MODEL", help=DESCRIPTOR_HELP)
    table.add_argument("--mode", choices=MODES, default=None, help="rewrite mode (default: the host's own, else pool)")
    table.add_argument(
        "--channel-fit", choices=CHANNEL_FITS, default="group", help=CHANNEL_FIT_HELP + " (default here: group)"
    )
    table.add_argument("--format", choices=TABLE_FORMATS, default="text", help="output format (default: text)")
    table.add_argument("--size", type=int, default=None,
                       help="input side for GFLOPs (default: 224, the paper's; a factory's own example input)")
    table.add_argument("--no-flops", action="store_true", help="parameters only (fast)")
    table.set_defaults(handler=run_table)


def _load(descriptor: str, size: int | None, model_args: list[str]):
    from indexnas.surgery.loading import load_model, parse_model_args

    return load_model(descriptor, size, parse_model_args(model_args))


def parse_choices(items: list[str]) -> str | dict[str, str]:
    """`--choice` values -> one choice for all pairs, or {pair: choice} with '*' as the default."""
    if not items:
        raise UserError("no IndexNet choice given", "pass --choice SPEC (e.g. --choice m2o-nl-c) or --recipe FILE")
    default: str | None = None
    per_pair: dict[str, str] = {}
    for item in items:
        pair, sep, spec = item.rpartition("=")
        if not sep:
            if default is not None:
                raise UserError(f"two choices for every pair: {default!r} and {item!r}", "pass one plain --choice")
            default = item
        elif not pair:
            raise UserError(f"--choice {item!r} names no pair", "write it as PAIR=SPEC, e.g. encoder.pool2=m2o")
        else:
            per_pair[pair] = spec
    from indexnas.spec import IndexSpec

    for spec in [default, *per_pair.values()]:
        if spec is not None:
            IndexSpec.parse(spec)
    if not per_pair:
        return default  # type: ignore[return-value]
    if default is not None:
        per_pair["*"] = default
    return per_pair


def run_insert(args: argparse.Namespace) -> int:
    from indexnas.surgery import compat, recipe, rewrite

    choice = None if args.recipe or args.allowed else parse_choices(args.choice)  # bad choices fail before loading
    saved = recipe.load(args.recipe) if args.recipe else None
    model, example = _load(args.model, args.size, args.model_arg)
    if args.allowed:
        table = compat.allowed_table(model, example, args.mode, args.channel_fit)
        print(allowed_text(table) if not args.json else table.to_json(orient="records", indent=2))
        return 0
    if saved is not None:
        rewritten, report = recipe.replay(saved, model, example, flops=not args.no_flops)
    else:
        rewritten, report = rewrite.insert_indexnet(
            model, example, choice, mode=args.mode, channel_fit=args.channel_fit, flops=not args.no_flops
        )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report_text(report))
    if args.out:
        recipe.save(recipe.from_report(report, model=args.model), args.out)
        print(f"recipe written to {args.out}", file=sys.stderr)
    if args.weights:
        recipe.save_state_dict(rewritten, args.weights)
        print(f"weights written to {args.weights}", file=sys.stderr)
    return 0


def _footnotes(notes: list[tuple[str, str]]) -> list[str]:
    """'pair: why' lines, wrapped to TEXT_WIDTH with the continuation indented."""
    return [textwrap.fill(f"{pair}: {why}", TEXT_WIDTH, initial_indent="  ", subsequent_indent="      ")
            for pair, why in notes]


def _table(headers: list[str], rows: list[list[str]]) -> str:
    """Aligned text columns, written by the one table writer (indexnas.tables)."""
    from indexnas.tables import Cell, Grid, render_grid

    return render_grid(Grid(headers, [[Cell(text) for text in row] for row in rows]), "text")


def report_text(report) -> str:
    """A RewriteReport as text: what each pair got (choice, action, cost) and where it is (up, sizes)."""
    lines = [f"mode: {report.mode}    input: {tuple(report.input_shape)}"]
    if not report.rows:
        lines.append("(no pairs)")
    kept: list[tuple[str, str]] = []
    what, where = [], []
    for row in report.rows:
        action, _, why = row.action.partition(": ")
        if why:
            kept.append((row.pair, why))
            action += " *"
        flops = "-" if row.flops_added is None else f"{row.flops_added / 1e9:+.4f}"
        what.append([row.pair, row.choice, action, f"{row.params_added:+,}", flops])
        where.append([row.pair, row.up, row.kind, row.resolution, row.channels]
                     + ([row.downs] if row.downs != row.pair else []))
    if report.rows:
        lines.append(_table(["pair", "choice", "action", "params added", "GFLOPs added"], what))
        if kept:
            lines += ["* kept because:", *_footnotes(kept)]
        lines.append("")
        downs = ["downs"] if any(len(w) > 5 for w in where) else []
        lines.append(_table(["pair", "up", "kind", "resolution", CHANNELS_HEADER, *downs],
                            [w + [""] * (5 + len(downs) - len(w)) for w in where]))
    added = report.params_after - report.params_before
    lines.append(f"parameters the forward uses: {report.params_before:,} -> {report.params_after:,} ({added:+,})")
    if report.flops_before is not None and report.flops_after is not None:
        lines.append(
            f"FLOPs (fvcore, 1 multiply-add = 1): {report.flops_before / 1e9:.4f}G -> {report.flops_after / 1e9:.4f}G "
            f"({(report.flops_after - report.flops_before) / 1e9:+.4f}G)"
        )
    lines += [f"unpaired: {u}" for u in report.unpaired] + [f"note: {n}" for n in report.notes]
    return "\n".join(lines)


def allowed_text(table) -> str:
    """`insert --allowed` as text: each pair's choices summarised (spec.summarise_choices); below, per limited pair,
    why, and what would allow more (another --mode or --channel-fit; or why nothing does, e.g. the rate)."""
    from indexnas.spec import summarise_choices

    rows = [[r["pair"], r["up"], summarise_choices(r["allowed"].split())] for _, r in table.iterrows()]
    lines = [_table(["pair", "up", "allowed choices"], rows)]
    reasons = [(r["pair"], f"{r['reason']}. Would allow more: {r['fix']}") for _, r in table.iterrows() if r["reason"]]
    if reasons:
        lines += ["why some choices are not allowed:", *_footnotes(reasons)]
    return "\n".join(lines)


def run_table(args: argparse.Namespace) -> int:
    from indexnas.surgery.cost_table import cost_table, render

    frame = cost_table(
        args.model, mode=args.mode, size=args.size, flops=not args.no_flops, channel_fit=args.channel_fit,
        progress=True,
    )
    print(render(frame, args.format))
    return 0
