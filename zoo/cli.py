"""``indexnas models``: the zoo's host models with measured parameters and GFLOPs beside the
Index Networks paper's figures."""

from __future__ import annotations

import argparse
import fnmatch
import textwrap

from indexnas.errors import UserError

WILDCARDS = "*?["  # fnmatch's, as timm.list_models takes them
LISTING_WIDTH = 100
TIMM_PREFIX = "timm:"  # zoo.registry.TIMM_PREFIX (not imported: keeps `indexnas --help` light)

COLUMNS = ("model", "task", "input", "params (M)", "paper (M)", "GFLOPs fvcore", "GFLOPs /2^30", "paper GFLOPs")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``models`` command."""
    parser = subparsers.add_parser(
        "models",
        help="list the zoo's host models: parameters and GFLOPs beside the paper's",
        description="List zoo models with parameters and fvcore GFLOPs (measured at --size) beside the "
        "Index Networks paper's figures. 'GFLOPs fvcore' is the total / 1e9 (fvcore's convention, one "
        "multiply-add = one flop; BN, interpolation, pooling and elementwise ops included, as insert and search "
        "count); 'GFLOPs /2^30' is convolution multiply-adds / 2**30, the unit of the paper's tables.",
    )
    parser.add_argument("names", nargs="*",
                        help="zoo names or timm:NAME (default: every zoo model); a pattern such as 'timm:resnet*' "
                        "lists the matching timm models (timm.list_models), 'dncnn*' the matching zoo models")
    parser.add_argument("--no-flops", action="store_true", help="skip the fvcore FLOP count (faster)")
    parser.add_argument("--size", type=int, default=224, help="input height and width for FLOPs (default 224)")
    parser.add_argument("--width", type=float, default=1.0, help="channel width multiplier (default 1.0)")
    parser.set_defaults(handler=run_models)


def _figure(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def model_row(name: str, size: int, width: float, flops: bool) -> tuple[str, ...]:
    """One table row for ``name``: measured figures at (size, width) beside the paper's."""
    from indexnas.cost import count_parameters, measure
    from indexnas.zoo.registry import create_model, example_input, paper_baseline

    baseline = paper_baseline(name)
    model = create_model(name, width=width).eval()
    x = example_input(name, size)
    if flops:
        figures = measure(model, x)
        gflops, paper_unit = figures["gflops"], figures["gflops_paper_unit"]
    else:
        gflops = paper_unit = None
    return (
        name,
        baseline["task"],
        "x".join(str(d) for d in x.shape[1:]),
        f"{count_parameters(model) / 1e6:.3f}",
        _figure(baseline["params_m"], 2),
        _figure(gflops, 3),
        _figure(paper_unit, 3),
        _figure(baseline["gflops"], 2),
    )


def format_table(rows: list[tuple[str, ...]]) -> str:
    """Left-aligned text columns with a header rule."""
    table = [COLUMNS, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def timm_listing(pattern: str) -> str:
    """The timm model names matching ``pattern`` (timm.list_models' filter), wrapped to LISTING_WIDTH."""
    import timm

    found = timm.list_models(pattern)
    if not found:
        raise UserError(f"no timm model matches {pattern!r}", "try a broader pattern, e.g. 'timm:*resnet*'")
    names = textwrap.fill("  ".join(found), LISTING_WIDTH, break_on_hyphens=False)
    return (f"timm models matching {pattern!r} ({len(found)}):\n{names}\n"
            f"measure one with: indexnas models {TIMM_PREFIX}{found[0]}")


def _zoo_matches(pattern: str) -> list[str]:
    from indexnas.zoo.registry import list_models

    found = fnmatch.filter(list_models(), pattern)
    if not found:
        raise UserError(f"no zoo model matches {pattern!r}", f"zoo models: {', '.join(list_models())}")
    return found


def run_models(args: argparse.Namespace) -> int:
    import torch

    from indexnas.zoo.registry import list_models, paper_baseline

    names: list[str] = []
    listings: list[str] = []
    for name in args.names or list_models():
        if not any(c in name for c in WILDCARDS):
            paper_baseline(name)  # an unknown name fails before any model is built
            names.append(name)
        elif name.startswith(TIMM_PREFIX):
            listings.append(timm_listing(name[len(TIMM_PREFIX) :]))
        else:
            names += _zoo_matches(name)
    from indexnas.progress import progress_steps

    with torch.no_grad():
        rows = [model_row(name, args.size, args.width, not args.no_flops) for name in progress_steps(names, "models")]
    print("\n\n".join([*([format_table(rows)] if rows else []), *listings]))
    return 0
