"""The demo: a small denoising search that finishes on an idle 2-core CPU in roughly 10 minutes (20 trials, then
its front retrained with 2 more seeds; README.md, "Quick start"). `indexnas demo` runs it; the benchmarks
search its host."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from indexnas.search.settings import SearchSettings

DEMO = dict(task="denoise", model="dncnn_segnet", width=0.25, budget_steps=150, batch_size=16,
            patch=40, sigma=25.0, lr=2e-3)
DEMO_TRIALS = 20


def demo_settings(out: Path, trials: int = DEMO_TRIALS) -> SearchSettings:
    """The demo's settings: a new study named by the time, its journal and run folder in ``out``."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return SearchSettings(study=f"demo-{stamp}", storage=str(out / "studies.log"), out=str(out / f"demo-{stamp}"),
                          trials=trials, progress=False, **DEMO)
