"""The paper's evaluation measures, per image (or as a confusion matrix) so that callers can aggregate exactly.

Denoising: PSNR and SSIM (Wang et al. 2004). Segmentation: confusion matrix and mIoU.
Matting: SAD, MSE, Gradient and Connectivity errors (Rhemann et al. 2009, as used for
Composition-1k) over the trimap's unknown region. Depth: RMSE, delta1 and MAE over valid pixels.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from indexnas.errors import UserError

IGNORE_INDEX = 255  # label value that segmentation losses and metrics skip

SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03
GRADIENT_SIGMA = 1.4
CONNECTIVITY_STEP, CONNECTIVITY_THETA = 0.1, 0.15
MATTING_SCALE = 1000.0  # SAD, Gradient and Connectivity are reported divided by 1000 (Composition-1k)
DELTA1_THRESHOLD = 1.25


def psnr(restored: torch.Tensor, clean: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB of each image in a (B, C, H, W) batch; identical images give +inf."""
    mse = (restored.double() - clean.double()).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(data_range**2 / mse)  # mse == 0 -> log10(inf) = inf


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM of each image in a (B, C, H, W) batch: 11x11 Gaussian window (sigma 1.5), K1=0.01, K2=0.03.

    Statistics are population (not sample) moments and only windows fully inside the image count,
    which matches skimage's `structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False)`; channels are averaged.
    """
    if min(x.shape[-2:]) < SSIM_WINDOW:
        raise UserError(
            f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {tuple(x.shape[-2:])}",
            f"evaluate on crops of {SSIM_WINDOW} pixels or more",
        )
    x, y = x.double(), y.double()
    channels = x.shape[1]
    offsets = torch.arange(SSIM_WINDOW, dtype=torch.float64, device=x.device) - SSIM_WINDOW // 2
    gauss = torch.exp(-(offsets**2) / (2 * SSIM_SIGMA**2))
    gauss = gauss / gauss.sum()
    rows = gauss.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)
    cols = gauss.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)

    def blur(image: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(image, rows, groups=channels), cols, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(1).mean(dim=1)


def confusion_matrix(predicted: torch.Tensor, target: torch.Tensor, num_classes: int) -> np.ndarray:
    """num_classes x num_classes counts, rows = true class, columns = predicted; IGNORE_INDEX pixels skipped."""
    keep = target != IGNORE_INDEX
    truth, guess = target[keep].long(), predicted[keep].long()
    if truth.numel() and (int(truth.min()) < 0 or int(truth.max()) >= num_classes):
        raise UserError(
            f"label values must be in 0..{num_classes - 1} (or {IGNORE_INDEX} to ignore); "
            f"found {int(truth.min())}..{int(truth.max())}",
            "give the model one output channel per class, or fix the label maps",
        )
    counts = torch.bincount(truth * num_classes + guess, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).cpu().numpy().astype(np.int64)


def class_iou(confusion: np.ndarray) -> np.ndarray:
    """IoU = TP / (TP + FP + FN) per class; NaN for a class absent from both truth and prediction."""
    true_positive = np.diag(confusion).astype(np.float64)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - true_positive
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, true_positive / union, np.nan)


def mean_iou(confusion: np.ndarray) -> float:
    """Mean IoU over the classes present (in truth or prediction) of an accumulated confusion matrix."""
    iou = class_iou(confusion)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


def sad(alpha: np.ndarray, truth: np.ndarray, region: np.ndarray) -> float:
    """Sum of absolute differences over `region`, divided by 1000 (alphas in [0, 1])."""
    return float(np.abs(alpha - truth)[region].sum() / MATTING_SCALE)


def mse(alpha: np.ndarray, truth: np.ndarray, region: np.ndarray) -> float:
    """Mean squared error over `region` (0 for an empty region)."""
    count = int(region.sum())
    return float(((alpha - truth) ** 2)[region].sum() / count) if count else 0.0


def gradient_error(alpha: np.ndarray, truth: np.ndarray, region: np.ndarray) -> float:
    """Sum over `region` of the squared difference of gradient magnitudes, divided by 1000.

    Gradients are first derivatives of a Gaussian (sigma 1.4) with filters normalised to unit L2
    norm and edge replication, as in the published matting evaluation; unlike that code the
    alphas are not min-max rescaled first (identical whenever an alpha spans 0..1).
    """
    difference = _gradient_magnitude(alpha) - _gradient_magnitude(truth)
    return float((difference**2)[region].sum() / MATTING_SCALE)


def connectivity_error(alpha: np.ndarray, truth: np.ndarray, region: np.ndarray) -> float:
    """Connectivity error (threshold step 0.1, theta 0.15, 4-connected components), divided by 1000.

    For each threshold t, pixels outside the largest 4-connected component of
    (alpha >= t) & (truth >= t) get level l = the previous threshold the first time they drop
    out (1 if they never do); phi = 1 - d * (d >= 0.15) with d = value - l, summed as |phi_a - phi_t|.
    """
    from skimage.measure import label

    thresholds = np.arange(0.0, 1.0 + CONNECTIVITY_STEP / 2, CONNECTIVITY_STEP)
    level = np.full(alpha.shape, -1.0)
    for previous, threshold in zip(thresholds[:-1], thresholds[1:], strict=True):
        both = (alpha >= threshold) & (truth >= threshold)
        components = label(both, connectivity=1)
        largest = np.zeros_like(both)
        if components.max() > 0:
            sizes = np.bincount(components.ravel())
            sizes[0] = 0
            largest = components == sizes.argmax()
        level[(level == -1) & ~largest] = previous
    level[level == -1] = 1.0
    d_alpha, d_truth = alpha - level, truth - level
    phi_alpha = 1.0 - d_alpha * (d_alpha >= CONNECTIVITY_THETA)
    phi_truth = 1.0 - d_truth * (d_truth >= CONNECTIVITY_THETA)
    return float(np.abs(phi_alpha - phi_truth)[region].sum() / MATTING_SCALE)


def _gradient_magnitude(image: np.ndarray) -> np.ndarray:
    """|grad| with unit-L2-norm first-derivative-of-Gaussian filters (sigma GRADIENT_SIGMA), edges replicated."""
    from scipy.ndimage import convolve

    epsilon = 1e-2
    half = math.ceil(GRADIENT_SIGMA * math.sqrt(-2.0 * math.log(math.sqrt(2 * math.pi) * GRADIENT_SIGMA * epsilon)))
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    gauss = np.exp(-(offsets**2) / (2 * GRADIENT_SIGMA**2)) / (math.sqrt(2 * math.pi) * GRADIENT_SIGMA)
    derivative = -offsets * gauss / GRADIENT_SIGMA**2
    kernel_x = np.outer(gauss, derivative)  # varies along columns: d/dx
    kernel_x /= np.sqrt((kernel_x**2).sum())
    image = image.astype(np.float64)
    grad_x = convolve(image, kernel_x, mode="nearest")
    grad_y = convolve(image, kernel_x.T, mode="nearest")
    return np.hypot(grad_x, grad_y)


def depth_errors(predicted: torch.Tensor, truth: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image RMSE, MAE and delta1 (share of max(d/g, g/d) < 1.25) over valid pixels (truth > 0, finite).

    Inputs are (B, 1, H, W); returns tensors of shape (B,) plus "valid" (B,) booleans: an image
    without valid pixels has NaN errors and valid False.
    """
    predicted, truth = predicted.double().flatten(1), truth.double().flatten(1)
    valid = torch.isfinite(truth) & (truth > 0)
    count = valid.sum(dim=1)
    safe_truth = torch.where(valid, truth, torch.ones_like(truth))
    error = torch.where(valid, predicted - safe_truth, torch.zeros_like(truth))
    positive = predicted.clamp_min(1e-6)  # a non-positive depth is never within the threshold
    ratio = torch.maximum(positive / safe_truth, safe_truth / positive)
    within = ((ratio < DELTA1_THRESHOLD) & valid).sum(dim=1)
    denominator = count.clamp_min(1).double()
    nan = torch.full_like(denominator, float("nan"))
    has = count > 0
    return {
        "rmse": torch.where(has, (error.pow(2).sum(dim=1) / denominator).sqrt(), nan),
        "mae": torch.where(has, error.abs().sum(dim=1) / denominator, nan),
        "delta1": torch.where(has, within.double() / denominator, nan),
        "valid": has,
    }
