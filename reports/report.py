"""Write a study's report folder: report.html (self-contained), trials.csv, table.csv/.md/.tex,
results.json (re-renders with `indexnas report --results`), and figures/*.png + *.svg.

Overwriting: a folder that already holds any of these files is refused unless ``force=True``
(`--force`); every file is written atomically (temporary file in the same folder, then rename), and
report.html last, so a report.html on disk always belongs to complete companions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from matplotlib.figure import Figure

from indexnas.atomic import atomic_write_bytes
from indexnas.errors import UserError
from indexnas.reports.frame import METRIC_PREFIX, trials_frame
from indexnas.reports.html import indexnet_on_front, render_html
from indexnas.cost import PARAMS_REFERENCE_MARGIN
from indexnas.reports.plots import EncodedFigure, encode, plot_hypervolume, plot_pareto_choices, plot_tradeoff
from indexnas.reports.source import Results, results_from_study, save_results
from indexnas.reports.table import paper_table, render_table
from indexnas.reports.trained import trained_index_maps

TABLE_FILES = {"csv": "table.csv", "markdown": "table.md", "latex": "table.tex"}
FIGURES = "figures"


def _figures(frame: pd.DataFrame, index_maps: Figure | None, maps_note: str, notes: list[str]) -> list[tuple[EncodedFigure, str]]:
    metric = frame.attrs["primary_metric"]
    complete = frame[(frame["state"] == "COMPLETE") & np.isfinite(frame[METRIC_PREFIX + metric])]
    figures = []
    if complete.empty:
        notes.append("No complete trial with a finite metric yet: the trade-off and hypervolume figures are left out.")
    else:
        legend = ("Grey: every complete trial; red: the Pareto front of this projection; black star: the untouched "
                  "host; coloured and labelled: the paper's uniform configurations (one colour per family); olive "
                  "diamonds #N: mixed (per-pair) trials that are Pareto-optimal in all objectives (see the Pareto "
                  "table). Dark error bars: mean ± sd over training seeds of the Pareto trials retrained with "
                  "more seeds. Labels sit beside their point, or at the end of a thin line.")
        figures.append((encode(plot_tradeoff(frame, "params_added"), "tradeoff_params", f"{metric} vs Δ params"),
                        f"{metric} against the parameters added to the host (symmetric log axis). {legend}"))
        figures.append((encode(plot_tradeoff(frame, "gflops"), "tradeoff_gflops", f"{metric} vs GFLOPs"),
                        f"{metric} against the whole model's GFLOPs. {legend}"))
        reference = (f"the host's {metric} (else the worst trial's) and {10 ** PARAMS_REFERENCE_MARGIN:.2f}x the "
                     "largest Δ params")
        hypervolume = plot_hypervolume(frame)
        if hypervolume is None:
            notes.append(f"No hypervolume figure: no complete trial beats the reference ({reference}) in {metric}, "
                         "so the hypervolume is 0 after every trial: there is nothing to plot.")
        else:
            figures.append((encode(hypervolume, "hypervolume", "hypervolume over trials"),
                            f"Hypervolume of ({metric}, log10(1 + Δ params)) over the complete trials so far. "
                            f"Reference: {reference}. Shaded: the host and paper-grid trials, which the search "
                            "runs first."))
    figures.append((encode(plot_pareto_choices(frame), "pareto_choices", "choices of the Pareto trials"),
                    "How many Pareto-optimal trials (in all objectives) take each choice at each down/up pair."))
    if index_maps is not None:
        figures.append((encode(index_maps, "index_maps", "index maps"),
                        f"Decoder index maps of {maps_note} (the paper's Figure 10): holistic maps as they are, "
                        "depthwise maps averaged over their channels; a pair left as 'keep' has none."))
    else:
        notes.append(f"No index-map figure: {maps_note}.")
    return figures


def _refuse_existing(out: Path, names: list[Path]) -> None:
    """UserError when ``out`` already holds any report file (or any figure): never overwrite silently."""
    existing = [p for p in names if p.exists()] + sorted((out / FIGURES).glob("*"))
    if existing:
        listed = ", ".join(str(p.relative_to(out)) for p in existing[:3]) + (" ..." if len(existing) > 3 else "")
        raise UserError(f"{out} already holds a report ({listed})",
                        "pass --force to replace it, or choose another --out folder")


def write_report(source: optuna.Study | Results, out_dir: str | Path, *, force: bool = False,
                 index_maps: Figure | None = None, mixed: int = 5, allow_code: bool = False) -> Path:
    """Write the report folder for a study (or `Results`) and return the path of report.html.

    ``index_maps``: a figure from `reports.plot_index_maps`; by default the best Pareto-optimal trial whose
    checkpoint is on this machine is rebuilt and drawn (`reports.trained`), else a note says why not;
    ``mixed``: how many mixed Pareto trials close the paper-layout table; ``allow_code``: rebuilding that
    trial may execute the model file the study names (`reports.trained`).
    """
    results = source if isinstance(source, Results) else results_from_study(source)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file", "pass a folder for the report")
    report = out / "report.html"
    if not force:
        _refuse_existing(out, [report, out / "results.json", out / "trials.csv", *(out / n for n in TABLE_FILES.values())])
    frame = trials_frame(results)
    table = paper_table(frame, results.settings, mixed=mixed)
    maps_note = "the model given to the report"
    if index_maps is None and not frame["pareto"].any():
        maps_note = "no trial is Pareto-optimal yet"
    elif index_maps is None and not indexnet_on_front(frame):
        maps_note = "no IndexNet trial is on the Pareto front (only the untouched host is): no maps to draw"
    elif index_maps is None:
        index_maps, maps_note = trained_index_maps(results, frame, allow_code=allow_code)
    notes: list[str] = []
    figures = _figures(frame, index_maps, maps_note, notes)
    files: dict[Path, bytes] = {out / "trials.csv": frame.to_csv(index=False).encode()}
    files.update({out / name: render_table(table, fmt).encode() for fmt, name in TABLE_FILES.items()})
    for figure, _ in figures:
        files[out / FIGURES / f"{figure.name}.png"] = figure.png
        files[out / FIGURES / f"{figure.name}.svg"] = figure.svg.encode()
    for path, data in files.items():
        atomic_write_bytes(data, path)
    save_results(results, out / "results.json")
    atomic_write_bytes(render_html(results, frame, table, figures, notes).encode(), report)
    return report
