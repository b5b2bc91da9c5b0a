"""benchmarks/gpu_check.sh: its CPU smoke run writes every figure the GPU run will, and a step that
failed or ran out of time leaves the others' figures in the report."""

from __future__ import annotations

import importlib.util
import json
import subprocess

import pytest
from paths import REPO

ROOT = REPO
STEPS = ["pytest-gpu", "ops", "models-dncnn_segnet", "models-segnet", "search"]


def _report_module():
    spec = importlib.util.spec_from_file_location("bench_gpu_report", ROOT / "benchmarks" / "bench_gpu_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_timed_out_step_is_reported_and_the_other_figures_are_kept(tmp_path):
    (tmp_path / "steps.tsv").write_text("ops\t0\t30\t60\nsearch\t124\t240\t240\n")
    ops = {"goals": {"x_max_pool_unpool_at_most": 1.0, "of_copy_at_least": 0.6}, "rows": [
        {"shape_name": "large", "shape": [16, 256, 80, 80], "dtype": "bfloat16", "device": "cuda", "family": "",
         "case": "max pool + unpool", "x max pool + unpool": 1.0, "of_copy": 0.5, "gb_per_s": 2000, "fwd_bwd_ms": 2.0},
        {"shape_name": "large", "shape": [16, 256, 80, 80], "dtype": "bfloat16", "device": "cuda", "family": "max maps",
         "case": "IP+IU, max maps", "x max pool + unpool": 0.8, "of_copy": 0.7, "gb_per_s": 2800, "fwd_bwd_ms": 1.6},
        {"shape_name": "large", "shape": [16, 256, 80, 80], "dtype": "bfloat16", "device": "cuda", "family": "depthwise",
         "case": "IP+IU, depthwise", "x max pool + unpool": 1.2, "of_copy": 0.55, "gb_per_s": 2200, "fwd_bwd_ms": 2.4},
        {"shape_name": "large", "shape": [16, 256, 80, 80], "dtype": "bfloat16", "device": "cuda", "family": "",
         "case": "device copy (same bytes)", "x max pool + unpool": 0.4, "of_copy": 1.0, "gb_per_s": 4000, "fwd_bwd_ms": 0.8},
    ]}
    (tmp_path / "ops.json").write_text(json.dumps(ops))
    report = _report_module()
    result = report.collect(tmp_path)
    [table] = result["operators"]
    assert (table["worst_x_max_pool_unpool"], table["worst_of_copy"], table["copy_gb_per_s"]) == (1.2, 0.55, 4000)
    assert table["meets_ratio_goal"] is False and table["meets_bandwidth_goal"] is False
    assert result["steps"][1] == {"step": "search", "exit_status": 124, "seconds": 240.0, "limit_s": 240.0,
                                  "timed_out": True}
    assert result["search"] is None and result["models"] == [] and result["pytest_gpu"] is None
    text = report.markdown(result, "benchmarks/gpu_check.sh")
    assert "| search | timed out | 240 | 240 |" in text
    assert "| large (16, 256, 80, 80) | bfloat16 | 4000 | 1.20 (<= 1.0: **no**) | 55% (>= 60%: **no**) |" in text


@pytest.mark.slow
def test_the_cpu_smoke_run_writes_every_figure_of_the_gpu_run(tmp_path):
    run = subprocess.run([str(ROOT / "benchmarks" / "gpu_check.sh"), "--cpu-smoke", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    # the GPU machine returns at most 8 files: the check writes 3 (its raw parts lie in a temporary folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu_check.json", "gpu_check.log", "gpu_check.md"]
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert [s["step"] for s in result["steps"]] == STEPS
    assert all(s["exit_status"] == 0 for s in result["steps"]), result["steps"]
    assert {"torch", "cuda_build", "python", "cpu_count"} <= set(result["environment"])
    tests = result["pytest_gpu"]
    assert tests["failed"] == 0 and tests["skipped"] == tests["tests"] > 0  # no CUDA here: every GPU test skips
    [ops] = result["operators"]
    assert ops["copy_gb_per_s"] > 0 and ops["worst_x_max_pool_unpool"] > 0 and 0 < ops["worst_of_copy"]
    assert set(ops["rows"]) == {"max maps (one-hot)", "avg maps (uniform)", "depthwise maps (M2O/O2O)",
                                "holistic maps (1 channel)"}
    assert [m["host"] for m in result["models"]] == ["dncnn_segnet", "segnet"]
    assert all(m["small_families_worst"] > 0 and m["host_train_ms"] > 0 for m in result["models"])
    runs = result["search"]["runs"]
    assert [r["workers"] for r in runs] == [1, 2]
    assert all(r["completed"] >= 1 and r["trials_per_hour"] > 0 and r["devices"] == ["cpu"] for r in runs)
    assert runs[1]["warm_host_reused"] and result["search_workers2_over_workers1"] > 0
    assert result["raw"]["ops"]["rows"] and len(result["raw"]["models"]) == 2
    assert result["search"]["probe"]["data_ms_per_batch"] > 0 and result["search"]["probe"]["surgery_s"] > 0
    text = (tmp_path / "gpu_check.md").read_text()
    assert "== search (limit" in (tmp_path / "gpu_check.log").read_text()
    for heading in ("| step | exit |", "`pytest -m gpu`:", "Operators, forward+backward", "Training step per variant",
                    "Search (`indexnas search`", "Where the time goes:"):
        assert heading in text
