"""Core sub-commands: `indexnas variants` (what each choice costs at C channels)."""

from __future__ import annotations

import argparse

from indexnas.errors import UserError
from indexnas.cost import count_parameters
from indexnas.indexnet import build_index_module
from indexnas.spec import IndexSpec, all_choices


def register(subparsers: argparse._SubParsersAction) -> None:
    variants = subparsers.add_parser(
        "variants", help="list every IndexNet choice with its parameters at C channels",
        description="List every IndexNet choice (string form, index-map channels, parameters per stage).",
    )
    variants.add_argument("--channels", type=int, default=64, help="feature channels C of the stage (default 64)")
    variants.set_defaults(handler=run_variants)


def variant_rows(channels: int) -> list[tuple[str, str, int]]:
    """(choice, index-map channels, parameters) for every choice but keep, at one stage of C channels."""
    if channels < 1:
        raise UserError(f"--channels must be a positive integer, got {channels}", "pass e.g. --channels 64")
    rows = []
    for spec in all_choices():
        if spec.keep:
            continue
        map_channels = "1" if spec.holistic else "C"
        rows.append((str(spec), map_channels, count_parameters(build_index_module(spec, channels))))
    return rows


def run_variants(args: argparse.Namespace) -> int:
    rows = variant_rows(args.channels)
    print(f"IndexNet choices at one stage with C = {args.channels} channels")
    print(f"{'choice':<22}{'map':>5}{'params':>12}")
    for name, map_channels, params in rows:
        print(f"{name:<22}{map_channels:>5}{params:>12,}")
    print(f"\nparse any of these with IndexSpec.parse; e.g. {IndexSpec('m2o', True, True)}")
    return 0
