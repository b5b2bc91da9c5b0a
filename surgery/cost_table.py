"""The cost half of the paper's Tables 5-7 for any model: baseline and all 15 IndexNet variants, no training.

Rows follow the paper's layout: the baseline (#Param, GFLOPs), then one block per family (HINs,
Modelwise / Shared Stagewise / Unshared Stagewise O2O DINs, M2O DINs) with Linear, NL and NL+C
rows. Every figure is measured on the rewritten model: Delta = its parameters minus the
baseline's; GFLOPs in the paper's unit (convolution/linear multiply-adds / 2**30 at the given
input side, fvcore) and fvcore's full count with the IP/IU handlers (/ 1e9). For the zoo hosts the
paper reports (segnet: Table 6, dncnn_segnet: Table 5, fastdepth_p: Table 7) the paper's figures
sit beside ours, and each Delta is printed at the precision and with the sign the paper used in
that cell (the paper is inconsistent: "+23.55K" and "0.02M" in one table).
"""

from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import dataclass

import pandas as pd
import torch
import torch.fx
from torch import Tensor, nn

from indexnas.errors import UserError
from indexnas.spec import LEARNED_FAMILIES, IndexSpec, paper_variants
from indexnas.surgery import compat, cost
from indexnas.surgery.rewrite import apply, plan

FAMILY_BLOCKS: dict[str, str] = {
    "holistic": "HINs",
    "o2o-modelwise": "Modelwise O2O DINs",
    "o2o-shared": "Shared Stagewise O2O DINs",
    "o2o-unshared": "Unshared Stagewise O2O DINs",
    "m2o": "M2O DINs",
}
assert tuple(FAMILY_BLOCKS) == LEARNED_FAMILIES
CHECK = "\u2713"
FORMATS = ("text", "csv", "markdown", "latex")


@dataclass(frozen=True)
class DeltaStyle:
    """How one Delta cell is printed: leading '+', unit ('', 'K', 'M') and decimals."""

    plus: bool = True
    unit: str | None = None  # None: '' below 1e3, 'K' below 1e5, else 'M'
    decimals: int = 2

    @classmethod
    def of(cls, cell: str) -> DeltaStyle:
        """The style of a printed cell, e.g. '+25.1K' -> (plus, 'K', 1 decimal); '16' -> (no plus, '', 0)."""
        text = cell.strip()
        unit = text[-1] if text[-1:] in ("K", "M") else ""
        number = text.lstrip("+").rstrip("KM")
        decimals = len(number.partition(".")[2])
        return cls(plus=text.startswith("+"), unit=unit, decimals=decimals)


def format_delta(n: int, style: DeltaStyle | None = None) -> str:
    """A parameter delta in the paper's style: '+16', '+23.55K', '+4.90M' (or a given cell's style)."""
    style = style or DeltaStyle()
    unit = style.unit
    if unit is None:
        unit = "" if abs(n) < 1_000 else "K" if abs(n) < 100_000 else "M"
    scale = {"": 1, "K": 1e3, "M": 1e6}[unit]
    decimals = 0 if unit == "" and style.unit is None else style.decimals
    body = f"{n / scale:.{decimals}f}{unit}"
    return ("+" if style.plus and n >= 0 else "") + body


def format_params(n: int) -> str:
    """A model's parameter count as the paper prints it: '24.96M'."""
    return f"{n / 1e6:.2f}M"


@dataclass(frozen=True)
class PaperTable:
    """One of the paper's tables: its baseline row and, per variant, the printed Delta and GFLOPs."""

    table: str
    baseline: str
    params: str
    gflops: float
    rows: dict[str, tuple[str, float]]  # variant string -> (printed Delta, GFLOPs)
    mode: str = "pool"


def _rows(*cells: tuple[str, float]) -> dict[str, tuple[str, float]]:
    return {str(spec): cell for spec, cell in zip(paper_variants(), cells, strict=True)}


# Transcribed from index-networks-paper.md, Tables 5-7 (Delta = parameters added; GFLOPs at 224x224).
PAPER_TABLES: dict[str, PaperTable] = {
    "segnet": PaperTable("Table 6", "SegNet", "24.96M", 24.76, _rows(
        ("+23.55K", 24.79), ("+4.90M", 26.40), ("+19.55M", 31.28),
        ("16", 24.76), ("56", 24.76), ("152", 24.77),
        ("80", 24.76), ("280", 24.76), ("760", 24.77),
        ("0.02M", 24.79), ("0.08M", 24.82), ("0.22M", 24.96),
        ("+9.76M", 28.02), ("+24.44M", 32.90), ("+83.02M", 52.42),
    )),
    "dncnn_segnet": PaperTable("Table 5", "DnCNN-SegNet", "7.09M", 18.14, _rows(
        ("+7.17K", 18.16), ("+0.69M", 19.30), ("+2.76M", 22.75),
        ("+16", 18.14), ("+56", 18.14), ("+152", 18.14),
        ("+48", 18.14), ("+168", 18.14), ("+456", 18.14),
        ("+7.17K", 18.16), ("+25.1K", 18.19), ("+68.1K", 18.32),
        ("+1.38M", 20.44), ("+3.45M", 23.88), ("+11.7M", 37.67),
    )),
    "fastdepth_p": PaperTable("Table 7", "FastDepth-P-NNConv5", "3.96M", 1.01, _rows(
        ("+31.23K", 1.03), ("+11.17M", 2.65), ("+44.62M", 7.53),
        ("+16", 1.02), ("+56", 1.02), ("+152", 1.02),
        ("+80", 1.02), ("+280", 1.02), ("+760", 1.02),
        ("+31.23K", 1.03), ("+0.11M", 1.06), ("+0.30M", 1.16),
        ("+22.30M", 4.27), ("+55.78M", 9.15), ("+189.57M", 28.67),
    )),
}

COLUMNS = (
    "block", "method", "NL", "C", "#Param", "Delta", "Delta exact", "GFLOPs", "fvcore GFLOPs", "pairs",
    "paper #Param/Delta", "paper GFLOPs", "note",
)


def _default_mode(gm: torch.fx.GraphModule, report) -> str:
    """The mode that lets a holistic IndexNet reach the most pairs (ties: pool, stride, decoder)."""
    holistic = IndexSpec("holistic")

    def reach(mode: str) -> int:
        return sum(holistic in o.allowed for o in compat.pair_options(gm, report, mode).values())

    return max(compat.MODES, key=lambda mode: (reach(mode), -compat.MODES.index(mode)))


def _flops(model: nn.Module, inputs: tuple[Tensor, ...]) -> tuple[float, float]:
    """(paper-unit GFLOPs: conv/linear multiply-adds / 2**30, fvcore total with handlers / 1e9)."""
    count = cost.fvcore_flops(model, inputs)
    return count.matmul_part / cost.PAPER_GFLOP, count.total / 1e9


def cost_table(
    model: str | nn.Module,
    *,
    example_input: Tensor | tuple[Tensor, ...] | None = None,
    mode: str | None = None,
    size: int = 224,
    flops: bool = True,
    channel_fit: str = "group",
    variants: list[IndexSpec] | None = None,
) -> pd.DataFrame:
    """Baseline and variant rows (see module docstring) for a model descriptor or module.

    ``channel_fit='group'`` (the default here) lets depthwise maps reach decoders whose width
    divides the encoder's, as the paper's FastDepth-P rows need; a row's note says where it did.
    """
    from indexnas.surgery import analyze
    from indexnas.surgery.loading import load_model

    name = model if isinstance(model, str) else type(model).__name__
    if isinstance(model, str):
        model, loaded_input = load_model(model, size=size)
        example_input = loaded_input if example_input is None else example_input
    if example_input is None:
        raise UserError("cost_table needs an example input for a model object", "pass example_input=torch.randn(...)")
    inputs = cost.as_inputs(example_input)
    paper = PAPER_TABLES.get(name) if isinstance(name, str) else None
    model.eval()
    gm, report = analyze(model, inputs)
    mode = mode or (paper.mode if paper else _default_mode(gm, report))
    base_params = cost.parameters(gm)
    base = _flops(model, inputs) if flops else (math.nan, math.nan)
    rows = [{
        "block": "", "method": paper.baseline if paper else name, "NL": "", "C": "",
        "#Param": format_params(cost.parameters(model)), "Delta": "", "Delta exact": 0,
        "GFLOPs": base[0], "fvcore GFLOPs": base[1], "pairs": f"0/{len(report.pairs)}",
        "paper #Param/Delta": paper.params if paper else "", "paper GFLOPs": paper.gflops if paper else math.nan,
        "note": f"mode {mode}, input {tuple(inputs[0].shape)}",
    }]
    strict = compat.pair_options(gm, report, mode, "strict")
    for spec in variants or paper_variants():
        variant = torch.fx.GraphModule(gm, copy.deepcopy(gm.graph))  # shares the model's modules, not copies
        the_plan = plan(variant, report, spec, mode, channel_fit)
        with contextlib.nullcontext() if flops else torch.device("meta"):  # counting only: no weights needed
            apply(variant, the_plan)
        delta = cost.parameters(variant) - base_params
        paper_cell = paper.rows.get(str(spec)) if paper else None
        style = DeltaStyle.of(paper_cell[0]) if paper_cell else None
        rewritten = [n for n, s in the_plan.chosen.items() if not s.keep]
        grouped = [n for n in rewritten if not any(s == spec for s in strict[n].allowed)]
        measured = _flops(variant, inputs) if flops else (math.nan, math.nan)
        rows.append({
            "block": FAMILY_BLOCKS[spec.family], "method": str(spec),
            "NL": CHECK if spec.nonlinear else "", "C": CHECK if spec.context else "",
            "#Param": "", "Delta": format_delta(delta, style), "Delta exact": delta,
            "GFLOPs": measured[0], "fvcore GFLOPs": measured[1], "pairs": f"{len(rewritten)}/{len(report.pairs)}",
            "paper #Param/Delta": paper_cell[0] if paper_cell else "",
            "paper GFLOPs": paper_cell[1] if paper_cell else math.nan,
            "note": f"channel-group fit at {len(grouped)} pair(s)" if grouped else "",
        })
    return pd.DataFrame(rows, columns=list(COLUMNS))


# --- rendering -----------------------------------------------------------------------------------

_SHOWN = ("method", "NL", "C", "#Param", "Delta", "GFLOPs", "fvcore GFLOPs", "pairs", "paper #Param/Delta", "paper GFLOPs", "note")


def _cells(frame: pd.DataFrame) -> list[tuple[str, list[str]]]:
    """(block, printed cells) per row; numbers at the paper's two decimals."""
    out = []
    for _, row in frame.iterrows():
        cells = []
        for column in _SHOWN:
            value = row[column]
            if isinstance(value, float):
                value = "" if math.isnan(value) else f"{value:.2f}"
            cells.append(str(value))
        out.append((row["block"], cells))
    return out


def _drop_empty_columns(frame: pd.DataFrame) -> tuple[str, ...]:
    def empty(column: str) -> bool:
        values = frame[column]
        return all((isinstance(v, float) and math.isnan(v)) or v == "" for v in values)

    return tuple(c for c in _SHOWN if not empty(c))


def render(frame: pd.DataFrame, fmt: str = "text") -> str:
    """The table as text (the paper's layout, block headers between), csv, markdown or latex."""
    if fmt not in FORMATS:
        raise UserError(f"unknown table format {fmt!r}", f"use one of: {', '.join(FORMATS)}")
    if fmt == "csv":
        return frame.to_csv(index=False).rstrip("\n")
    shown = _drop_empty_columns(frame)
    keep = [i for i, c in enumerate(_SHOWN) if c in shown]
    rows = [(block, [cells[i] for i in keep]) for block, cells in _cells(frame)]
    header = list(shown)
    if fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        last = ""
        for block, cells in rows:
            if block and block != last:
                lines.append(f"| **{block}** |" + " |" * (len(header) - 1))
                last = block
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)
    if fmt == "latex":
        def tex(text: str) -> str:
            text = text.replace("\\", "\\textbackslash{}")
            for ch in "&%$#_{}":
                text = text.replace(ch, "\\" + ch)
            return text.replace(CHECK, "\\checkmark").replace("^", "\\^{}").replace("~", "\\~{}")

        lines = ["\\begin{tabular}{" + "l" * len(header) + "}", "\\hline", " & ".join(map(tex, header)) + " \\\\", "\\hline"]
        last = ""
        for block, cells in rows:
            if block and block != last:
                lines.append(f"\\multicolumn{{{len(header)}}}{{c}}{{{tex(block)}}} \\\\")
                last = block
            lines.append(" & ".join(map(tex, cells)) + " \\\\")
        lines += ["\\hline", "\\end{tabular}"]
        return "\n".join(lines)
    widths = [max(len(h), *(len(c[i]) for _, c in rows)) for i, h in enumerate(header)]
    fmt_row = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    lines = [fmt_row(header), fmt_row(["-" * w for w in widths])]
    last = ""
    for block, cells in rows:
        if block and block != last:
            lines.append(block)
            last = block
        lines.append(fmt_row(cells))
    return "\n".join(lines)
