"""Reports on a search: the study as a DataFrame, the paper's table layout, figures, and one HTML page.

`write_report(study_or_results, out_dir)` writes everything; the pieces are public for notebooks and
for comparing searches (`hypervolume_2d`, `hypervolume_curve`).
"""

from indexnas.reports.frame import trials_frame
from indexnas.reports.index_maps import collect_index_maps, plot_index_maps
from indexnas.reports.hypervolume import hypervolume_curve
from indexnas.reports.pareto import hypervolume_2d, pareto_mask
from indexnas.reports.plots import plot_hypervolume, plot_pareto_choices, plot_tradeoff
from indexnas.reports.report import write_report
from indexnas.reports.source import Results, load_results, load_study, results_from_study, save_results
from indexnas.reports.table import paper_table, render_table

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
