"""The Index Networks paper's cost figures (Tables 5-7) and the way it prints them.

`indexnas table` (surgery.cost_table) prints our measured figures beside these, and the study reports
(reports.table) print Delta-params in the same style. The paper prints its Delta column inconsistently
("+23.55K" and "0.02M" in one table): each cell's sign and precision is kept, and ``DeltaStyle.of`` reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

from indexnas.spec import LEARNED_FAMILIES, paper_variants

FAMILY_BLOCKS: dict[str, str] = {
    "holistic": "HINs",
    "o2o-modelwise": "Modelwise O2O DINs",
    "o2o-shared": "Shared Stagewise O2O DINs",
    "o2o-unshared": "Unshared Stagewise O2O DINs",
    "m2o": "M2O DINs",
}
assert tuple(FAMILY_BLOCKS) == LEARNED_FAMILIES


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


# Transcribed from the paper's Tables 5-7 (Lu et al., TPAMI 2020; Delta = parameters added; GFLOPs at 224x224).
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
