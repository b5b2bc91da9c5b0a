"""Regression tests for styles met in third-party models (MONAI, HuggingFace, timm, GitHub code),
each on a small model written here in that style: the pair finder and the rewrite must read them
right, and every refusal must name the true reason."""

from __future__ import annotations

import warnings

import pytest
import torch

import handwritten_models as hw
from indexnas.surgery import analyze, registry
from indexnas.surgery.rewrite import insert_indexnet


@pytest.fixture
def clean_registry():
    leaves = dict(registry.LEAF_MODULES)
    yield
    registry.LEAF_MODULES.clear()
    registry.LEAF_MODULES.update(leaves)


def test_a_leaf_returning_a_list_is_not_a_down_and_casts_and_constants_leave_no_trace(clean_registry) -> None:
    registry.register_leaf_module(hw.ListBackbone, "returns a list of features")
    model = hw.MaskedFPN().eval()
    before = dict(vars(model))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "no resampling handler" warning for type_as
        gm, report = analyze(model, torch.randn(1, 3, 16, 16))
    assert report.transitions == [] and not report.warnings  # the leaf hides its downs; nothing is 'unknown'
    assert {u.code for u in report.unpaired} == {"no-down"}
    assert vars(model).keys() == before.keys()  # no _tensor_constant* attributes left on the user's model
    constants = [n.target for n in gm.graph.nodes if n.op == "get_attr"]
    assert constants and all(hasattr(gm, name) and not hasattr(model, name) for name in constants)
    assert "train mode" not in " ".join(report.warnings)
