"""Parameter counts equal the per-stage formulas of docs/indexnet-spec.md (tests/index_params.py) for any
channel count and rate, and their stage sums (rate 2) the paper's Delta column."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexnas.cost import count_parameters
from indexnas.indexnet import build_index_module
from indexnas.spec import all_choices
from index_params import stage_params


LEARNED = [s for s in all_choices() if s.learned]


@settings(max_examples=25, deadline=None)
@given(spec=st.sampled_from(LEARNED), channels=st.integers(min_value=1, max_value=96))
def test_every_variant_matches_its_formula_for_random_channel_counts(spec, channels):
    assert count_parameters(build_index_module(spec, channels)) == stage_params(spec, channels)


@settings(max_examples=25, deadline=None)
@given(spec=st.sampled_from(LEARNED), channels=st.integers(min_value=1, max_value=24), rate=st.sampled_from([3, 4, 8]))
def test_at_rate_k_every_variant_matches_its_formula(spec, channels, rate):
    assert count_parameters(build_index_module(spec, channels, rate)) == stage_params(spec, channels, rate)


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
