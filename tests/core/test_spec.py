"""IndexSpec: the compact string form round-trips, and bad strings say what the valid forms are."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from indexnas.errors import UserError
from indexnas.spec import NORMS, IndexSpec, all_choices


@pytest.mark.parametrize("spec", all_choices(), ids=str)
def test_string_form_round_trips(spec):
    assert IndexSpec.parse(str(spec)) == spec


@given(
    family=st.sampled_from(["holistic", "m2o", "o2o-unshared", "o2o-shared", "o2o-modelwise"]),
    nonlinear=st.booleans(),
    context=st.booleans(),
    enc=st.sampled_from(NORMS),
    dec=st.sampled_from(NORMS),
)
def test_round_trip_with_any_normalisation(family, nonlinear, context, enc, dec):
    spec = IndexSpec(family, nonlinear, context, enc, dec)
    assert IndexSpec.parse(str(spec)) == spec


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("m2o-nl-c", IndexSpec("m2o", True, True)),
        ("holistic", IndexSpec("holistic")),
        ("o2o-shared-nl", IndexSpec("o2o-shared", True)),
        (" MAX ", IndexSpec("max")),
        ("keep", IndexSpec("keep")),
        ("m2o-c", IndexSpec("m2o", False, True)),
        ("m2o@enc=softmax,dec=softmax", IndexSpec("m2o", enc_norm="softmax", dec_norm="softmax")),
    ],
)
def test_documented_examples_parse(text, expected):
    assert IndexSpec.parse(text) == expected


@pytest.mark.parametrize(
    "text", ["m2o-nl-nl", "holistc", "max-nl", "", "m2o@enc=tanh", "m2o@foo=sigmoid", "keep-c", "avg@enc=softmax"]
)
def test_invalid_strings_raise_a_user_error_that_lists_the_valid_forms(text):
    with pytest.raises(UserError) as info:
        IndexSpec.parse(text)
    assert info.value.fix and ("holistic" in info.value.fix or "sigmoid" in info.value.fix or "plain" in info.value.fix
                               or "drop" in info.value.fix)


def test_properties_tell_holistic_from_depthwise():
    assert IndexSpec.parse("holistic-nl").holistic and not IndexSpec.parse("holistic-nl").depthwise
    assert IndexSpec.parse("o2o-shared").depthwise
    assert IndexSpec.parse("o2o-modelwise").modelwise
    assert IndexSpec.parse("m2o-c").first_conv() == (4, 1)
