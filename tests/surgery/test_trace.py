"""The tracer: readable names, guards answered from the example, failures that name the module
and the registry fix, and the eager check that catches graphs which trace but are wrong."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import handwritten_models as hw
from indexnas.errors import UserError
from indexnas.surgery import analyze, registry
from indexnas.surgery.trace import READABLE, trace


@pytest.fixture
def clean_registry():
    """Restore the registries after a test that extends them."""
    leaves, functions, handlers = dict(registry.LEAF_MODULES), dict(registry.LEAF_FUNCTIONS), dict(registry.RESAMPLERS)
    yield
    for live, saved in ((registry.LEAF_MODULES, leaves), (registry.LEAF_FUNCTIONS, functions),
                        (registry.RESAMPLERS, handlers)):
        live.clear()
        live.update(saved)


def names(gm: torch.fx.GraphModule) -> list[str]:
    return [n.meta[READABLE] for n in gm.graph.nodes if n.op in ("call_module", "call_function", "call_method")]


def test_names_are_module_paths_and_scoped_functions() -> None:
    gm = trace(hw.UNetTransposed())
    found = names(gm)
    assert "down1.0" in found and "up2.up" in found
    assert "up2.pad" in found and "up1.cat" in found  # functions named after the module that calls them


def test_a_module_called_twice_gets_numbered_calls() -> None:
    found = names(trace(hw.UNetSharedPool()))
    assert found.count("pool:0") == 1 and found.count("pool:1") == 1 and "pool" not in found


def test_graph_has_no_baked_sizes() -> None:
    model = hw.UNetTransposed().eval()
    gm = trace(model, (torch.randn(1, 3, 32, 32),))
    for size in (32, 45, 61):
        x = torch.randn(1, 3, size, size)
        torch.testing.assert_close(gm(x), model(x), rtol=0, atol=0)


class ShapeGuards(nn.Module):
    """Python conditions on shapes: a channel count (size-independent) and an odd width (spatial)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, 2, 1)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        if y.shape[1] != 0:
            y = y + 1
        if x.shape[-1] % 2 == 1:
            x = F.pad(x, (0, 1, 0, 1))
        return F.interpolate(y, size=x.shape[-2:])


def test_shape_guards_are_answered_from_the_example_and_recorded() -> None:
    gm = trace(ShapeGuards(), (torch.randn(1, 3, 31, 31),))
    guards = gm.meta["indexnas_guards"]
    assert [(g.value, g.spatial) for g in guards] == [(True, False), (True, True)]
    _, report = analyze(ShapeGuards(), torch.randn(1, 3, 31, 31))
    assert any("reads a spatial size" in w for w in report.warnings)


def test_without_an_example_a_shape_guard_fails_with_the_module_named() -> None:
    with pytest.raises(UserError, match=r"the model's own forward .*ShapeGuards.*test_trace.py:\d+ in forward"):
        trace(ShapeGuards())


class IteratesShape(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        size = [d // 2 for d in x.shape[2:]]  # Segformer-style loop over a traced shape
        return F.interpolate(F.interpolate(x, size=size), size=x.shape[-2:])


def test_iterating_a_traced_shape_uses_the_example_rank() -> None:
    model = IteratesShape()
    gm = trace(model, (torch.randn(1, 3, 16, 16),))
    x = torch.randn(1, 3, 20, 20)
    torch.testing.assert_close(gm(x), model(x))


class RankGenericUpCat(nn.Module):
    """Code written for 2-D and 3-D alike: pads per spatial axis over ``range(len(x.shape) - 2)``
    and splits heads with ``(*x.shape[:-1], heads, -1)`` unpacking (MONAI and HuggingFace style)."""

    def __init__(self) -> None:
        super().__init__()
        self.down, self.proj = nn.Conv2d(3, 8, 3, 2, 1), nn.Linear(8, 8)

    def forward(self, x: Tensor) -> Tensor:
        y = F.interpolate(self.down(x), scale_factor=2.0)
        pads = [0, 0] * (len(y.shape) - 2)
        for axis in range(len(x.shape) - 2):
            if y.shape[-axis - 1] != x.shape[-axis - 1]:
                pads[axis * 2 + 1] = 1
        y = F.pad(y, pads)
        tokens = y.flatten(2).transpose(1, 2)
        heads = self.proj(tokens).view(*tokens.shape[:-1], 2, -1)
        return heads.flatten(2).transpose(1, 2).reshape(y.shape)


def test_len_of_a_traced_shape_is_the_example_rank_and_ups_stay_visible() -> None:
    model = RankGenericUpCat().eval()
    gm, report = analyze(model, torch.randn(1, 3, 16, 16))
    assert [(p.up.kind, p.transitions[0].name) for p in report.pairs] == [("interpolate", "down")]
    x = torch.randn(1, 3, 24, 24)
    torch.testing.assert_close(gm(x), model(x))


def test_len_of_a_tensor_value_is_still_refused() -> None:
    class LenOfBatch(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            return x * len(x)

    with pytest.raises(UserError, match="'len' of a traced value other than a shape"):
        trace(LenOfBatch(), (torch.randn(2, 3, 8, 8),))


class ValueBranch(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * 2 if x.sum() > 0 else x


class HasValueBranch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 3, 3, padding=1)
        self.gate = ValueBranch()

    def forward(self, x: Tensor) -> Tensor:
        return self.gate(self.stem(x))


def test_value_dependent_branch_names_module_line_and_registry_fix(clean_registry) -> None:
    with pytest.raises(UserError) as caught:
        trace(HasValueBranch(), (torch.randn(1, 3, 8, 8),))
    message = str(caught.value)
    assert "module 'gate' (test_trace.ValueBranch)" in message
    assert "test_trace.py" in message and "in forward()" in message
    assert "register_leaf_module('test_trace.ValueBranch'" in message
    registry.register_leaf_module(ValueBranch, "branches on tensor values")
    gm = trace(HasValueBranch(), (torch.randn(1, 3, 8, 8),))
    assert "gate" in names(gm)


class OptionalSkip(nn.Module):
    """MONAI-style: the skip is concatenated only if torch.jit.isinstance says it is a tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Conv2d(3, 4, 3, 2, 1)
        self.up = nn.Upsample(scale_factor=2)

    def forward(self, x: Tensor) -> Tensor:
        y = self.up(self.down(x))
        if torch.jit.isinstance(x, torch.Tensor):
            y = torch.cat([y, x], 1)
        return y


def test_jit_isinstance_keeps_the_branch_eager_takes() -> None:
    model = OptionalSkip().eval()
    gm = trace(model, (torch.randn(1, 3, 8, 8),))
    x = torch.randn(1, 3, 12, 12)
    assert gm(x).shape == model(x).shape == (1, 7, 12, 12)


class PythonIsinstance(nn.Module):
    """Python isinstance on a Proxy is False: fx silently drops the branch. Only the eager check sees it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        if isinstance(x, torch.Tensor):
            y = y + x
        return y


def test_a_graph_that_traces_but_is_wrong_is_rejected() -> None:
    with pytest.raises(UserError, match="disagrees with eager"):
        analyze(PythonIsinstance(), torch.randn(1, 3, 8, 8))


class TrainOnlyNoise(nn.Module):
    """Reads self.training in Python (like drop-connect): fx bakes the mode it was traced in."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        if self.training:
            y = y * 0.5
        return y


def test_train_mode_differences_are_reported_and_modes_restored() -> None:
    model = nn.Sequential(TrainOnlyNoise(), nn.BatchNorm2d(3)).train()
    gm, report = analyze(model, torch.randn(1, 3, 8, 8))
    assert gm.meta["indexnas_train_only"] == ["0"]
    assert any("traced in eval mode" in w for w in report.warnings)
    assert all(m.training for m in model.modules())  # analyze puts every flag back


class CustomDown(nn.Module):
    """A user's own downsampling layer, kept whole as a leaf."""

    def forward(self, x: Tensor) -> Tensor:
        return x[..., ::2, ::2]


class UsesCustomDown(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.down = CustomDown()
        self.up = nn.Upsample(scale_factor=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.up(self.down(self.stem(x)))


def test_unknown_resampler_degrades_with_warning_then_a_handler_classifies_it(clean_registry) -> None:
    registry.register_leaf_module(CustomDown, "strided slicing, kept whole for the test")
    with pytest.warns(UserWarning, match="no resampling handler for test_trace.CustomDown"):
        _, report = analyze(UsesCustomDown(), torch.randn(1, 3, 16, 16))
    assert [d.kind for t in report.transitions for d in t.downs] == ["unknown"]
    assert [p.name for p in report.pairs] == ["down"]  # still paired: nothing silently dropped
    registry.register_resampler(CustomDown, lambda call: registry.Resampling("down", "subsample"))
    _, report = analyze(UsesCustomDown(), torch.randn(1, 3, 16, 16))
    assert [d.kind for t in report.transitions for d in t.downs] == ["subsample"] and not report.warnings


def test_registry_entries_are_validated() -> None:
    with pytest.raises(UserError, match="nn.Module subclass"):
        registry.register_leaf_module(42, "no")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="must be callable"):
        registry.register_resampler(CustomDown, "not a function")  # type: ignore[arg-type]


def test_timm_notrace_entries_apply_unless_they_hide_resampling() -> None:
    from timm.layers import BatchNormAct2d, Conv2dSame

    assert "timm" in registry.leaf_reason(BatchNormAct2d(8))
    assert registry.leaf_reason(Conv2dSame(3, 8, 3, stride=2)) is None  # a strided conv: traced through
    assert registry.hides_resampling(nn.Sequential(nn.Conv2d(3, 3, 1), nn.MaxPool2d(2)))
    assert not registry.hides_resampling(nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.ReLU()))


def test_bad_inputs_are_user_errors() -> None:
    with pytest.raises(UserError, match="expected a torch.nn.Module"):
        analyze("segnet", torch.randn(1, 3, 8, 8))  # type: ignore[arg-type]
    with pytest.raises(UserError, match=r"no 4-D \(N, C, H, W\) image"):
        analyze(nn.Linear(3, 3), torch.randn(2, 3))
    with pytest.raises(UserError, match="fails on the example input"):
        analyze(hw.SegNetModules(), torch.randn(1, 5, 16, 16))


# --- the tracing answers are scoped: restored on every exit path, never seen by other threads ------


def _jit_queries() -> tuple[object, object, object]:
    return torch.jit.is_tracing, torch.compiler.is_compiling, torch.jit.isinstance


class _FailsWhileTracing(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        if torch.jit.is_tracing():
            raise RuntimeError("boom inside the traced forward")
        return x


def test_an_exception_inside_tracing_restores_torchs_own_functions() -> None:
    before = _jit_queries()
    with pytest.raises(UserError, match="boom inside the traced forward"):
        trace(_FailsWhileTracing())
    assert _jit_queries() == before
    assert torch.jit.is_tracing() is False and torch.compiler.is_compiling() is False


def test_another_thread_gets_torchs_answers_while_a_model_is_traced() -> None:
    import threading

    from indexnas.surgery.tracing_queries import tracing_answers

    inside, release, seen = threading.Event(), threading.Event(), {}

    def trace_slowly() -> None:
        with tracing_answers():
            seen["tracer"] = (torch.jit.is_tracing(), torch.compiler.is_compiling())
            inside.set()
            release.wait(10)

    tracer = threading.Thread(target=trace_slowly)
    tracer.start()
    assert inside.wait(10)
    proxy = torch.fx.Proxy(torch.fx.Graph().placeholder("x"))
    seen["other"] = (torch.jit.is_tracing(), torch.compiler.is_compiling(), torch.jit.isinstance(proxy, Tensor))
    release.set()
    tracer.join()
    assert seen == {"tracer": (True, True), "other": (False, False, False)}
