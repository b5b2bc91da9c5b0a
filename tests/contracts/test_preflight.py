"""Mistakes found before any work: nothing trains, nothing is written, one error with a fix."""

from __future__ import annotations

import os
import subprocess

import numpy as np
import pytest
import torch
from conftest import tiny_settings
from torch import nn

import indexnas.tasks.preflight as preflight
from indexnas.errors import UserError
from indexnas.tasks.data.dataset import SampleDataset
from indexnas.search.settings import SearchSettings
from indexnas.search.run import run_search
from indexnas.tasks.registry import get_task
from indexnas.tasks.problem import TaskProblem


def refused_before_any_work(tmp_path, match: str, **overrides) -> None:
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(UserError, match=match) as error:
        run_search(SearchSettings(**tiny_settings(tmp_path, **overrides)), TaskProblem)
    assert "fix:" in str(error.value)
    assert sorted(tmp_path.rglob("*")) == before  # no journal, no host.pt, no run folder


@pytest.mark.parametrize("seed", [-1, 2**31, 2**40])
def test_a_seed_out_of_range_is_refused_before_any_work(seed, tmp_path):
    refused_before_any_work(tmp_path, "--seed must be an integer from 0 to", seed=seed)


def test_an_out_that_is_a_file_is_refused_before_any_work(tmp_path):
    (tmp_path / "taken").write_text("not a folder")
    refused_before_any_work(tmp_path, "is a file, not a folder", out=str(tmp_path / "taken"))


def test_a_storage_that_is_a_device_is_refused_before_any_work(tmp_path):
    refused_before_any_work(tmp_path, "not a regular file", storage="/dev/null")


def test_an_out_on_a_read_only_filesystem_is_refused_before_any_work(tmp_path):
    frozen = tmp_path / "frozen"
    frozen.mkdir()
    if os.geteuid() == 0:  # root writes through permissions: a read-only mount
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(frozen)]).returncode:
            pytest.skip("cannot mount a read-only tmpfs here")
    else:
        frozen.chmod(0o500)
    try:
        refused_before_any_work(tmp_path, "is not writable", out=str(frozen / "run"))
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", "-l", str(frozen)])


def test_a_training_step_that_cannot_fit_in_memory_is_refused_with_a_patch_that_fits(monkeypatch):
    host = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 3, padding=1))
    example = torch.rand(1, 1, 64, 64)
    small, large = (preflight.step_memory(host, example, 16, patch) for patch in (40, 80))
    parameters = sum(p.numel() for p in host.parameters()) * preflight.BYTES_PER_PARAMETER
    assert (large - parameters) == pytest.approx(4 * (small - parameters), rel=1e-3)  # activations scale with area
    settings = SearchSettings(task="denoise", model="x", study="s", storage="s.log", out="run", patch=5000)
    monkeypatch.setattr(preflight, "available_memory", lambda device: 8 * 2**30)
    with pytest.raises(UserError, match=r"--patch 5000 needs about .* GiB, more than the 8.0 GiB") as error:
        preflight.check_memory(settings, host, example)
    fits = int(str(error.value).split("about ")[-1].split(" fits")[0])
    assert preflight.step_memory(host, example, 16, fits) <= 8 * 2**30 < preflight.step_memory(host, example, 16, 2 * fits)


def dataset(**fields) -> SampleDataset:
    def make(_index: int, _rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {key: value.copy() for key, value in fields.items()}

    return SampleDataset(make, 4, seed=0)


def test_data_with_nan_inputs_or_no_valid_depth_is_named_as_such_before_training():
    image, depth = np.random.rand(3, 16, 16).astype(np.float32), np.ones((1, 16, 16), np.float32)
    task = get_task("depth")
    preflight.check_data(task, dataset(image=image, depth=depth), dataset(image=image, depth=depth))
    nan_image = image.copy()
    nan_image[0, 3, 3] = np.nan
    with pytest.raises(UserError, match="input images hold NaN or infinite values"):
        preflight.check_data(task, dataset(image=nan_image, depth=depth), dataset(image=image, depth=depth))
    no_depth = np.zeros_like(depth)  # what all-inf depth maps read as: every pixel invalid
    with pytest.raises(UserError, match="none of the 4 validation depth maps .* has a valid pixel"):
        preflight.check_data(task, dataset(image=image, depth=depth), dataset(image=image, depth=no_depth))
