"""The matting errors as the Deep Image Matting benchmark's MATLAB scripts compute them, one rule per test,
on small images whose answer is worked out by hand (or, for Gradient, from the 1-D Gaussian sums).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from indexnas.tasks import metrics

SIGMA = 1.4
HALF = 4  # ceil(1.4 * sqrt(-2 log(sqrt(2 pi) 1.4 0.01))) = ceil(3.62)


def _everywhere(shape: tuple[int, int]) -> np.ndarray:
    return np.ones(shape, bool)


# ---------------------------------------------------------------------------------------------------
# SAD and MSE (compute_sad_loss.m, compute_mse_loss.m)
# ---------------------------------------------------------------------------------------------------

def test_sad_is_divided_by_1000_and_mse_is_a_mean_over_the_unknown_region() -> None:
    truth = np.zeros((10, 10))
    predicted = np.full((10, 10), 0.5)
    unknown = np.zeros((10, 10), bool)
    unknown[:4] = True  # 40 pixels, each |difference| 0.5; the other 60 do not count
    assert metrics.sad(predicted, truth, unknown) == pytest.approx(40 * 0.5 / 1000)
    assert metrics.mse(predicted, truth, unknown) == pytest.approx(0.25)
    assert metrics.mse(predicted, truth, np.zeros((10, 10), bool)) == 0.0


# ---------------------------------------------------------------------------------------------------
# Gradient (compute_gradient_loss.m with gaussgradient.m)
# ---------------------------------------------------------------------------------------------------

def _step(shape: tuple[int, int], column: int, low: float, high: float) -> np.ndarray:
    image = np.full(shape, low)
    image[:, column:] = high
    return image


def test_gradient_of_a_step_edge_is_the_1d_gaussian_derivative_sum() -> None:
    """Rows all equal: d/dy is 0 and d/dx at column j is (sum of g) (sum of dg(u) over u <= j - edge) / norm,
    where hx(i, j) = g(i) dg(j) is normalised to unit L2 norm; a constant prediction has no gradient."""
    u = np.arange(-HALF, HALF + 1)
    g = np.exp(-(u**2) / (2 * SIGMA**2)) / (SIGMA * math.sqrt(2 * math.pi))
    dg = -u * g / SIGMA**2
    norm = math.sqrt((g**2).sum() * (dg**2).sum())
    edge, rows, cols = 10, 6, 20
    magnitude = [abs(g.sum() * dg[u <= j - edge].sum() / norm) for j in range(cols)]
    expected = rows * sum(m**2 for m in magnitude) / 1000
    truth = _step((rows, cols), edge, 0.0, 1.0)
    assert metrics.gradient_error(np.zeros((rows, cols)), truth, _everywhere(truth.shape)) == pytest.approx(expected)
    assert expected == pytest.approx(0.11754, abs=1e-5)  # 6 rows x 19.59 / 1000


def test_gradient_rescales_both_alphas_to_0_1_first() -> None:
    """mat2gray: a prediction that does not span 0..1 and a semi-transparent object are compared after
    min-max rescaling, so the same edges at other levels cost nothing."""
    truth = _step((12, 24), 12, 0.0, 1.0)
    region = _everywhere(truth.shape)
    assert metrics.gradient_error(_step((12, 24), 12, 0.2, 0.7), truth, region) == pytest.approx(0.0, abs=1e-15)
    semi_truth = np.zeros((16, 16))
    semi_truth[4:12, 4:12] = 0.4  # a semi-transparent object
    semi_prediction = np.where(semi_truth > 0, 0.25, 0.05)
    assert metrics.gradient_error(semi_prediction, semi_truth, _everywhere((16, 16))) == pytest.approx(0.0, abs=1e-15)
    # without the rescaling these would differ: the step from 0.2 to 0.7 is half as steep as 0 to 1
    half = metrics._gradient_magnitude(_step((12, 24), 12, 0.2, 0.7))
    assert np.abs(half - 0.5 * metrics._gradient_magnitude(truth)).max() < 1e-12


def test_gradient_of_a_constant_alpha_is_zero_and_rescaling_leaves_it_finite() -> None:
    flat = np.full((8, 8), 0.3)
    assert np.array_equal(metrics._mat2gray(flat), flat)
    assert metrics.gradient_error(flat, flat, _everywhere(flat.shape)) == 0.0


# ---------------------------------------------------------------------------------------------------
# Connectivity (compute_connectivity_error.m)
# ---------------------------------------------------------------------------------------------------

def test_connectivity_thresholds_are_exact_decimals() -> None:
    thresholds = metrics.connectivity_thresholds()
    assert thresholds.tolist() == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    assert 153 / 255 >= thresholds[6]  # np.arange(0, 1.05, 0.1)[6] is 0.6000000000000001: this would fail
    assert np.float32(153) / np.float32(255) >= thresholds[6]


def test_an_empty_overlap_skips_the_threshold_so_pixels_end_at_level_1() -> None:
    """Truth 0.55 and prediction 0.85 on the same 2x2 object: the overlap is the object up to t = 0.5 and
    empty from 0.6, so the object keeps level 1 and both phi are 1 (error 0). Giving those pixels the
    previous threshold (0.5) instead would cost 4 x |(1 - 0.35) - 1| = 1.4 / 1000."""
    truth, predicted = np.zeros((4, 4)), np.zeros((4, 4))
    truth[1:3, 1:3], predicted[1:3, 1:3] = 0.55, 0.85
    assert metrics.connectivity_error(predicted, truth, _everywhere((4, 4))) == 0.0


def test_an_alpha_of_exactly_153_over_255_passes_the_0_6_threshold() -> None:
    """A 3x3 opaque block A with a 3-pixel column B beside it (truth 153/255, prediction 0.9): B is in the
    overlap at t = 0.6 and drops out at 0.7, so its level is 0.6: phi_truth = 1, phi_pred = 1 - 0.3.
    Error 3 x 0.3 / 1000; with a threshold of 0.6000000000000001 B would drop at 0.6 (level 0.5, 0.4 each)."""
    for dtype in (np.float64, np.float32):
        truth, predicted = np.zeros((5, 6), dtype), np.zeros((5, 6), dtype)
        truth[1:4, 1:4] = predicted[1:4, 1:4] = 1.0
        truth[1:4, 4] = dtype(153) / dtype(255)
        predicted[1:4, 4] = 0.9
        assert metrics.connectivity_error(predicted, truth, _everywhere((5, 6))) == pytest.approx(3 * 0.3 / 1000)


def test_connectivity_is_4_connected() -> None:
    """A pixel touching the opaque 2x2 block only by a corner is its own component from t = 0.1 (level 0):
    truth 1 gives phi 0, the prediction's 0.55 gives phi 0.45, error 0.45. Joined by 8-connectivity it
    would stay until t = 0.6 (level 0.5; phi 0.5 and 1, error 0.5)."""
    truth = np.zeros((5, 5))
    truth[1:3, 1:3] = truth[3, 3] = 1.0
    predicted = truth.copy()
    predicted[3, 3] = 0.55
    assert metrics.connectivity_error(predicted, truth, _everywhere((5, 5))) == pytest.approx(0.45 / 1000)


def test_connectivity_island_and_theta() -> None:
    """An island the truth lacks drops out at t = 0.1 (level 0): at 0.9 it costs 0.9 a pixel; below theta
    = 0.15 the difference is ignored (SAD still sees it); only the unknown region counts."""
    truth = np.zeros((20, 20))
    truth[5:15, 5:12] = 1.0
    island = truth.copy()
    island[5:15, 15:17] = 0.9  # 20 pixels
    region = _everywhere(truth.shape)
    assert metrics.connectivity_error(truth, truth, region) == 0.0
    assert metrics.connectivity_error(island, truth, region) == pytest.approx(0.9 * 20 / 1000)
    faint = truth.copy()
    faint[5:15, 15:17] = 0.1
    assert metrics.connectivity_error(faint, truth, region) == 0.0
    assert metrics.sad(faint, truth, region) == pytest.approx(0.1 * 20 / 1000)
    half = region.copy()
    half[:10] = False  # 10 of the island's 20 pixels
    assert metrics.connectivity_error(island, truth, half) == pytest.approx(0.9 * 10 / 1000)


def test_of_equal_largest_components_the_first_in_column_major_order_is_kept() -> None:
    """Two 2-pixel components (truth 1, prediction 0.5): MATLAB's bwconncomp numbers them column by column,
    so the left one (which a row-major scan meets second) is the largest and keeps level 1 (the overlap
    is empty from t = 0.6); the right one drops at t = 0.1 (level 0): phi 0 vs 0.5, 0.5 a pixel."""
    truth = np.zeros((4, 5))
    truth[2:4, 0] = 1.0  # left, lower rows
    truth[0, 3:5] = 1.0  # right, top row
    predicted = np.where(truth > 0, 0.5, 0.0)
    left = np.zeros(truth.shape, bool)
    left[:, :2] = True
    assert metrics.connectivity_error(predicted, truth, left) == 0.0
    assert metrics.connectivity_error(predicted, truth, ~left) == pytest.approx(2 * 0.5 / 1000)
