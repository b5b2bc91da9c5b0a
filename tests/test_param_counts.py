"""Parameter counts equal the spec's per-stage formulas (indexnet-spec.md) for any channel count."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexnas.indexnet import build_index_module, count_parameters
from indexnas.spec import IndexSpec, all_choices


def spec_formula(spec: IndexSpec, c: int) -> int:
    """The spec's formulas, transcribed: K = 2, or 4 with weak context; BN counts 2 per channel."""
    k2 = spec.kernel_size**2
    linear = {
        "holistic": 4 * k2 * c,
        "m2o": 4 * k2 * c * c,
        "o2o-unshared": 4 * k2 * c,
        "o2o-shared": 4 * k2,
        "o2o-modelwise": 4 * k2,
    }
    nonlinear = {
        "holistic": 2 * k2 * c * c + 4 * c + 8 * c,
        "m2o": 4 * (2 * k2 * c * c + 4 * c + 2 * c * c),
        "o2o-unshared": 4 * (2 * k2 * c + 4 * c + 2 * c),
        "o2o-shared": 4 * (2 * k2 + 4 + 2),
        "o2o-modelwise": 4 * (2 * k2 + 4 + 2),
    }
    return (nonlinear if spec.nonlinear else linear)[spec.family]


LEARNED = [s for s in all_choices() if s.learned]


@settings(max_examples=25, deadline=None)
@given(spec=st.sampled_from(LEARNED), channels=st.integers(min_value=1, max_value=96))
def test_every_variant_matches_its_formula_for_random_channel_counts(spec, channels):
    assert count_parameters(build_index_module(spec, channels)) == spec_formula(spec, channels)


@pytest.mark.parametrize(
    ("spec", "channels", "paper_delta"),
    [
        # SegNet, pooled channels 64,128,256,512,512 (Table 6), summed over the 5 stages
        ("holistic", (64, 128, 256, 512, 512), 23_552),  # +23.55K
        ("o2o-shared-nl-c", (64, 128, 256, 512, 512), 760),
        # DnCNN-SegNet 64,128,256 (Table 5)
        ("o2o-unshared-nl", (64, 128, 256), 25_088),  # +25.1K
        ("o2o-shared-nl", (64, 128, 256), 168),
        # FastDepth-P 32,128,256,512,1024 (Table 7)
        ("holistic", (32, 128, 256, 512, 1024), 31_232),  # +31.23K
    ],
)
def test_stage_sums_reproduce_the_papers_exact_deltas(spec, channels, paper_delta):
    assert sum(count_parameters(build_index_module(spec, c)) for c in channels) == paper_delta


@pytest.mark.parametrize(
    ("spec", "rounded", "scale"),
    [("holistic-nl", 4.90, 1e6), ("holistic-nl-c", 19.55, 1e6), ("m2o", 9.76, 1e6), ("m2o-nl", 24.44, 1e6),
     ("m2o-nl-c", 83.02, 1e6), ("o2o-unshared-nl-c", 0.22, 1e6)],
)
def test_segnet_deltas_round_to_the_papers_table_6(spec, rounded, scale):
    total = sum(count_parameters(build_index_module(spec, c)) for c in (64, 128, 256, 512, 512))
    assert round(total / scale, 2) == rounded
