"""The parameters IndexNet adds, by the formulas of docs/indexnet-spec.md: the one place the tests take them from.

K = 2, or 4 with weak context (``-c``); BN counts 2 per channel (weight and bias); no convolution has a bias.
"""

from __future__ import annotations

from indexnas.spec import IndexSpec


def stage_params(spec: IndexSpec | str, c: int) -> int:
    """Parameters of one stage's index network at C = ``c`` channels."""
    spec = IndexSpec.parse(spec)
    k2 = spec.kernel_size**2
    linear = {
        "holistic": 4 * k2 * c,  # Conv(C->4)
        "m2o": 4 * k2 * c * c,  # 4 x Conv(C->C)
        "o2o-unshared": 4 * k2 * c,  # 4 x Conv(C->C, groups=C)
        "o2o-shared": 4 * k2,  # 4 x Conv(1->1)
        "o2o-modelwise": 4 * k2,
    }
    nonlinear = {  # first conv to twice the width, BN, ReLU6, 1x1 conv back
        "holistic": 2 * k2 * c * c + 4 * c + 8 * c,
        "m2o": 4 * (2 * k2 * c * c + 4 * c + 2 * c * c),
        "o2o-unshared": 4 * (2 * k2 * c + 4 * c + 2 * c),
        "o2o-shared": 4 * (2 * k2 + 4 + 2),
        "o2o-modelwise": 4 * (2 * k2 + 4 + 2),
    }
    return (nonlinear if spec.nonlinear else linear)[spec.family]


def model_delta(spec: IndexSpec | str, channels: tuple[int, ...]) -> int:
    """Parameters a uniform choice adds to a host whose pairs pool ``channels``: one module per stage, or
    one for the whole model (modelwise)."""
    spec = IndexSpec.parse(spec)
    if spec.modelwise:
        return stage_params(spec, 1)
    return sum(stage_params(spec, c) for c in channels)
