"""The HTML report in a real browser: headless Chromium (Debian's `chromium` package) loads it from disk
with the network off, and a probe script added to a copy of the page reports script errors, every
image's natural size, and any resource fetched from outside the page.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from matplotlib.image import imread
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import create_trial
from torch import nn

from indexnas import ops
from indexnas.indexnet import IndexNet
from indexnas.spec import paper_variants
from indexnas.reports import plot_index_maps, write_report

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium package (apt-get install chromium)"),
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
]
optuna.logging.set_verbosity(optuna.logging.WARNING)

# Registered in <head> so that errors raised while the page parses are caught too.
PROBE_HEAD = "<script>window.__errors = []; addEventListener('error', e => __errors.push(String(e.message)));</script>"
PROBE_BODY = """<script>
addEventListener('load', () => {
  const images = [...document.images];
  const outside = performance.getEntriesByType('resource').map(r => r.name).filter(n => !n.startsWith('data:'));
  const probe = document.createElement('pre');
  probe.id = 'probe';
  probe.textContent = JSON.stringify({
    errors: __errors, outside: outside, tables: document.querySelectorAll('table').length,
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
    run = chromium(copy, tmp_path / "profile", "--dump-dom")
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
