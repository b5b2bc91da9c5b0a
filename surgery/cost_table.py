"""The cost half of the paper's Tables 5-7 for any model: baseline and all 15 IndexNet variants, no training.

Rows follow the paper's layout: the baseline (#Param, GFLOPs), then one block per family (HINs,
Modelwise / Shared Stagewise / Unshared Stagewise O2O DINs, M2O DINs) with Linear, NL and NL+C
rows. Every figure is measured on the rewritten model with the one cost counter (indexnas.cost):
Delta = the parameters its graph uses minus the host graph's; GFLOPs in the paper's unit
(convolution/linear multiply-adds / 2**30 at the given input side) and the full count with the
IP/IU handlers (/ 1e9). For the zoo hosts the paper reports (segnet: Table 6, dncnn_segnet: Table 5,
fastdepth_p: Table 7) the paper's figures (indexnas.paper) sit beside ours, each Delta printed at
the precision and with the sign the paper used in that cell.
"""

from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
import torch.fx
from torch import Tensor, nn

from indexnas import cost
from indexnas.errors import UserError
from indexnas.paper import FAMILY_BLOCKS, PAPER_TABLES, DeltaStyle, PaperTable, format_delta, format_params
from indexnas.spec import IndexSpec, paper_variants
from indexnas.surgery import compat
from indexnas.surgery.analysis import analyze
from indexnas.surgery.loading import load_model
from indexnas.surgery.pairs import PairReport
from indexnas.surgery.rewrite import apply, plan
from indexnas.tables import Cell, Grid, render_grid

CHECK = "\u2713"
FORMATS = ("text", "csv", "markdown", "latex")
COLUMNS = (
    "block", "method", "NL", "C", "#Param", "Delta", "Delta exact", "GFLOPs", "fvcore GFLOPs", "pairs",
    "paper #Param/Delta", "paper GFLOPs", "note",
)


@dataclass
class _Host:
    """The analysed host and what every row of its table is measured against."""

    name: str
    model: nn.Module
    inputs: tuple[Tensor, ...]
    gm: torch.fx.GraphModule
    report: PairReport
    mode: str
    channel_fit: str
    flops: bool
    paper: PaperTable | None
    params: int  # the parameters the host's graph uses


def _default_mode(gm: torch.fx.GraphModule, report: PairReport) -> str:
    """The mode that lets a holistic IndexNet reach the most pairs (ties: pool, stride, decoder)."""
    holistic = IndexSpec("holistic")

    def reach(mode: str) -> int:
        return sum(holistic in o.allowed for o in compat.pair_options(gm, report, mode).values())

    return max(compat.MODES, key=lambda mode: (reach(mode), -compat.MODES.index(mode)))


def _flops(model: nn.Module, host: _Host) -> tuple[float, float]:
    """(paper-unit GFLOPs, full count / 1e9), or NaNs when the table counts parameters only."""
    if not host.flops:
        return math.nan, math.nan
    count = cost.count_flops(model, host.inputs)
    return count.gflops_paper_unit, count.gflops


def _analysed(model: str | nn.Module, example_input: Tensor | tuple[Tensor, ...] | None, size: int | None,
              mode: str | None, channel_fit: str, flops: bool) -> _Host:
    """Load a descriptor (or take a module), analyse it and settle the mode."""
    name = model if isinstance(model, str) else type(model).__name__
    if isinstance(model, str):
        model, loaded_input = load_model(model, size=size)
        example_input = loaded_input if example_input is None else example_input
    if example_input is None:
        raise UserError("cost_table needs an example input for a model object", "pass example_input=torch.randn(...)")
    inputs = cost.as_inputs(example_input)
    paper = PAPER_TABLES.get(name)
    model.eval()
    gm, report = analyze(model, inputs)
    mode = mode or (paper.mode if paper else _default_mode(gm, report))
    return _Host(name, model, inputs, gm, report, mode, channel_fit, flops, paper, cost.count_parameters(gm))


def _baseline_row(host: _Host) -> dict[str, Any]:
    gflops, full = _flops(host.model, host)
    paper = host.paper
    return {
        "block": "", "method": paper.baseline if paper else host.name, "NL": "", "C": "",
        "#Param": format_params(host.params), "Delta": "", "Delta exact": 0,
        "GFLOPs": gflops, "fvcore GFLOPs": full, "pairs": f"0/{len(host.report.pairs)}",
        "paper #Param/Delta": paper.params if paper else "", "paper GFLOPs": paper.gflops if paper else math.nan,
        "note": f"mode {host.mode}, input {tuple(host.inputs[0].shape)}",
    }


def _paper_cells(host: _Host, spec: IndexSpec) -> tuple[str, float]:
    """The paper's printed (Delta, GFLOPs) for this variant, or ('', NaN) for a host it does not report."""
    cell = host.paper.rows.get(str(spec)) if host.paper else None
    return cell if cell else ("", math.nan)


def _rewrite(host: _Host, spec: IndexSpec) -> tuple[torch.fx.GraphModule, list[str]]:
    """A copy of the host's graph (sharing its modules) rewritten with ``spec``; and the pairs it rewrote."""
    variant = torch.fx.GraphModule(host.gm, copy.deepcopy(host.gm.graph))
    the_plan = plan(variant, host.report, spec, host.mode, host.channel_fit)
    with contextlib.nullcontext() if host.flops else torch.device("meta"):  # counting only: no weights needed
        apply(variant, the_plan)
    return variant, [name for name, chosen in the_plan.chosen.items() if not chosen.keep]


def _variant_row(host: _Host, spec: IndexSpec, strict: dict[str, compat.PairOptions]) -> dict[str, Any]:
    """One variant, measured on its rewrite; the note names pairs reached only by a channel-group fit."""
    variant, rewritten = _rewrite(host, spec)
    delta = cost.count_parameters(variant) - host.params
    paper_delta, paper_gflops = _paper_cells(host, spec)
    grouped = [n for n in rewritten if spec not in strict[n].allowed]
    gflops, full = _flops(variant, host)
    return {
        "block": FAMILY_BLOCKS[spec.family], "method": str(spec),
        "NL": CHECK if spec.nonlinear else "", "C": CHECK if spec.context else "",
        "#Param": "", "Delta": format_delta(delta, DeltaStyle.of(paper_delta) if paper_delta else None),
        "Delta exact": delta, "GFLOPs": gflops, "fvcore GFLOPs": full, "pairs": f"{len(rewritten)}/{len(host.report.pairs)}",
        "paper #Param/Delta": paper_delta, "paper GFLOPs": paper_gflops,
        "note": f"channel-group fit at {len(grouped)} pair(s)" if grouped else "",
    }


def cost_table(
    model: str | nn.Module,
    *,
    example_input: Tensor | tuple[Tensor, ...] | None = None,
    mode: str | None = None,
    size: int | None = None,
    flops: bool = True,
    channel_fit: str = "group",
    variants: list[IndexSpec] | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Baseline and variant rows (see module docstring) for a model descriptor or module.

    ``size``: the example input side for a descriptor (default: the loader's, 224; a factory returning
    its own example input takes none). ``channel_fit='group'`` (the default here) lets depthwise maps
    reach decoders whose width divides the encoder's, as the paper's FastDepth-P rows need; a row's note
    says where it did.
    """
    from indexnas.progress import progress_steps

    host = _analysed(model, example_input, size, mode, channel_fit, flops)
    strict = compat.pair_options(host.gm, host.report, host.mode, "strict")
    specs = progress_steps(variants or paper_variants(), f"{host.name} variants", progress)
    rows = [_baseline_row(host)] + [_variant_row(host, spec, strict) for spec in specs]
    return pd.DataFrame(rows, columns=list(COLUMNS))


# --- rendering -----------------------------------------------------------------------------------

_SHOWN = ("method", "NL", "C", "#Param", "Delta", "GFLOPs", "fvcore GFLOPs", "pairs", "paper #Param/Delta", "paper GFLOPs", "note")


def _printed(value: object) -> str:
    """A cell as printed: numbers at the paper's two decimals, NaN as empty."""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.2f}"
    return str(value)


def _grid(frame: pd.DataFrame) -> Grid:
    """The shown columns that hold anything, with a block title row before each family's rows."""
    printed = frame[list(_SHOWN)].map(_printed)
    shown = [c for c in _SHOWN if printed[c].astype(bool).any()]
    grid = Grid(shown)
    block = ""
    for (_, row), title in zip(printed.iterrows(), frame["block"]):
        if title and title != block:
            grid.rows.append(title)
            block = title
        grid.rows.append([Cell(row[c]) for c in shown])
    return grid


def render(frame: pd.DataFrame, fmt: str = "text") -> str:
    """The table as text (the paper's layout, block titles between), csv, markdown or latex."""
    if fmt == "csv":
        return frame.to_csv(index=False).rstrip("\n")
    return render_grid(_grid(frame), fmt, FORMATS)
