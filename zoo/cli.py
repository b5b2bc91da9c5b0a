"""``indexnas models``: the zoo's host models with measured parameters and GFLOPs beside the
Index Networks paper's figures."""

from __future__ import annotations

import argparse

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
    parser.add_argument("names", nargs="*", help="zoo names or timm:NAME (default: every zoo model)")
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


def run_models(args: argparse.Namespace) -> int:
    import torch

    from indexnas.zoo.registry import list_models, paper_baseline

    names = args.names or list_models()
    for name in names:
        paper_baseline(name)  # an unknown name fails before any model is built
    with torch.no_grad():
        rows = [model_row(name, args.size, args.width, not args.no_flops) for name in names]
    print(format_table(rows))
    return 0
