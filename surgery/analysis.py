"""Analysis of one model: trace it, check the graph against eager at two sizes, and pair its ups with its downs.

Its own module (re-exported by ``indexnas.surgery``) so that the rewrite, the compatibility rules and the
recipes can use it without importing the package's ``__init__`` (no import cycle).
"""

from __future__ import annotations

from torch import Tensor, fx, nn

from indexnas.errors import UserError
from indexnas.surgery.detect import detect as _detect
from indexnas.surgery.pairing import pair_ups as _pair_ups
from indexnas.surgery.pairs import Pair, PairReport
from indexnas.surgery.trace import propagate_and_check as _propagate_and_check
from indexnas.surgery.trace import trace as _trace


def _as_inputs(example_input: Tensor | tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    inputs = example_input if isinstance(example_input, tuple) else (example_input,)
    if not inputs or not all(isinstance(x, Tensor) for x in inputs):
        raise UserError(
            f"the example input must be a tensor or a tuple of tensors, got {type(example_input).__name__}",
            "pass e.g. torch.randn(1, 3, 224, 224)",
        )
    if not any(x.dim() == 4 for x in inputs):
        raise UserError(
            f"no 4-D (N, C, H, W) image among the example inputs (shapes {[tuple(x.shape) for x in inputs]})",
            "the pair finder works on 2-D image models; pass an image batch",
        )
    return inputs


def analyze(model: nn.Module, example_input: Tensor | tuple[Tensor, ...]) -> tuple[fx.GraphModule, PairReport]:
    """Trace ``model``, check the graph against eager at two sizes, and pair its ups with its downs.

    The GraphModule's nodes carry ``meta['tensor_meta']`` (shapes at the example input) and
    ``meta['indexnas_name']`` (readable names); its submodules are the model's own objects.
    """
    if not isinstance(model, nn.Module):
        raise UserError(f"expected a torch.nn.Module, got {type(model).__name__}")
    inputs = _as_inputs(example_input)
    gm = _trace(model, inputs)
    notes = _propagate_and_check(model, gm, inputs)
    notes += [_guard_note(guard) for guard in gm.meta["indexnas_guards"] if guard.spatial]
    if gm.meta["indexnas_train_only"]:
        notes.append(
            "traced in eval mode; in train mode these modules run other ops (Python reads self.training, e.g. drop "
            f"connect or stochastic depth), which the graph leaves out: {', '.join(gm.meta['indexnas_train_only'][:6])}"
        )
    report = _pair_ups(gm, _detect(gm))
    report.warnings[:0] = notes
    return gm, report


def _guard_note(guard: object) -> str:
    return (
        f"{guard.module or 'forward'}: the condition {guard.condition} reads a spatial size; traced with its "
        f"example value {guard.value}, so the graph holds only for inputs that give the same answer"
    )


def find_pairs(model: nn.Module, example_input: Tensor | tuple[Tensor, ...]) -> list[Pair]:
    """Every up paired with the down transition(s) it inverts (see ``analyze`` for the full report)."""
    return analyze(model, example_input)[1].pairs
