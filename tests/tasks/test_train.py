"""The training loop: budgets, seeding, divergence, evaluation, and a short real run on every task."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from indexnas.errors import UserError
from indexnas.tasks.registry import REGISTRY, builtin_dataset, folder_dataset, get_task
from indexnas.tasks.train import DivergedError, TrainConfig, evaluate, resolve_amp, seed_everything, train_and_evaluate


@pytest.fixture(autouse=True)
def one_thread():
    """Bit-for-bit repeatable CPU arithmetic (and no oversubscription on small machines)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tiny_net(task_name: str, dataset, seed: int = 0) -> nn.Module:
    task = get_task(task_name)
    seed_everything(seed)
    return nn.Sequential(
        nn.Conv2d(task.in_channels, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, task.out_channels(dataset), 3, padding=1)
    )


def _quick(**overrides) -> TrainConfig:
    settings = {"steps": 5, "batch_size": 4, "progress": False} | overrides
    return TrainConfig(**settings)


@pytest.mark.parametrize("task_name", list(REGISTRY))
def test_five_steps_on_every_task_give_finite_metrics(task_name: str) -> None:
    train, val = builtin_dataset(task_name, val_count=4)
    task = get_task(task_name)
    result = train_and_evaluate(_tiny_net(task_name, train), task, train, val, _quick())
    assert result.steps == 5 and len(result.losses) == 5
    assert task.primary_metric in result.metrics
    assert all(math.isfinite(value) for value in result.metrics.values())
    assert result.device == "cpu" and result.amp == "off"
    assert result.train_seconds > 0 and result.samples_per_second > 0


def test_same_seed_same_run_other_seed_other_run() -> None:
    train, val = builtin_dataset("denoise", val_count=2)
    task = get_task("denoise")
    first = train_and_evaluate(_tiny_net("denoise", train), task, train, val, _quick(seed=1))
    again = train_and_evaluate(_tiny_net("denoise", train), task, train, val, _quick(seed=1))
    other = train_and_evaluate(_tiny_net("denoise", train), task, train, val, _quick(seed=2))
    assert first.losses == again.losses and first.metrics == again.metrics
    assert first.losses != other.losses


def test_training_denoises_better_than_doing_nothing() -> None:
    train, val = builtin_dataset("denoise", sigma=25, val_count=4, eval_size=48)
    task = get_task("denoise")
    model = _tiny_net("denoise", train)
    predicts_no_noise = nn.Conv2d(1, 1, 1, bias=False)
    nn.init.zeros_(predicts_no_noise.weight)
    nothing = evaluate(predicts_no_noise, task, val)
    result = train_and_evaluate(model, task, train, val, _quick(steps=60, batch_size=8, lr=3e-3, schedule="constant"))
    assert nothing["psnr"] == pytest.approx(20.2, abs=0.3)  # noisy input at sigma 25: 20*log10(255/25)
    assert result.metrics["psnr"] > nothing["psnr"] + 1.0
    assert np.mean(result.losses[-10:]) < np.mean(result.losses[:10])


def test_seconds_budget_stops_training() -> None:
    train, val = builtin_dataset("segment", val_count=2)
    result = train_and_evaluate(
        _tiny_net("segment", train), get_task("segment"), train, val, _quick(steps=None, seconds=0.3)
    )
    assert 1 <= result.steps and result.train_seconds < 5.0


def test_nan_loss_raises_diverged_error() -> None:
    class Explodes(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x) * float("nan")

    train, val = builtin_dataset("denoise", val_count=2)
    with pytest.raises(DivergedError) as caught:
        train_and_evaluate(Explodes(), get_task("denoise"), train, val, _quick())
    assert caught.value.step == 1 and math.isnan(caught.value.loss)


def test_evaluate_handles_items_of_different_sizes_and_restores_train_mode(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for i, size in enumerate([(48, 64), (64, 48), (40, 40)]):
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8)).save(path)
    train, val = folder_dataset("denoise", tmp_path, val_root=tmp_path, multiple=8)
    model = _tiny_net("denoise", train).train()
    scores = evaluate(model, get_task("denoise"), val, _quick())
    assert math.isfinite(scores["psnr"]) and model.training


def test_config_errors_are_user_errors() -> None:
    with pytest.raises(UserError, match="neither steps nor seconds"):
        TrainConfig(steps=None, seconds=None)
    with pytest.raises(UserError, match="optimizer"):
        TrainConfig(optimizer="lbfgs")
    with pytest.raises(UserError, match="amp"):
        TrainConfig(amp="fp8")
    with pytest.raises(UserError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(UserError, match="needs a CUDA device"):
        resolve_amp("bf16", torch.device("cpu"))
    train, val = builtin_dataset("denoise", val_count=2, train_size=3)
    with pytest.raises(UserError, match="fewer than one batch"):
        train_and_evaluate(_tiny_net("denoise", train), get_task("denoise"), train, val, _quick())
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA is not available"):
            train_and_evaluate(_tiny_net("denoise", train), get_task("denoise"), train, val, _quick(device="cuda"))


def test_sgd_and_adamw_optimizers_train() -> None:
    train, val = builtin_dataset("depth", val_count=2)
    for optimizer in ("sgd", "adamw"):
        result = train_and_evaluate(
            _tiny_net("depth", train), get_task("depth"), train, val, _quick(optimizer=optimizer, lr=1e-3)
        )
        assert math.isfinite(result.metrics["rmse"])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("task_name", list(REGISTRY))
def test_cuda_mixed_precision_run(task_name: str) -> None:
    train, val = builtin_dataset(task_name, val_count=4)
    result = train_and_evaluate(
        _tiny_net(task_name, train), get_task(task_name), train, val, _quick(steps=20, batch_size=16)
    )
    assert result.device.startswith("cuda") and result.amp in ("bf16", "fp16")
    assert all(math.isfinite(value) for value in result.metrics.values())


def test_cosine_schedule_decays_the_learning_rate_to_zero_over_the_budget() -> None:
    from indexnas.tasks.train import SCHEDULES, _budget_fraction

    cosine = SCHEDULES["cosine"]
    assert cosine(0.0) == 1.0 and cosine(0.5) == pytest.approx(0.5) and cosine(1.0) == pytest.approx(0.0)
    assert SCHEDULES["constant"](0.9) == 1.0
    config = TrainConfig(steps=100, seconds=10.0)
    assert _budget_fraction(25, 5.0, config) == 0.5  # the larger of the two fractions: seconds here
    assert _budget_fraction(75, 5.0, config) == 0.75


def test_an_unknown_schedule_is_a_user_error() -> None:
    with pytest.raises(UserError, match="schedule"):
        TrainConfig(schedule="linear")


class _Mean(torch.utils.data.Dataset):
    """Constant images: item i is filled with the value i (so batch statistics are known exactly)."""

    def __init__(self, values: list[float], side: int) -> None:
        self.values, self.side = values, side

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image = torch.full((1, self.side, self.side), self.values[index])
        return {"noisy": image, "clean": image}


def test_batchnorm_statistics_are_recalibrated_on_the_recalibration_crops_after_training() -> None:
    train, val = builtin_dataset("denoise", patch=16, eval_size=16, val_count=4, whole_images=False)
    train.recalibration = _Mean([1.0, 3.0, 5.0, 7.0], side=24)  # mean 4, variance 5 over their pixels
    model = nn.Sequential(nn.BatchNorm2d(1), nn.Conv2d(1, 1, 3, padding=1))
    train_and_evaluate(model, get_task("denoise"), train, val, _quick(steps=2, bn_recalibration=4))
    norm = model[0]
    assert norm.running_mean.item() == pytest.approx(4.0)
    pixels = 4 * 24 * 24
    assert norm.running_var.item() == pytest.approx(5.0 * pixels / (pixels - 1), rel=1e-5)  # BN's unbiased estimate
    assert norm.momentum == 0.1  # restored after the exact average


def test_recalibration_can_be_switched_off_and_is_skipped_without_recalibration_crops() -> None:
    train, val = builtin_dataset("denoise", patch=16, eval_size=16, val_count=4, whole_images=False)
    train.recalibration = _Mean([100.0] * 4, side=24)
    model = nn.Sequential(nn.BatchNorm2d(1), nn.Conv2d(1, 1, 3, padding=1))
    train_and_evaluate(model, get_task("denoise"), train, val, _quick(steps=2, bn_recalibration=0))
    assert model[0].running_mean.item() < 1.0  # as trained on [0, 1] images, not the 100s
    del train.recalibration
    model = nn.Sequential(nn.BatchNorm2d(1), nn.Conv2d(1, 1, 3, padding=1))
    train_and_evaluate(model, get_task("denoise"), train, val, _quick(steps=2))
    assert model[0].running_mean.item() < 1.0


def test_the_builtin_denoiser_recalibrates_on_128_pixel_training_crops() -> None:
    train, _ = builtin_dataset("denoise")
    assert train.recalibration[0]["noisy"].shape == (1, 128, 128) and train[0]["noisy"].shape == (1, 40, 40)


class _InputSizes(nn.Module):
    """Records the shape of every training batch it sees (forward passes with gradients)."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []
        self.net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Conv2d(4, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            self.shapes.append(tuple(x.shape))
        return self.net(x)


def test_the_last_quarter_of_the_steps_trains_on_the_larger_crops_within_the_budget() -> None:
    train, val = builtin_dataset("denoise", patch=16, eval_size=16, val_count=4, whole_images=False,
                                 recalibration_size=24)
    model = _InputSizes()
    result = train_and_evaluate(model, get_task("denoise"), train, val, _quick(steps=8, final_phase=0.25))
    assert result.steps == 8 and result.final_steps == 2  # the final phase is part of the budget
    # 4 patches of 16x16 a step, then 2 crops of 24x24: about the same pixels (4 * 256 / 576 rounds to 2)
    assert model.shapes == [(4, 1, 16, 16)] * 6 + [(2, 1, 24, 24)] * 2


def test_the_final_phase_can_be_switched_off_and_needs_larger_crops() -> None:
    train, val = builtin_dataset("denoise", patch=16, eval_size=16, val_count=4, whole_images=False)
    model = _InputSizes()
    result = train_and_evaluate(model, get_task("denoise"), train, val, _quick(steps=4, final_phase=0.0))
    assert result.final_steps == 0 and model.shapes == [(4, 1, 16, 16)] * 4
    del train.recalibration
    model = _InputSizes()
    result = train_and_evaluate(model, get_task("denoise"), train, val, _quick(steps=4, final_batch_size=3))
    assert result.final_steps == 0 and model.shapes == [(4, 1, 16, 16)] * 4


def test_the_final_phase_batch_size_can_be_set() -> None:
    train, val = builtin_dataset("denoise", patch=16, eval_size=16, val_count=4, whole_images=False,
                                 recalibration_size=24)
    model = _InputSizes()
    train_and_evaluate(model, get_task("denoise"), train, val, _quick(steps=4, final_phase=0.5, final_batch_size=3))
    assert model.shapes == [(4, 1, 16, 16)] * 2 + [(3, 1, 24, 24)] * 2


def test_intermediate_scores_do_not_change_the_training_run() -> None:
    train, val = builtin_dataset("denoise", patch=16, eval_size=16, val_count=4, whole_images=False)
    results = []
    for eval_at in ((), (2, 4)):
        seed_everything(0)
        model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 1, 3, padding=1))
        results.append(train_and_evaluate(model, get_task("denoise"), train, val, _quick(steps=6, eval_at=eval_at)))
    plain, scored = results
    assert plain.losses == scored.losses and plain.metrics == scored.metrics
    assert sorted(scored.intermediate) == [2, 4] and scored.intermediate[4]["psnr"] != scored.intermediate[2]["psnr"]
    assert plain.intermediate == {}


def test_validation_parts_are_scored_separately_with_per_item_scores() -> None:
    train, val = builtin_dataset("denoise", patch=16, eval_size=32, val_count=6)
    assert list(val.parts) == ["crops", "whole"] and len(val) == 6 + 3
    model = _tiny_net("denoise", train)
    result = train_and_evaluate(model, get_task("denoise"), train, val, _quick(steps=2))
    assert {"psnr", "ssim", "whole_psnr", "whole_ssim"} == set(result.metrics)
    assert len(result.item_scores["crops"]) == 6 and len(result.item_scores["whole"]) == 3
    assert result.metrics["psnr"] == pytest.approx(np.mean(result.item_scores["crops"]))
    assert result.metrics["whole_psnr"] == pytest.approx(np.mean(result.item_scores["whole"]))
    assert evaluate(model, get_task("denoise"), val.parts["whole"])["psnr"] == pytest.approx(result.metrics["whole_psnr"])


def test_bad_recalibration_and_eval_at_are_user_errors() -> None:
    with pytest.raises(UserError, match="bn_recalibration"):
        TrainConfig(bn_recalibration=-1)
    with pytest.raises(UserError, match="eval_at"):
        TrainConfig(eval_at=(0,))
    for share in (1.0, -0.1, True, "0.25"):
        with pytest.raises(UserError, match="final_phase"):
            TrainConfig(final_phase=share)
    with pytest.raises(UserError, match="final_batch_size"):
        TrainConfig(final_batch_size=0)
