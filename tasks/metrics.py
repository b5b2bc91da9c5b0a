"""The paper's evaluation measures, per image (or as a confusion matrix) so that callers can aggregate exactly.

Denoising: PSNR and SSIM (Wang et al. 2004). Segmentation: confusion matrix and mIoU.
Matting: SAD, MSE, Gradient and Connectivity errors (Rhemann et al. 2009) over the trimap's unknown
region, computed as the Deep Image Matting benchmark's MATLAB evaluation scripts compute them (each
function names the script it follows), which the Index Networks paper reports for Composition-1k.
Depth: RMSE, delta1 and MAE over valid pixels.
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
    """Sum of absolute differences over `region`, divided by 1000 (alphas in [0, 1]).

    Follows the Deep Image Matting benchmark's `compute_sad_loss.m` (|pred - target| / 255 summed over
    trimap == 128), with the division by 1000 its results are reported in.
    """
    return float(np.abs(alpha - truth)[region].sum() / MATTING_SCALE)


def mse(alpha: np.ndarray, truth: np.ndarray, region: np.ndarray) -> float:
    """Mean squared error over `region` (0 for an empty region).

    Follows `compute_mse_loss.m`: squared differences of alphas in [0, 1] summed over trimap == 128 and
    divided by that region's pixel count (not scaled by 1000).
    """
    count = int(region.sum())
    return float(((alpha - truth) ** 2)[region].sum() / count) if count else 0.0


def gradient_error(alpha: np.ndarray, truth: np.ndarray, region: np.ndarray) -> float:
    """Sum over `region` of the squared difference of gradient magnitudes, divided by 1000.

    Follows `compute_gradient_loss.m`: both alphas are first min-max rescaled to 0..1 (MATLAB's
    `mat2gray`, see `_mat2gray`), then differentiated with `gaussgradient.m`'s first-derivative-of-Gaussian
    filters (sigma 1.4, unit L2 norm, replicated edges; `_gradient_magnitude`).
    """
    difference = _gradient_magnitude(_mat2gray(alpha)) - _gradient_magnitude(_mat2gray(truth))
    return float((difference**2)[region].sum() / MATTING_SCALE)


def connectivity_thresholds(step: float = CONNECTIVITY_STEP) -> np.ndarray:
    """0, step, 2 step, ..., 1 as exact decimals (k / n): 0.6 is the double nearest 0.6, as MATLAB's
    `0:0.1:1` gives it, not np.arange's 0.6000000000000001 that an alpha of exactly 153/255 would fail."""
    count = round(1.0 / step)
    if not math.isclose(count * step, 1.0):
        raise UserError(f"the connectivity threshold step must divide 1, got {step}", "use e.g. step 0.1")
    return np.arange(count + 1) / count


def connectivity_error(alpha: np.ndarray, truth: np.ndarray, region: np.ndarray) -> float:
    """Connectivity error (threshold step 0.1, theta 0.15, 4-connected components), divided by 1000.

    Follows `compute_connectivity_error.m`: for each threshold t after 0, pixels outside the largest
    4-connected component of (alpha >= t) & (truth >= t) get level l = the previous threshold the first
    time they drop out; a threshold whose overlap is empty is skipped (MATLAB's `continue`), so pixels
    still unassigned then end at level 1. phi = 1 - d * (d >= 0.15) with d = value - l, and the error
    is the sum of |phi_alpha - phi_truth| over `region`. Thresholds are exact decimals
    (`connectivity_thresholds`); alphas are compared in their own precision (MATLAB: single(x)/255).
    """
    from skimage.measure import label

    thresholds = connectivity_thresholds()
    level = np.full(alpha.shape, -1.0)
    for previous, threshold in zip(thresholds[:-1], thresholds[1:], strict=True):
        both = (alpha >= threshold) & (truth >= threshold)
        components = label(both, connectivity=1)
        if components.max() == 0:
            continue  # empty overlap: MATLAB skips the step, so no pixel gets this level
        largest = components == _largest_component(components)
        level[(level == -1) & ~largest] = previous
    level[level == -1] = 1.0
    d_alpha, d_truth = alpha - level, truth - level
    phi_alpha = 1.0 - d_alpha * (d_alpha >= CONNECTIVITY_THETA)
    phi_truth = 1.0 - d_truth * (d_truth >= CONNECTIVITY_THETA)
    return float(np.abs(phi_alpha - phi_truth)[region].sum() / MATTING_SCALE)


def _largest_component(components: np.ndarray) -> int:
    """The label of the largest component; among equal sizes the first in MATLAB's column-major scan
    (`bwconncomp` numbers components in that order and `max` returns the first maximum)."""
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    tied = np.flatnonzero(sizes == sizes.max())
    if len(tied) == 1:
        return int(tied[0])
    column_major = components.T.ravel()
    first_seen = [int(np.argmax(column_major == label)) for label in tied]
    return int(tied[int(np.argmin(first_seen))])


def _mat2gray(image: np.ndarray) -> np.ndarray:
    """MATLAB's `mat2gray(A)`: (A - min) / (max - min); a constant image is only clipped to 0..1."""
    image = image.astype(np.float64)
    low, high = float(image.min()), float(image.max())
    if high == low:
        return np.clip(image, 0.0, 1.0)
    return (image - low) / (high - low)


def _gradient_magnitude(image: np.ndarray) -> np.ndarray:
    """|grad| as `gaussgradient.m` (sigma GRADIENT_SIGMA): unit-L2-norm first-derivative-of-Gaussian
    filters of half-size ceil(sigma sqrt(-2 log(sqrt(2 pi) sigma 0.01))), convolution, edges replicated."""
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
