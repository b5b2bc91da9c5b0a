"""Tasks and metrics: the paper's losses and measures, checked against definitions and reference code."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from indexnas.errors import UserError
from indexnas.tasks import metrics
from indexnas.tasks.definitions import MattingTask
from indexnas.tasks.registry import get_task


def _grey_pair(seed: int = 0, noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    clean = data.camera()[100:180, 60:170].astype(np.float64) / 255
    noisy = np.clip(clean + np.random.default_rng(seed).normal(0, noise, clean.shape), 0, 1)
    return clean, noisy


def _nchw(image: np.ndarray) -> torch.Tensor:
    tensor = torch.from_numpy(image)
    return tensor[None, None] if tensor.dim() == 2 else tensor.permute(2, 0, 1)[None]


# ---------------------------------------------------------------- denoising


def test_psnr_known_values_and_identity() -> None:
    clean = torch.zeros(2, 1, 8, 8)
    restored = clean.clone()
    restored[0] += 0.1  # mse 0.01 -> 20 dB
    psnr = metrics.psnr(restored, clean)
    assert psnr[0].item() == pytest.approx(20.0)
    assert math.isinf(psnr[1].item()) and psnr[1].item() > 0  # identical images: +inf, not an error
    assert metrics.psnr(restored * 255, clean * 255, data_range=255.0)[0].item() == pytest.approx(20.0)
    clean_np, noisy_np = _grey_pair()
    ours = metrics.psnr(_nchw(noisy_np), _nchw(clean_np)).item()
    assert ours == pytest.approx(peak_signal_noise_ratio(clean_np, noisy_np, data_range=1.0), abs=1e-9)


@pytest.mark.parametrize("noise", [0.02, 0.1, 0.3])
def test_ssim_matches_skimage_grey(noise: float) -> None:
    clean, noisy = _grey_pair(noise=noise)
    reference = structural_similarity(
        clean, noisy, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert metrics.ssim(_nchw(noisy), _nchw(clean)).item() == pytest.approx(reference, abs=1e-3)


def test_ssim_matches_skimage_colour_and_is_one_for_identical_images() -> None:
    clean = data.astronaut()[:70, 30:120].astype(np.float64) / 255
    noisy = np.clip(clean + np.random.default_rng(1).normal(0, 0.15, clean.shape), 0, 1)
    reference = structural_similarity(
        clean, noisy, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, channel_axis=2
    )
    assert metrics.ssim(_nchw(noisy), _nchw(clean)).item() == pytest.approx(reference, abs=1e-3)
    assert metrics.ssim(_nchw(clean), _nchw(clean)).item() == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(UserError, match="11x11"):
        metrics.ssim(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))


def test_denoise_is_residual_learning() -> None:
    task = get_task("denoise")
    clean_np, noisy_np = _grey_pair()
    batch = {"noisy": _nchw(noisy_np).float(), "clean": _nchw(clean_np).float()}
    perfect_noise = batch["noisy"] - batch["clean"]
    assert task.loss(perfect_noise, batch).item() == pytest.approx(0.0, abs=1e-12)
    assert task.metrics(perfect_noise, batch)["psnr"] > 100  # exact up to float32 rounding
    do_nothing = task.metrics(torch.zeros_like(perfect_noise), batch)  # restored = noisy
    assert do_nothing["psnr"] == pytest.approx(peak_signal_noise_ratio(clean_np, noisy_np, data_range=1.0), abs=1e-4)
    assert task.loss(torch.zeros_like(perfect_noise), batch).item() == pytest.approx(
        float((perfect_noise**2).mean()), rel=1e-6
    )


def test_denoise_aggregate_averages_per_image() -> None:
    task = get_task("denoise")
    clean = torch.zeros(1, 1, 16, 16)
    batch_a = {"noisy": clean + 0.1, "clean": clean}  # 20 dB
    batch_b = {"noisy": torch.cat([clean + 0.01, clean + 0.01]), "clean": torch.cat([clean, clean])}  # 40 dB x2
    zero = torch.zeros(1, 1, 16, 16)
    stats = [task.statistics(zero, batch_a), task.statistics(torch.cat([zero, zero]), batch_b)]
    assert task.aggregate(stats)["psnr"] == pytest.approx((20 + 40 + 40) / 3)


# ---------------------------------------------------------------- segmentation


def test_miou_on_a_hand_made_confusion_matrix() -> None:
    confusion = np.array([[3, 1, 0], [2, 4, 0], [0, 0, 0]])  # class 2 never occurs: left out
    iou = metrics.class_iou(confusion)
    assert iou[0] == pytest.approx(3 / 6) and iou[1] == pytest.approx(4 / 7) and np.isnan(iou[2])
    assert metrics.mean_iou(confusion) == pytest.approx((3 / 6 + 4 / 7) / 2)


def test_confusion_matrix_counts_and_ignores_255() -> None:
    target = torch.tensor([[0, 0, 1, 1, 255]])
    predicted = torch.tensor([[0, 1, 1, 1, 0]])
    expected = np.array([[1, 1], [0, 2]])
    np.testing.assert_array_equal(metrics.confusion_matrix(predicted, target, 2), expected)


def test_segment_miou_is_accumulated_over_batches_not_averaged() -> None:
    task = get_task("segment")

    def logits(classes: list[int]) -> torch.Tensor:
        return torch.nn.functional.one_hot(torch.tensor([classes]), 2).permute(0, 2, 1)[..., None].float()

    def batch(labels: list[int]) -> dict[str, torch.Tensor]:
        return {"label": torch.tensor([labels])[..., None]}

    # batch 1: 9 pixels of class 0 right, 1 pixel class 1 predicted as 0; batch 2: one class-1 pixel right
    first = (logits([0] * 10), batch([0] * 9 + [1]))
    second = (logits([1]), batch([1]))
    per_batch = [task.metrics(*first)["miou"], task.metrics(*second)["miou"]]
    exact = task.aggregate([task.statistics(*first), task.statistics(*second)])["miou"]
    assert exact == pytest.approx((9 / 10 + 1 / 2) / 2)
    assert exact != pytest.approx(sum(per_batch) / 2)


def test_segment_checks_the_number_of_classes() -> None:
    task = get_task("segment")
    batch = {"image": torch.zeros(1, 3, 4, 4), "label": torch.full((1, 4, 4), 5)}
    with pytest.raises(UserError, match="labels go up to class 5 but the model outputs 3"):
        task.loss(torch.zeros(1, 3, 4, 4), batch)
    with pytest.raises(UserError, match="expected a tensor of shape"):
        task.loss(torch.zeros(1, 6, 2, 2), batch)
    batch["label"][0, 0, 0] = 255  # ignored pixels never count
    batch["label"][batch["label"] == 5] = 2
    assert torch.isfinite(task.loss(torch.zeros(1, 3, 4, 4), batch))


# ---------------------------------------------------------------- matting


def _matting_batch() -> dict[str, torch.Tensor]:
    alpha = torch.zeros(1, 1, 24, 24)
    alpha[..., 8:16, 8:16] = 1.0
    alpha[..., 7, 8:16] = 0.5
    trimap = torch.zeros_like(alpha)
    trimap[..., 5:19, 5:19] = 0.5
    trimap[..., 10:14, 10:14] = 1.0
    fg = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    bg = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(1))
    image = alpha * fg + (1 - alpha) * bg
    return {"image": image, "trimap": trimap, "alpha": alpha, "fg": fg, "bg": bg}


def test_matting_input_is_rgb_plus_trimap() -> None:
    batch = _matting_batch()
    inputs = get_task("matting").model_inputs(batch)
    assert inputs.shape == (1, 4, 24, 24) and torch.equal(inputs[:, 3:], batch["trimap"])


def test_matting_loss_is_zero_for_the_true_alpha_and_counts_only_the_unknown_region() -> None:
    task = MattingTask(alpha_from="clamp")
    batch = _matting_batch()
    assert task.loss(batch["alpha"], batch).item() == pytest.approx(1e-6, abs=1e-7)  # sqrt(0 + eps^2)
    wrong_outside = batch["alpha"].clone()
    wrong_outside[batch["trimap"] != 0.5] = 0.3
    assert task.loss(wrong_outside, batch).item() == pytest.approx(1e-6, abs=1e-7)
    wrong_inside = batch["alpha"].clone()
    wrong_inside[batch["trimap"] == 0.5] = 1 - wrong_inside[batch["trimap"] == 0.5]
    assert task.loss(wrong_inside, batch).item() > 0.1
    logits = torch.zeros(1, 1, 24, 24, requires_grad=True)  # sigmoid form: gradient flows everywhere
    get_task("matting").loss(logits, batch).backward()
    assert logits.grad[batch["trimap"] == 0.5].abs().sum() > 0
    assert logits.grad[batch["trimap"] != 0.5].abs().sum() == 0


def test_sad_and_mse_known_values() -> None:
    truth = np.zeros((100, 100))
    predicted = np.full((100, 100), 0.5)
    region = np.zeros((100, 100), bool)
    region[:20] = True  # 2000 pixels, |difference| 0.5 each
    assert metrics.sad(predicted, truth, region) == pytest.approx(1.0)  # 1000 / 1000
    assert metrics.mse(predicted, truth, region) == pytest.approx(0.25)


def test_gradient_error_sees_edges_not_offsets() -> None:
    truth = np.zeros((40, 40))
    truth[:, 20:] = 1.0
    region = np.ones_like(truth, bool)
    assert metrics.gradient_error(truth, truth, region) == 0.0
    assert metrics.gradient_error(truth * 0.5 + 0.25, truth * 0.5 + 0.25 + 0.1, region) == pytest.approx(0.0, abs=1e-12)
    blurred = truth.copy()
    blurred[:, 18:22] = np.linspace(0.2, 0.8, 4)
    assert metrics.gradient_error(blurred, truth, region) > 0.0


def test_connectivity_error_known_values() -> None:
    truth = np.zeros((40, 40))
    truth[10:30, 10:30] = 1.0
    region = np.ones_like(truth, bool)
    assert metrics.connectivity_error(truth, truth, region) == 0.0
    island = truth.copy()
    island[10:30, 34:37] = 0.9  # 60 pixels not connected to the object: level 0, phi 0.1 vs 1
    assert metrics.connectivity_error(island, truth, region) == pytest.approx(0.9 * 60 / 1000)
    faint = truth.copy()
    faint[10:30, 34:37] = 0.1  # below theta = 0.15: connectivity ignores it, SAD does not
    assert metrics.connectivity_error(faint, truth, region) == 0.0
    assert metrics.sad(faint, truth, region) == pytest.approx(0.1 * 60 / 1000)


def test_matting_metrics_use_the_trimap_for_known_regions() -> None:
    task = MattingTask(alpha_from="clamp")
    batch = _matting_batch()
    output = batch["alpha"].clone()
    output[batch["trimap"] != 0.5] = 0.7  # wrong, but only where the trimap already knows the answer
    scores = task.metrics(output, batch)
    assert scores == {"sad": 0.0, "mse": 0.0, "grad": 0.0, "conn": 0.0}


# ---------------------------------------------------------------- depth


def test_depth_metrics_known_values_and_invalid_pixels() -> None:
    truth = torch.full((1, 1, 4, 4), 2.0)
    truth[..., 0, :] = 0.0  # invalid row
    predicted = torch.full((1, 1, 4, 4), 2.0)
    predicted[..., 1, :] = 3.0  # 4 of 12 valid pixels off by 1 m, ratio 1.5
    predicted[..., 0, :] = 100.0  # garbage where there is no ground truth: ignored
    scores = get_task("depth").metrics(predicted, {"depth": truth})
    assert scores["rmse"] == pytest.approx(math.sqrt(4 / 12))
    assert scores["mae"] == pytest.approx(4 / 12)
    assert scores["delta1"] == pytest.approx(8 / 12)
    assert get_task("depth").loss(predicted, {"depth": truth}).item() == pytest.approx(4 / 12)


def test_depth_delta1_threshold_and_negative_predictions() -> None:
    truth = torch.full((3, 1, 2, 2), 2.0)
    predicted = torch.stack([torch.full((1, 2, 2), v) for v in (2.0 * 1.24, 2.0 / 1.26, -2.0)])
    delta = metrics.depth_errors(predicted, truth)["delta1"]
    assert delta.tolist() == [1.0, 0.0, 0.0]


def test_depth_aggregate_averages_per_image_and_skips_images_without_ground_truth() -> None:
    task = get_task("depth")
    truth = torch.ones(3, 1, 2, 2)
    truth[2] = 0.0
    predicted = torch.ones(3, 1, 2, 2)
    predicted[1] = 3.0
    assert task.metrics(predicted, {"depth": truth})["rmse"] == pytest.approx((0.0 + 2.0) / 2)
