"""Reports on a search: the study as a DataFrame, the paper's table layout, figures, and one HTML page.

`write_report(study_or_results, out_dir)` writes everything; the pieces are public for notebooks and
for comparing searches (`hypervolume_2d`, `hypervolume_curve`). Imported on first use (they load
pandas, matplotlib and optuna).
"""

from typing import TYPE_CHECKING

from indexnas.lazy import lazy_exports

if TYPE_CHECKING:
    from indexnas.reports.frame import trials_frame
    from indexnas.reports.hypervolume import hypervolume_curve
    from indexnas.reports.index_maps import collect_index_maps, plot_index_maps
    from indexnas.reports.pareto import hypervolume_2d, pareto_mask
    from indexnas.reports.plots import plot_hypervolume, plot_pareto_choices, plot_tradeoff
    from indexnas.reports.report import write_report
    from indexnas.reports.source import Results, load_results, load_study, results_from_study, save_results
    from indexnas.reports.table import paper_table, render_table

_EXPORTS = {
    "Results": "indexnas.reports.source",
    "collect_index_maps": "indexnas.reports.index_maps",
    "hypervolume_2d": "indexnas.reports.pareto",
    "hypervolume_curve": "indexnas.reports.hypervolume",
    "load_results": "indexnas.reports.source",
    "load_study": "indexnas.reports.source",
    "paper_table": "indexnas.reports.table",
    "pareto_mask": "indexnas.reports.pareto",
    "plot_hypervolume": "indexnas.reports.plots",
    "plot_index_maps": "indexnas.reports.index_maps",
    "plot_pareto_choices": "indexnas.reports.plots",
    "plot_tradeoff": "indexnas.reports.plots",
    "render_table": "indexnas.reports.table",
    "results_from_study": "indexnas.reports.source",
    "save_results": "indexnas.reports.source",
    "trials_frame": "indexnas.reports.frame",
    "write_report": "indexnas.reports.report",
}
__all__ = [
    "Results",
    "collect_index_maps",
    "hypervolume_2d",
    "hypervolume_curve",
    "load_results",
    "load_study",
    "paper_table",
    "pareto_mask",
    "plot_hypervolume",
    "plot_index_maps",
    "plot_pareto_choices",
    "plot_tradeoff",
    "render_table",
    "results_from_study",
    "save_results",
    "trials_frame",
    "write_report",
]
__getattr__ = lazy_exports(__name__, _EXPORTS)
