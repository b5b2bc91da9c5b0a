"""Reports: a study as a DataFrame, Pareto marks, hypervolume, the paper's table layout, figures,
index maps, the report folder and `indexnas report`.

Studies are built with Optuna directly (the schema's user_attrs), Delta params from the real
operators at DnCNN-SegNet's pooled channels (64/128/256), so the table is the paper's Table 5 cost half.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState, create_trial
from torch import nn

from indexnas import ops
from indexnas.cli import main
from indexnas.errors import UserError
from indexnas.cost import count_parameters
from indexnas.indexnet import IndexNet, build_index_module
from indexnas.spec import IndexSpec, paper_variants
from indexnas.reports import (
    collect_index_maps,
    hypervolume_2d,
    hypervolume_curve,
    load_results,
    load_study,
    paper_table,
    pareto_mask,
    plot_index_maps,
    plot_pareto_choices,
    plot_tradeoff,
    render_table,
    trials_frame,
    write_report,
)
from indexnas.reports.plots import encode
from indexnas.reports.table import MIXED
from indexnas.paper import FAMILY_BLOCKS, format_delta

optuna.logging.set_verbosity(optuna.logging.WARNING)
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

PAIRS = {"encoder.stage1.pool": 64, "encoder.stage2.pool": 128, "encoder.stage3.pool": 256}
HOST_PARAMS, HOST_GFLOPS = 7_090_000, 18.14
MIXED_POOL = ["keep", "max", "o2o-shared", "o2o-shared-nl", "m2o", "holistic", "o2o-unshared-nl"]
# The paper's Table 5 Delta column (DnCNN-SegNet), in paper_variants() order.
TABLE5_DELTAS = ["+7.17K", "+0.69M", "+2.76M", "+16", "+56", "+152", "+48", "+168", "+456",
                 "+7.17K", "+25.1K", "+68.1K", "+1.38M", "+3.45M", "+11.7M"]


def delta_params(choices: dict[str, str]) -> int:
    """Parameters the choices add, from the real index modules (a modelwise module counted once)."""
    specs = [(PAIRS[p], IndexSpec.parse(c)) for p, c in choices.items()]
    stagewise = sum(count_parameters(build_index_module(s, c)) for c, s in specs if s.learned and not s.modelwise)
    modelwise = {str(s): count_parameters(build_index_module(s, c)) for c, s in specs if s.modelwise}
    return stagewise + sum(modelwise.values())


def settings() -> dict:
    return {
        "task": "denoise", "model": "dncnn_segnet", "mode": "pool", "budget_steps": 50,
        "primary_metric": "psnr", "direction": "maximize", "objectives": ["psnr", "params_added", "gflops"],
        "pairs": [{"name": n, "channels": c, "in_size": [40, 40], "out_size": [20, 20]} for n, c in PAIRS.items()],
        "host": {"trained": True, "metrics": {"psnr": 27.5, "ssim": 0.84}}, "seed": 0,
        "settings": {"storage": "postgresql://user:***@db/x", "trials": 30},
    }


def add_trial(study: optuna.Study, choices: dict[str, str], uniform: str | None, psnr: float | None,
              state: TrialState = TrialState.COMPLETE, failure: dict | None = None, **extra: object) -> None:
    delta = delta_params(choices)
    attrs = {"choices": choices, "uniform": uniform, "params_added": delta, "params_total": HOST_PARAMS + delta,
             "gflops": HOST_GFLOPS + delta * 1e-6, "gflops_added": delta * 1e-6, "recipe": {"pairs": choices}, **extra}
    if failure:
        attrs["failure"] = failure
    values = None
    if state == TrialState.COMPLETE:
        attrs.update(metrics={"psnr": psnr, "ssim": 0.8 + psnr / 1000}, latency_ms=2.0, train_seconds=9.0, steps=50,
                     device="cpu", worker="host-1")
        values = [psnr, float(delta), attrs["gflops"]]
    study.add_trial(create_trial(state=state, values=values, user_attrs=attrs))


def build_study(path: Path, name: str = "demo", mixed: int = 12) -> optuna.Study:
    """Host, the 15 paper configurations (one failed, one pruned, one run twice), and mixed trials."""
    storage = JournalStorage(JournalFileBackend(str(path)))
    study = optuna.create_study(storage=storage, study_name=name, directions=["maximize", "minimize", "minimize"])
    study.set_user_attr("indexnas", settings())
    rng = np.random.default_rng(0)
    add_trial(study, {p: "keep" for p in PAIRS}, "host", 28.0)
    for spec in paper_variants():
        choices = {p: str(spec) for p in PAIRS}
        if str(spec) == "holistic-nl-c":
            add_trial(study, choices, str(spec), None, TrialState.FAIL, {"kind": "diverged", "message": "loss is nan"})
        elif str(spec) == "m2o-nl-c":
            add_trial(study, choices, str(spec), None, TrialState.PRUNED,
                      {"kind": "over_budget", "message": "adds 11,705,344 parameters, over --max-params 5,000,000"})
        else:
            add_trial(study, choices, str(spec), float(28.0 + rng.uniform(-0.3, 0.6)))
    add_trial(study, {p: "o2o-shared" for p in PAIRS}, "o2o-shared", 29.5)  # the same configuration, run again
    for _ in range(mixed):
        choices = {p: MIXED_POOL[rng.integers(len(MIXED_POOL))] for p in PAIRS}
        add_trial(study, choices, None, float(28.0 + rng.uniform(-0.3, 0.9)))
    return study


@pytest.fixture()
def study_log(tmp_path: Path) -> Path:
    path = tmp_path / "study.log"
    build_study(path)
    return path


@pytest.fixture()
def frame(study_log: Path) -> pd.DataFrame:
    return trials_frame(load_study(str(study_log), "demo"))


# ---------------------------------------------------------------------------------------------------
# Pareto and hypervolume
# ---------------------------------------------------------------------------------------------------

def test_pareto_mask_dominance_directions_and_ties():
    points = [(1, 1), (2, 0), (0, 2), (0.5, 0.5), (0.5, 0.5), (np.nan, 0)]
    assert pareto_mask(points, ["minimize", "minimize"]).tolist() == [False, True, True, True, True, False]
    # maximising the first objective turns the order of that column around
    assert pareto_mask(points, ["maximize", "minimize"]).tolist() == [False, True, False, False, False, False]


def test_hypervolume_2d_staircase_and_reference():
    points = [(1, 3), (2, 2), (3, 1), (3.5, 3.5)]  # the last is dominated
    assert hypervolume_2d(points, (4, 4), ["minimize", "minimize"]) == pytest.approx(6.0)
    # maximise the first objective: the same geometry mirrored
    mirrored = [(-x, y) for x, y in points]
    assert hypervolume_2d(mirrored, (-4, 4), ["maximize", "minimize"]) == pytest.approx(6.0)
    assert hypervolume_2d([(5, 0)], (4, 4), ["minimize", "minimize"]) == 0.0  # beyond the reference
    assert hypervolume_2d([], (4, 4), ["minimize", "minimize"]) == 0.0


def test_hypervolume_2d_equals_counting_unit_cells():
    rng = np.random.default_rng(1)
    for _ in range(20):
        points = rng.integers(0, 12, size=(rng.integers(1, 9), 2))
        reference = (12, 12)
        cells = sum(
            any(px <= i and py <= j for px, py in points) for i in range(12) for j in range(12)
        )  # cell [i, i+1] x [j, j+1] is dominated when some point is at or below its lower corner
        assert hypervolume_2d(points, reference, ["minimize", "minimize"]) == pytest.approx(cells)


def test_hypervolume_curve_grows_with_trials_and_ignores_failures(frame):
    curve = hypervolume_curve(frame)
    assert curve["number"].tolist() == sorted(frame["number"])
    assert np.all(np.diff(curve["hypervolume"]) >= 0)
    reference = curve.attrs["reference"]
    assert reference[0] == pytest.approx(28.0)  # the host trial's psnr
    complete = frame[frame["state"] == "COMPLETE"]
    points = np.column_stack([complete["metric:psnr"], np.log10(1 + complete["params_added"])])
    assert curve["hypervolume"].iloc[-1] == pytest.approx(hypervolume_2d(points, reference, ["maximize", "minimize"]))
    failed = frame.index[frame["state"] != "COMPLETE"]
    for index in failed:  # a failed or pruned trial adds nothing
        position = curve.index[curve["number"] == frame.loc[index, "number"]][0]
        assert curve["hypervolume"][position] == curve["hypervolume"][position - 1]
    grid = hypervolume_curve(frame[frame["uniform"].notna()], reference)  # issue 7: the paper's grid alone
    assert len(grid) == 17 and grid["hypervolume"].iloc[-1] <= curve["hypervolume"].iloc[-1]
    explicit = hypervolume_curve(frame, reference=(27.0, 8.0))
    assert explicit.attrs["reference"] == (27.0, 8.0) and explicit["hypervolume"].iloc[-1] > curve["hypervolume"].iloc[-1]


# ---------------------------------------------------------------------------------------------------
# The trials DataFrame
# ---------------------------------------------------------------------------------------------------

def test_trials_frame_has_one_row_per_trial_and_marks_the_pareto_rows(study_log):
    study = optuna.load_study(study_name="demo", storage=JournalStorage(JournalFileBackend(str(study_log))))
    frame = trials_frame(load_study(str(study_log), "demo"))
    assert len(frame) == len(study.trials) == 1 + 15 + 1 + 12
    assert [c for c in frame.columns if c.startswith("choice:")] == [f"choice:{p}" for p in PAIRS]
    assert [c for c in frame.columns if c.startswith("metric:")] == ["metric:psnr", "metric:ssim"]
    for column in ("params_added", "gflops", "latency_ms", "train_seconds", "failure_kind", "failure_message"):
        assert column in frame.columns
    expected = {t.number for t in study.best_trials}  # Optuna's own Pareto set
    assert set(frame.loc[frame["pareto"], "number"]) == expected
    failed = frame.set_index("number").loc[3]
    assert (failed["state"], failed["failure_kind"], failed["pareto"]) == ("FAIL", "diverged", False)
    assert frame.attrs["primary_metric"] == "psnr" and frame.attrs["host_metric"] == 28.0


def test_uniform_marks_are_canonical_spec_strings(tmp_path):
    path = tmp_path / "s.log"
    study = optuna.create_study(storage=JournalStorage(JournalFileBackend(str(path))), study_name="x",
                                directions=["maximize", "minimize", "minimize"])
    study.set_user_attr("indexnas", settings())
    add_trial(study, {p: "m2o-nl-c" for p in PAIRS}, "M2O-NL-C ", 28.0)
    assert trials_frame(load_study(str(path), "x"))["uniform"].tolist() == ["m2o-nl-c"]


# ---------------------------------------------------------------------------------------------------
# The paper's table layout
# ---------------------------------------------------------------------------------------------------

def test_paper_table_rows_in_the_paper_order_with_marks(frame):
    table = paper_table(frame, settings(), delta_formatter=lambda n: f"+{n}")
    assert table["configuration"].iloc[0] == "dncnn_segnet (host)"
    assert table["#Param / Δ"].iloc[0] == "7.09M"
    variants = table.iloc[1:16]
    assert variants["configuration"].tolist() == [str(s) for s in paper_variants()]
    assert variants["block"].tolist() == [FAMILY_BLOCKS[s.family] for s in paper_variants()]
    assert variants["NL"].tolist() == ["✓" if s.nonlinear else "" for s in paper_variants()]
    assert variants["C"].tolist() == ["✓" if s.context else "" for s in paper_variants()]
    expected = [f"+{delta_params({p: str(s) for p in PAIRS})}" for s in paper_variants()]
    assert variants["#Param / Δ"].tolist() == expected
    by_name = variants.set_index("configuration")
    assert by_name.loc["o2o-shared", "psnr"] == 29.5  # the better of its two runs
    assert by_name.loc["holistic-nl-c", "status"] == "fail: diverged" and np.isnan(by_name.loc["holistic-nl-c", "psnr"])
    assert by_name.loc["m2o-nl-c", "status"] == "pruned: over_budget"
    mixed = table[table["block"] == MIXED]
    pareto_mixed = frame[frame["pareto"] & frame["uniform"].isna()]
    assert 0 < len(mixed) <= 5
    assert mixed["trial"].tolist() == pareto_mixed.sort_values("metric:psnr", ascending=False)["number"].head(5).tolist()
    assert all(mixed["choices"].str.count(r"\|") == len(PAIRS) - 1)


def test_paper_table_prints_table5_deltas_like_indexnas_table(frame):
    """Deltas counted from the real operators, printed as `indexnas table` prints them, are Table 5's."""
    table = paper_table(frame, settings())
    assert table.iloc[1:16]["#Param / Δ"].tolist() == TABLE5_DELTAS
    mixed = table[table["block"] == MIXED]
    assert [format_delta(int(n)) for n in mixed["params_added"]] == mixed["#Param / Δ"].tolist()


def test_table_exports_csv_markdown_latex(frame):
    table = paper_table(frame, settings(), delta_formatter=lambda n: f"+{n}")
    csv = pd.read_csv(pd.io.common.StringIO(render_table(table, "csv")))
    assert csv["configuration"].tolist() == table["configuration"].tolist()
    assert csv["params_added"].tolist() == table["params_added"].tolist()
    markdown = render_table(table, "markdown")
    assert markdown.splitlines()[0].startswith("| configuration | NL | C | #Param / Δ | GFLOPs | psnr | ssim |")
    for title in FAMILY_BLOCKS.values():
        assert f"| *{title}* |" in markdown
    best = table[table["block"] != "Baselines"]["psnr"].max()
    assert f"**{best:.2f}**" in markdown and markdown.count("**") == 2
    latex = render_table(table, "latex")
    assert r"\begin{tabular}" in latex and r"\end{tabular}" in latex
    assert r"\multicolumn{" in latex and r"\checkmark" in latex and r"dncnn\_segnet" in latex
    assert r"\textbf{" + f"{best:.2f}" + "}" in latex
    with pytest.raises(UserError, match="unknown table format"):
        render_table(table, "xlsx")


# ---------------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------------

def test_tradeoff_plots_label_the_paper_configurations_and_mixed_pareto_trials_and_draw_the_front(frame):
    for x in ("params_added", "gflops"):
        figure = plot_tradeoff(frame, x)
        axes = figure.axes[0]
        labels = {t.get_text() for t in axes.texts}
        completed = set(frame.loc[(frame["state"] == "COMPLETE") & frame["uniform"].notna(), "uniform"])
        mixed = {f"#{n}" for n in frame.loc[frame["pareto"] & frame["uniform"].isna(), "number"]}
        assert mixed and labels == completed | mixed  # mixed Pareto trials as #N, keyed to the Pareto table
        assert "host" in labels and "m2o-nl-c" not in labels  # pruned: no point
        front_line = axes.lines[0]
        complete = frame[frame["state"] == "COMPLETE"]
        front = pareto_mask(np.column_stack([complete["metric:psnr"], complete[x]]), ["maximize", "minimize"])
        assert sorted(front_line.get_xdata()) == pytest.approx(sorted(complete[x][front]))
        encoded = encode(figure, "t", "t")
        assert encoded.png.startswith(b"\x89PNG") and encoded.svg.startswith("<svg")


def test_labels_at_one_spot_are_spread_without_overlap():
    """Fifteen labels on nearly one point (the GFLOPs plot's crowd): every text box is clear of every other."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.text import Text

    from indexnas.reports.labels import place_labels

    figure = Figure(figsize=(6, 4))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    points = [(1.25 + 1e-5 * k, 20 + 0.01 * k) for k in range(15)]
    axes.scatter(*zip(*points))
    axes.set_xlim(1.2, 1.3)
    axes.set_ylim(19, 21.5)
    labels = [str(spec) for spec in paper_variants()]
    assert place_labels(axes, points, labels) == []
    figure.canvas.draw()  # annotations find their place relative to their point when drawn
    renderer = figure.canvas.get_renderer()
    boxes = [Text.get_window_extent(text, renderer) for text in axes.texts]  # the text, not its leader line
    assert [t.get_text() for t in axes.texts] == labels
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    frame = axes.get_window_extent(renderer)
    assert all(frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1 for b in boxes)


def test_pareto_choice_heatmap_counts_the_pareto_trials(frame):
    figure = plot_pareto_choices(frame)
    counts = np.asarray(figure.axes[0].images[0].get_array())
    pareto = frame[frame["pareto"]]
    choices = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    for row, pair in enumerate(PAIRS):
        for col, choice in enumerate(choices):
            assert counts[row, col] == (pareto[f"choice:{pair}"] == choice).sum()
    assert counts.sum() == len(pareto) * len(PAIRS)


# ---------------------------------------------------------------------------------------------------
# Index maps (Figure 10)
# ---------------------------------------------------------------------------------------------------

class TwoStageNet(nn.Module):
    """conv -> IP(holistic) -> conv -> IP(shared O2O) -> conv -> IU -> IU: a hand-made IndexNet model."""

    def __init__(self, second: str = "m2o-nl") -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.index1 = IndexNet("holistic-nl", 8)
        self.mid = nn.Conv2d(8, 8, 3, padding=1)
        self.index2 = IndexNet(second, 8)
        self.head = nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, x):
        x = self.stem(x)
        enc1, dec1 = self.index1(x)
        y = self.mid(ops.indexed_pool(x, enc1))
        enc2, dec2 = self.index2(y)
        z = ops.indexed_pool(y, enc2)
        return self.head(ops.indexed_upsample(ops.indexed_upsample(z, dec2), dec1))


def test_index_maps_show_holistic_maps_directly_and_depthwise_maps_as_channel_means():
    torch.manual_seed(0)
    model = TwoStageNet().train()
    image = torch.rand(1, 1, 20, 22)
    maps = collect_index_maps(model, image)
    assert [(m.module, m.choice, m.channels) for m in maps] == [("index1", "holistic-nl", 1), ("index2", "m2o-nl", 8)]
    model.eval()
    with torch.no_grad():
        x = model.stem(image)
        dec1 = model.index1(x)[1]
        dec2 = model.index2(model.mid(ops.indexed_pool(x, model.index1(x)[0])))[1]
    np.testing.assert_allclose(maps[0].image, dec1[0, 0].numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(maps[1].image, dec2[0].mean(0).numpy(), rtol=1e-6, atol=1e-6)
    assert maps[0].image.shape == (20, 22) and maps[1].image.shape == (10, 11)
    model.train()
    collect_index_maps(model, image[0])
    assert model.training  # mode restored
    assert not model.index1._forward_hooks and not model.index2._forward_hooks  # hooks removed


def test_a_shared_index_module_gives_one_map_per_call_and_the_figure_has_a_panel_each():
    model = TwoStageNet("o2o-modelwise")
    model.index2 = model.index1 = IndexNet("o2o-modelwise", 8)  # one module at both stages
    maps = collect_index_maps(model, torch.rand(1, 1, 16, 16))
    assert [(m.call, m.image.shape) for m in maps] == [(0, (16, 16)), (1, (8, 8))]
    figure = plot_index_maps(model, torch.rand(1, 1, 16, 16))
    assert sum(1 for a in figure.axes if a.images) == 1 + 2  # the input and two maps


def test_index_maps_refuse_a_model_without_index_modules():
    with pytest.raises(UserError, match="no index modules"):
        collect_index_maps(nn.Conv2d(1, 1, 3), torch.rand(1, 1, 8, 8))
    with pytest.raises(UserError, match="one image"):
        collect_index_maps(TwoStageNet(), torch.rand(2, 1, 8, 8))


# ---------------------------------------------------------------------------------------------------
# Sources and their errors
# ---------------------------------------------------------------------------------------------------

def test_unknown_study_lists_the_studies_in_the_storage(study_log):
    with pytest.raises(UserError, match=r"no study named 'nope'.*studies there: demo"):
        load_study(str(study_log), "nope")


def test_missing_journal_is_refused_and_not_created(tmp_path):
    missing = tmp_path / "missing.log"
    with pytest.raises(UserError, match="does not exist"):
        load_study(str(missing), "demo")
    with pytest.raises(UserError, match="does not exist"):
        load_study(f"journal://{missing}", "demo")
    assert not missing.exists()


def test_malformed_or_unreachable_urls_never_show_the_password(tmp_path):
    for url in ("ftp://user:hunter2@host/db", "postgresql://user:hunter2@127.0.0.1:1/db"):
        with pytest.raises(UserError) as error:
            load_study(url, "demo")
        assert "hunter2" not in str(error.value)
    with pytest.raises(UserError) as error:
        load_study("ftp://user:hunter2@host/db", "demo")
    assert "user:***@host" in str(error.value)


def test_a_file_that_is_not_a_journal_is_refused(tmp_path):
    bogus = tmp_path / "notes.log"
    bogus.write_text('{"op_code": 99, "note": "a JSON log, but not an Optuna journal"}\n')
    with pytest.raises(UserError, match="not a readable Optuna storage"):
        load_study(str(bogus), "demo")


def test_results_file_errors(tmp_path):
    with pytest.raises(UserError, match="no results file"):
        load_results(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(UserError, match="not a JSON results file"):
        load_results(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"trials": []}))
    with pytest.raises(UserError, match="not an indexnas results file"):
        load_results(tmp_path / "other.json")


# ---------------------------------------------------------------------------------------------------
# The report folder and the CLI
# ---------------------------------------------------------------------------------------------------

REPORT_FILES = ["report.html", "results.json", "trials.csv", "table.csv", "table.md", "table.tex"]
FIGURE_FILES = ["tradeoff_params", "tradeoff_gflops", "hypervolume", "pareto_choices"]


def test_cli_writes_the_report_refuses_to_overwrite_and_replaces_with_force(study_log, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", "demo", "--storage", str(study_log), "--out", str(out)]) == 0
    assert f"report written: {out / 'report.html'}" in capsys.readouterr().out
    for name in REPORT_FILES:
        assert (out / name).stat().st_size > 0
    for name in FIGURE_FILES:
        assert (out / "figures" / f"{name}.png").read_bytes().startswith(b"\x89PNG")
        assert "<svg" in (out / "figures" / f"{name}.svg").read_text()
    assert not [p for p in out.rglob("*.tmp")]  # atomic writes leave no temporary files
    page = (out / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == len(FIGURE_FILES)
    assert "http://" not in page and "https://" not in page  # nothing to fetch
    assert "loss is nan" in page and "over --max-params" in page  # failure reasons listed
    assert "user:***@db" in page  # the study's settings are shown

    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert main(["report", "demo", "--storage", str(study_log), "--out", str(out)]) == 2
    assert "already holds a report" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before
    assert main(["report", "demo", "--storage", str(study_log), "--out", str(out), "--force"]) == 0


def test_results_file_rerenders_the_same_tables(study_log, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    assert main(["report", "demo", "--storage", str(study_log), "--out", str(first)]) == 0
    assert main(["report", "--results", str(first / "results.json"), "--out", str(second)]) == 0
    for name in ("trials.csv", "table.csv", "table.md", "table.tex"):
        assert (first / name).read_text() == (second / name).read_text()
    assert main(["report", "other", "--results", str(first / "results.json"), "--out", str(tmp_path / "c")]) == 2


def test_cli_without_a_source_is_a_user_error(tmp_path, capsys):
    assert main(["report", "--out", str(tmp_path / "r")]) == 2
    assert "no study to report on" in capsys.readouterr().err


def test_report_of_a_study_without_complete_trials(tmp_path):
    path = tmp_path / "s.log"
    study = optuna.create_study(storage=JournalStorage(JournalFileBackend(str(path))), study_name="early",
                                directions=["maximize", "minimize", "minimize"])
    study.set_user_attr("indexnas", settings())
    add_trial(study, {p: "m2o" for p in PAIRS}, None, None, TrialState.FAIL, {"kind": "oom", "message": "CUDA OOM"})
    report = write_report(study, tmp_path / "out")
    page = report.read_text()
    assert "No complete trial" in page and "CUDA OOM" in page
    table = pd.read_csv(tmp_path / "out" / "table.csv")
    assert (table["status"].iloc[1:16] == "not run").all()
    host = table.iloc[0]  # no host trial: the warm start's figures from the settings
    assert (host["psnr"], host["status"]) == (27.5, "warm-start host")


def test_write_report_embeds_index_maps_when_given(study_log, tmp_path):
    maps = plot_index_maps(TwoStageNet(), torch.rand(1, 1, 16, 16))
    report = write_report(load_study(str(study_log), "demo"), tmp_path / "out", index_maps=maps)
    assert (tmp_path / "out" / "figures" / "index_maps.png").exists()
    assert report.read_text().count("data:image/png;base64,") == len(FIGURE_FILES) + 1
    assert os.access(report, os.R_OK)


def test_report_rebuilds_the_best_kept_trial_and_draws_its_index_maps(tmp_path):
    """A checkpoint as the search keeps it (self-describing) is rebuilt as `indexnas.load` does; the report's
    maps are those of the saved weights on the first validation image."""
    from torch.utils.data import default_collate

    from indexnas.reports.trained import trained_index_maps
    from indexnas.tasks.problem import TaskProblem
    from indexnas.search.settings import SearchSettings
    from indexnas.search.checkpoints import checkpoint as trial_checkpoint
    from indexnas.search.space import SearchSpace
    from indexnas.tasks.registry import get_task

    search = SearchSettings(task="denoise", model="dncnn_segnet", study="kept", storage=str(tmp_path / "s.log"),
                            out=str(tmp_path / "run"), width=0.125, flops_size=40)
    problem = TaskProblem(search)
    val_set = problem.val_set
    space = SearchSpace(problem.host, problem.example, "pool", name=search.model)
    suggestion = space.rewrite({name: "o2o-shared-nl" for name in (s.name for s in space.spaces)})
    model = suggestion.model
    torch.manual_seed(1)
    with torch.no_grad():  # "trained" weights: anything but the fresh initialisation the rebuild starts from
        for parameter in model.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    checkpoint = tmp_path / "trial-00001.pt"
    torch.save(trial_checkpoint(model, suggestion.recipe, problem, {"psnr": 29.0}, suggestion.costs(), 1, "kept"),
               checkpoint)

    study = optuna.create_study(storage=JournalStorage(JournalFileBackend(search.storage)), study_name="kept",
                                directions=["maximize", "minimize", "minimize"])
    study.set_user_attr("indexnas", {**settings(), "settings": search.to_dict()})
    add_trial(study, {p: "keep" for p in PAIRS}, "host", 28.0)
    add_trial(study, {p: "o2o-shared-nl" for p in PAIRS}, "o2o-shared-nl", 29.0, checkpoint=str(checkpoint))

    page = write_report(study, tmp_path / "out").read_text()
    assert "trial 1 (o2o-shared-nl), first validation image" in page
    assert (tmp_path / "out" / "figures" / "index_maps.png").exists()

    results = load_study(search.storage, "kept")
    figure, title = trained_index_maps(results, trials_frame(results))
    image = get_task("denoise").model_inputs(default_collate([val_set[0]]))
    expected = [m.image for m in collect_index_maps(model, image)]
    shown = [np.asarray(a.images[0].get_array()) for a in figure.axes if a.images][1:]  # after the input panel
    assert len(shown) == len(expected) == 3
    for panel, wanted in zip(shown, expected):
        np.testing.assert_allclose(panel, wanted, rtol=1e-5, atol=1e-6)


def test_report_says_why_it_has_no_index_maps(study_log, tmp_path):
    page = write_report(load_study(str(study_log), "demo"), tmp_path / "out").read_text()
    assert "No index-map figure: no Pareto-optimal trial has its weights (checkpoint) on this machine" in page
