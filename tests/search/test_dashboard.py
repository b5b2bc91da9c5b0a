"""optuna-dashboard (the `dashboard` extra) opens a finished study and shows its objectives by name."""

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
from conftest import tiny_settings

from indexnas.search.settings import SearchSettings
from indexnas.search.run import run_search
from indexnas.tasks.problem import TaskProblem

# the console script beside this Python's (a virtual environment's bin/), else on PATH
_BESIDE = Path(sys.executable).with_name("optuna-dashboard")
DASHBOARD = str(_BESIDE) if _BESIDE.exists() else shutil.which("optuna-dashboard")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str, deadline: float) -> dict:
    """GET a JSON document, retrying while the server starts (until ``deadline``)."""
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.load(response)
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@pytest.mark.skipif(DASHBOARD is None, reason="optuna-dashboard is not installed (pip install 'indexnas[dashboard]')")
def test_the_dashboard_serves_the_study_with_named_objectives_and_its_trials(tmp_path):
    torch.set_num_threads(1)
    settings = SearchSettings(**tiny_settings(tmp_path, trials=1, study="shown"))
    run_search(settings, TaskProblem)
    port = free_port()
    server = subprocess.Popen([DASHBOARD, settings.storage, "--host", "127.0.0.1", "--port", str(port), "--quiet"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        studies = get(f"http://127.0.0.1:{port}/api/studies", deadline)["study_summaries"]
        study = next(s for s in studies if s["study_name"] == "shown")
        detail = get(f"http://127.0.0.1:{port}/api/studies/{study['study_id']}", deadline)
        assert detail["objective_names"] == ["psnr", "params_added"]
        trial = detail["trials"][0]
        attrs = {a["key"]: a["value"] for a in trial["user_attrs"]}
        assert trial["state"] == "Complete" and attrs["uniform"] == "host" and "recipe" in attrs
    finally:
        server.terminate()
        server.wait(timeout=10)
