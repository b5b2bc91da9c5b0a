"""The HTML report in a real browser: headless Chromium (Debian's `chromium` package) loads it from disk
with the network off, 1400 px wide, and a probe script added to a copy of the page reports script errors,
every image's natural size, any resource fetched from outside the page, and how wide each table is; a
second page inlines the report's SVG figures and reports the box of every text in them, so that labels
that overlap (or tables wider than the page) fail.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
from matplotlib.image import imread
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import create_trial
from torch import nn

from indexnas import ops
from indexnas.indexnet import IndexNet
from indexnas.spec import all_choices, paper_variants
from indexnas.reports import plot_index_maps, write_report

CHROMIUM = Path("/usr/bin/chromium")
PAGE_WIDTH = 1400
pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium package (apt-get install chromium)"),
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
]
optuna.logging.set_verbosity(optuna.logging.WARNING)

# Registered in <head> so that errors raised while the page parses are caught too.
PROBE_HEAD = "<script>window.__errors = []; addEventListener('error', e => __errors.push(String(e.message)));</script>"
PROBE_BODY = """<script>
addEventListener('load', () => {
  document.querySelectorAll('details').forEach(d => { d.open = true; });  // the all-trials table too
  const body = document.body.getBoundingClientRect().right - parseFloat(getComputedStyle(document.body).paddingRight);
  const images = [...document.images];
  const outside = performance.getEntriesByType('resource').map(r => r.name).filter(n => !n.startsWith('data:'));
  const probe = document.createElement('pre');
  probe.id = 'probe';
  probe.textContent = JSON.stringify({
    errors: __errors, outside: outside, tables: document.querySelectorAll('table').length, page: body,
    table_right: [...document.querySelectorAll('table')].map(t => t.getBoundingClientRect().right),
    images: images.map(i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight})),
  });
  document.body.appendChild(probe);
});
</script>"""


def chromium(page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000",
               *extra, page.as_uri()]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def probe(page: Path, tmp_path: Path, inject: str = "") -> tuple[dict, str]:
    """Load a probed copy of ``page``: (what the probe saw, Chromium's console lines)."""
    text = page.read_text()
    copy = page.with_name("probed.html")
    copy.write_text(text.replace("<head>", "<head>" + PROBE_HEAD, 1).replace("</body>", inject + PROBE_BODY + "</body>"))
    run = chromium(copy, tmp_path / "profile", "--dump-dom", f"--window-size={PAGE_WIDTH},1000")
    found = re.search(r'<pre id="probe">(.*?)</pre>', run.stdout, re.S)
    assert found, f"the probe did not run; Chromium said:\n{run.stderr[-2000:]}"
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    return json.loads(html.unescape(found.group(1))), "\n".join(console)


class TinyIndexNetModel(nn.Module):
    """One IndexNet stage: conv, IP, conv, IU, conv."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.mid, self.head = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 1, 1)
        self.index = IndexNet("m2o-nl-c", 4)

    def forward(self, x):
        x = self.stem(x)
        enc, dec = self.index(x)
        return self.head(ops.indexed_upsample(self.mid(ops.indexed_pool(x, enc)), dec))


def small_study(path: Path) -> optuna.Study:
    """A host trial, the 15 paper configurations and a few mixed trials (one failed) on two pairs."""
    study = optuna.create_study(storage=JournalStorage(JournalFileBackend(str(path))), study_name="browser",
                                directions=["maximize", "minimize", "minimize"])
    pairs = ["down1", "down2"]
    study.set_user_attr("indexnas", {
        "task": "denoise", "model": "dncnn_segnet", "mode": "pool", "primary_metric": "psnr", "direction": "maximize",
        "objectives": ["psnr", "params_added", "gflops"], "pairs": [{"name": p, "channels": 64} for p in pairs]})
    rng = np.random.default_rng(3)
    configs = [("host", "keep"), *((str(s), str(s)) for s in paper_variants())]
    configs += [(None, c) for c in ("o2o-shared", "m2o", "holistic", "max")]
    for number, (uniform, choice) in enumerate(configs):
        choices = {p: choice if i == 0 or uniform else "keep" for i, p in enumerate(pairs)}
        delta = int(0 if choice in ("keep", "max") else 10 ** rng.uniform(1, 6))
        attrs = {"choices": choices, "uniform": uniform, "params_added": delta, "params_total": 7_000_000 + delta,
                 "gflops": 18.0 + delta / 1e6}
        if number == 5:
            attrs["failure"] = {"kind": "diverged", "message": "loss became nan at step 7 <script>alert(1)</script>"}
            study.add_trial(create_trial(state=optuna.trial.TrialState.FAIL, user_attrs=attrs))
            continue
        psnr = float(28 + rng.uniform(0, 1))
        attrs["metrics"] = {"psnr": psnr, "ssim": 0.8}
        study.add_trial(create_trial(values=[psnr, float(delta), attrs["gflops"]], user_attrs=attrs))
    return study


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("html")
    torch.manual_seed(0)
    maps = plot_index_maps(TinyIndexNetModel(), torch.rand(1, 1, 32, 32))
    return write_report(small_study(folder / "study.log"), folder / "report", index_maps=maps)


def test_report_loads_in_chromium_without_errors_and_shows_every_plot(report, tmp_path):
    seen, console = probe(report, tmp_path)
    assert seen["errors"] == [] and console == ""
    assert seen["outside"] == []  # nothing fetched: images are data URIs, no CSS or script files
    alts = [image["alt"] for image in seen["images"]]
    assert alts == ["psnr vs Δ params", "psnr vs GFLOPs", "hypervolume over trials", "choices of the Pareto trials",
                    "index maps"]
    for image in seen["images"]:
        assert image["complete"] and image["width"] > 200 and image["height"] > 150, image
    assert seen["tables"] >= 5  # settings, pairs, paper layout, Pareto trials, failures, all trials


def test_the_probe_catches_a_broken_image_and_a_script_error(report, tmp_path):
    broken = '<img alt="broken" src="data:image/png;base64,AAAA"><script>undefinedFunction();</script>'
    seen, console = probe(report, tmp_path, inject=broken)
    assert any("undefinedFunction" in error for error in seen["errors"]) and "undefinedFunction" in console
    assert [i["width"] for i in seen["images"] if i["alt"] == "broken"] == [0]


def test_screenshot_shows_a_rendered_page(report, tmp_path):
    shot = tmp_path / "report.png"
    chromium(report, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,2000", "--hide-scrollbars")
    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (2000, 1280)
    assert pixels.std() > 0.1  # text, tables and plots, not a blank page
    saturated = (pixels.max(axis=2) - pixels.min(axis=2)) > 0.3  # grey text and rules are never saturated
    assert saturated.sum() > 300  # the first plot's coloured marks are on screen


# ---------------------------------------------------------------------------------------------------
# Readability: text boxes of the figures, table widths, and what the page says in the corner cases
# ---------------------------------------------------------------------------------------------------

TEXT_BOXES = """<script>
addEventListener('load', () => {
  const figures = {};
  for (const holder of document.querySelectorAll('div[data-figure]')) {
    figures[holder.dataset.figure] = [...holder.querySelectorAll('g[id^="text_"]')].map(g => {
      const r = g.getBoundingClientRect();
      return {text: g.textContent.trim() || g.innerHTML.match(/<!-- (.*?) -->/)?.[1] || '', x0: r.left, y0: r.top,
              x1: r.right, y1: r.bottom};
    }).filter(b => b.x1 - b.x0 > 0 && b.y1 - b.y0 > 0);
  }
  const probe = document.createElement('pre');
  probe.id = 'probe';
  probe.textContent = JSON.stringify(figures);
  document.body.appendChild(probe);
});
</script>"""


def svg_text_boxes(folder: Path, tmp_path: Path) -> dict[str, list[dict]]:
    """{figure name: text boxes in px} for every figures/*.svg of a report, as Chromium lays them out."""
    holders = "".join(f'<div data-figure="{svg.stem}">{svg.read_text()}</div>'
                      for svg in sorted((folder / "figures").glob("*.svg")))
    page = tmp_path / "figures.html"
    page.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>{holders}{TEXT_BOXES}</body>"
                    "</html>")
    run = chromium(page, tmp_path / "profile-svg", "--dump-dom")
    found = re.search(r'<pre id="probe">(.*?)</pre>', run.stdout, re.S)
    assert found, run.stderr[-2000:]
    return json.loads(html.unescape(found.group(1)))


def overlapping(boxes: list[dict], tolerance: float = 0.5) -> list[tuple[str, str]]:
    """Pairs of texts whose boxes intersect by more than ``tolerance`` px in both directions."""
    pairs = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            wide = min(a["x1"], b["x1"]) - max(a["x0"], b["x0"])
            high = min(a["y1"], b["y1"]) - max(a["y0"], b["y0"])
            if wide > tolerance and high > tolerance:
                pairs.append((a["text"], b["text"]))
    return pairs


def test_the_overlap_check_sees_two_labels_on_one_spot(tmp_path):
    from matplotlib.figure import Figure

    from indexnas.reports.plots import encode

    figure = Figure(figsize=(3, 2))
    axes = figure.add_subplot()
    axes.annotate("o2o-unshared", (0.5, 0.5))
    axes.annotate("o2o-unshared-nl", (0.5, 0.5))
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "clash.svg").write_text(encode(figure, "clash", "clash").svg)
    boxes = svg_text_boxes(tmp_path, tmp_path)["clash"]
    assert overlapping(boxes) == [("o2o-unshared", "o2o-unshared-nl")]


MATTING_PAIRS = [f"encoder.stage{k}.pool" for k in range(1, 6)]


def crowded_study(path: Path, only_host: bool = False) -> optuna.Study:
    """A matting-like study: five long pair names, four metrics (SAD first, minimised), GFLOPs nearly equal for
    every configuration (labels crowd at one x), and many mixed trials; with ``only_host`` the host beats
    every trial, so that it alone is Pareto-optimal and the hypervolume stays 0."""
    study = optuna.create_study(storage=JournalStorage(JournalFileBackend(str(path))), study_name="crowded",
                                directions=["minimize", "minimize", "minimize"])
    study.set_user_attr("indexnas", {
        "task": "matting", "model": "matting", "mode": "pool", "primary_metric": "sad", "direction": "minimize",
        "objectives": ["sad", "params_added", "gflops"],
        "pairs": [{"name": p, "up": p.replace("encoder", "decoder").replace("pool", "unpool"), "channels": 32,
                   "allowed": [str(c) for c in all_choices()], "why_limited": ""} for p in MATTING_PAIRS],
        "host": {"trained": True, "metrics": {"sad": 21.981777439711454, "mse": 0.0412, "grad": 30.1, "conn": 22.4}}})
    rng = np.random.default_rng(5)
    configs = [("host", ["keep"] * 5), *((str(s), [str(s)] * 5) for s in paper_variants())]
    pool = [str(c) for c in all_choices()]
    configs += [(None, [pool[i] for i in rng.integers(len(pool), size=5)]) for _ in range(30)]
    for uniform, choices in configs:
        delta = 0 if uniform == "host" else int(10 ** rng.uniform(1, 6.5))
        sad = 22.0 if uniform == "host" else float(22.0 + (1 if only_host else -1.5) * rng.uniform(0.1, 2.0))
        attrs = {"choices": dict(zip(MATTING_PAIRS, choices)), "uniform": uniform, "params_added": delta,
                 "params_total": 3_753_000 + delta, "gflops": 1.25 + delta / 1e9, "latency_ms": 3.21,
                 "train_seconds": 41.5, "steps": 300, "device": "cuda:0",
                 "metrics": {"sad": sad, "mse": sad / 500, "grad": sad * 1.3, "conn": sad * 1.02}}
        study.add_trial(create_trial(values=[sad, float(delta), attrs["gflops"]], user_attrs=attrs))
    return study


@pytest.mark.parametrize("only_host", [False, True], ids=["crowded", "only-host-on-the-front"])
def test_figures_have_no_overlapping_text_and_tables_fit_the_page(tmp_path, only_host):
    folder = write_report(crowded_study(tmp_path / "study.log", only_host), tmp_path / "report").parent
    seen, console = probe(folder / "report.html", tmp_path)
    assert seen["errors"] == [] and console == ""
    assert seen["table_right"] and max(seen["table_right"]) <= seen["page"] + 1, seen
    boxes = svg_text_boxes(folder, tmp_path)
    assert {"tradeoff_params", "tradeoff_gflops", "pareto_choices"} <= set(boxes)
    for name, texts in boxes.items():
        assert overlapping(texts) == [], name
    page = (folder / "report.html").read_text()
    assert "21.981777439711454" not in page and "21.9818" in page  # the warm start's host metric, rounded
    if only_host:
        assert "Only the untouched host is Pareto-optimal: no IndexNet trial is on the front." in page
        assert "no IndexNet trial is on the Pareto front" in page and "checkpoint" not in page
        assert "hypervolume" not in boxes and "nothing to plot" in page
        assert "Pareto-optimal trials (1)" in page and "1 trials" not in page
    else:
        labels = {t["text"] for t in boxes["tradeoff_params"]}
        mixed = pd.read_csv(folder / "trials.csv").query("pareto and uniform.isna()", engine="python")["number"]
        assert len(mixed) >= 3 and {f"#{n}" for n in mixed} <= labels  # every mixed Pareto point is labelled
        assert f"mixed #{mixed.iloc[0]}" in page  # and keyed to the Pareto table
        ticks = [t["text"] for t in boxes["hypervolume"]]
        assert "2.5" not in ticks and "7.5" not in ticks
        assert "all 24" in page and page.count("o2o-unshared-nl-c") < 40  # allowed choices summarised per pair
        assert "The host has two sad scores: 21.98 after its warm-start training" in page


def test_no_figure_of_the_small_report_has_overlapping_text(report, tmp_path):
    boxes = svg_text_boxes(report.parent, tmp_path)
    assert set(boxes) == {"tradeoff_params", "tradeoff_gflops", "hypervolume", "pareto_choices", "index_maps"}
    assert {name: overlapping(texts) for name, texts in boxes.items()} == {name: [] for name in boxes}
