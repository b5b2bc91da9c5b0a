"""The parameters IndexNet adds, by the formulas of docs/indexnet-spec.md: the one place the tests take them from.

At rate k a region has P = k*k positions; K is the first conv's kernel: k, or k + 2 * (k // 2) with weak
context (``-c``; 4 at k = 2). BN counts 2 per channel (weight and bias); no convolution has a bias.
"""

from __future__ import annotations

from indexnas.spec import IndexSpec


def stage_params(spec: IndexSpec | str, c: int, rate: int = 2) -> int:
    """Parameters of one stage's index network at C = ``c`` channels and rate ``rate``."""
    spec = IndexSpec.parse(spec)
    k2, p = spec.first_conv(rate)[0] ** 2, rate * rate
    linear = {
        "holistic": p * k2 * c,  # Conv(C->P)
        "m2o": p * k2 * c * c,  # P x Conv(C->C)
        "o2o-unshared": p * k2 * c,  # P x Conv(C->C, groups=C)
        "o2o-shared": p * k2,  # P x Conv(1->1)
        "o2o-modelwise": p * k2,
    }
    nonlinear = {  # first conv to twice the width, BN, ReLU6, 1x1 conv back
        "holistic": 2 * k2 * c * c + 4 * c + 2 * c * p,
        "m2o": p * (2 * k2 * c * c + 4 * c + 2 * c * c),
        "o2o-unshared": p * (2 * k2 * c + 4 * c + 2 * c),
        "o2o-shared": p * (2 * k2 + 4 + 2),
        "o2o-modelwise": p * (2 * k2 + 4 + 2),
    }
    return (nonlinear if spec.nonlinear else linear)[spec.family]


def model_delta(spec: IndexSpec | str, channels: tuple[int, ...]) -> int:
    """Parameters a uniform choice adds to a host whose pairs pool ``channels``: one module per stage, or
    one for the whole model (modelwise)."""
    spec = IndexSpec.parse(spec)
    if spec.modelwise:
        return stage_params(spec, 1)
    return sum(stage_params(spec, c) for c in channels)
