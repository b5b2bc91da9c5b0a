"""Parameters and FLOPs of a model or of single graph nodes: fvcore plus handlers, cross-checked by torch.

Convention: fvcore's, one multiply-add = one flop. fvcore leaves the operators IP/IU are made of
uncounted, so EXTRA_HANDLES adds them: elementwise arithmetic and activations at one flop per output
element (softmax three: exp, sum, divide), pooling at one flop per input element (an add or a
compare), unpooling / pixel shuffle / padding at zero (data movement). The handlers apply to the
whole model, so a baseline and its rewrite are counted alike. The cross-check is
``torch.utils.flop_counter.FlopCounterMode``, which counts only matmul-like ops at two flops per
multiply-add: half its total must equal fvcore's convolution/matmul part exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx
import warnings
from torch import Tensor, nn
from torch.utils._pytree import tree_flatten, tree_unflatten
from torch.utils.flop_counter import FlopCounterMode

from indexnas.indexnet import count_parameters

with warnings.catch_warnings():  # fvcore calls torch.jit.script at import, deprecated in torch 2.14
    warnings.simplefilter("ignore", FutureWarning)
    from fvcore.nn import FlopCountAnalysis
    from fvcore.nn.jit_handles import elementwise_flop_counter
from indexnas.surgery.trace import eval_mode
from indexnas.zoo.measure import jit_traceable_unpooling

# The paper's "GFLOPs" are multiply-adds in units of 2**30 (its Tables 5-7 match fvcore / 2**30).
PAPER_GFLOP = float(2**30)

_ELEMENTWISE = ("mul", "mul_", "add", "add_", "sub", "sub_", "div", "div_", "rsub", "sigmoid", "sigmoid_", "exp")
_ZERO_COST = ("max_unpool2d", "pixel_shuffle", "pixel_unshuffle", "hardtanh", "hardtanh_", "ones_like", "zeros_like",
              "repeat_interleave", "unflatten", "pad", "slice", "mean")
EXTRA_HANDLES: dict[str, Any] = {
    **{f"aten::{op}": elementwise_flop_counter(0, 1) for op in _ELEMENTWISE},
    "aten::softmax": elementwise_flop_counter(0, 3),
    "aten::_softmax": elementwise_flop_counter(0, 3),
    "aten::avg_pool2d": elementwise_flop_counter(1, 0),
    "aten::max_pool2d": elementwise_flop_counter(1, 0),
    "aten::max_pool2d_with_indices": elementwise_flop_counter(1, 0),
    **{f"aten::{op}": None for op in _ZERO_COST},
}
# fvcore operator names that FlopCounterMode also counts (at 2 flops per multiply-add).
MATMUL_OPS = ("conv", "addmm", "bmm", "matmul", "mm", "linear", "einsum", "_convolution")


@dataclass
class FlopCount:
    """A fvcore count: the total, per operator, and the operators nothing counted."""

    total: int
    by_operator: dict[str, int] = field(default_factory=dict)
    uncounted: dict[str, int] = field(default_factory=dict)  # operator -> number of calls skipped

    @property
    def matmul_part(self) -> int:
        """The convolution/matmul share: what FlopCounterMode also counts."""
        return sum(v for k, v in self.by_operator.items() if k in MATMUL_OPS)


def as_inputs(inputs: Tensor | tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """A model's positional inputs as a tuple (one tensor or a tuple of them)."""
    return inputs if isinstance(inputs, tuple) else (inputs,)


def fvcore_flops(model: nn.Module, inputs: Tensor | tuple[Tensor, ...]) -> FlopCount:
    """Count ``model(*inputs)`` with fvcore and EXTRA_HANDLES, in eval mode without gradients."""
    inputs = as_inputs(inputs)
    fvcore_log = logging.getLogger("fvcore.nn.jit_analysis")
    level = fvcore_log.level
    fvcore_log.setLevel(logging.ERROR)
    try:
        with eval_mode(model), jit_traceable_unpooling():
            analysis = FlopCountAnalysis(model, inputs).set_op_handle(**EXTRA_HANDLES)
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            analysis.tracer_warnings("none")
            total = int(analysis.total())
            by_operator = {k: int(v) for k, v in analysis.by_operator().items()}
            uncounted = dict(analysis.unsupported_ops())
    finally:
        fvcore_log.setLevel(level)
    return FlopCount(total, by_operator, uncounted)


def torch_flops(model: nn.Module, inputs: Tensor | tuple[Tensor, ...]) -> int:
    """torch's FlopCounterMode total for ``model(*inputs)`` (2 flops per multiply-add, matmul-like ops only)."""
    inputs = as_inputs(inputs)
    with eval_mode(model), FlopCounterMode(display=False) as counter:
        model(*inputs)
    return int(counter.get_total_flops())


@dataclass(frozen=True)
class CrossCheck:
    """fvcore against FlopCounterMode on the same model and input."""

    fvcore_total: int
    fvcore_matmul: int
    torch_total: int  # 2 per multiply-add

    @property
    def agrees(self) -> bool:
        return 2 * self.fvcore_matmul == self.torch_total


def cross_check(model: nn.Module, inputs: Tensor | tuple[Tensor, ...]) -> CrossCheck:
    """Both counters on one model: fvcore's conv/matmul part must be half of FlopCounterMode's total."""
    count = fvcore_flops(model, inputs)
    return CrossCheck(count.total, count.matmul_part, torch_flops(model, inputs))


class _NodeCall(nn.Module):
    """One graph node's operation as a module taking only its tensor arguments (for fvcore)."""

    def __init__(self, node: torch.fx.Node, gm: torch.fx.GraphModule, args: tuple, kwargs: dict) -> None:
        super().__init__()
        self.op, self.target = node.op, node.target
        if node.op == "call_module":
            self.module = gm.get_submodule(str(node.target))
        leaves, self.spec = tree_flatten((args, kwargs))
        self.tensor_at = [i for i, leaf in enumerate(leaves) if isinstance(leaf, Tensor)]
        self.leaves = [None if isinstance(leaf, Tensor) else leaf for leaf in leaves]

    def forward(self, *tensors: Tensor) -> Any:
        leaves = list(self.leaves)
        for i, t in zip(self.tensor_at, tensors):
            leaves[i] = t
        args, kwargs = tree_unflatten(leaves, self.spec)
        if self.op == "call_module":
            return self.module(*args, **kwargs)
        if self.op == "call_method":
            return getattr(args[0], self.target)(*args[1:], **kwargs)
        return self.target(*args, **kwargs)

    def tensors(self, args: tuple, kwargs: dict) -> tuple[Tensor, ...]:
        leaves, _ = tree_flatten((args, kwargs))
        return tuple(leaves[i] for i in self.tensor_at)


class _NodeCounter(torch.fx.Interpreter):
    """Runs a graph and counts, with fvcore, the flops of the named nodes on their real inputs."""

    def __init__(self, gm: torch.fx.GraphModule, names: set[str]) -> None:
        super().__init__(gm)
        self.names = names
        self.flops: dict[str, int] = {}

    def run_node(self, n: torch.fx.Node) -> Any:
        result = super().run_node(n)
        if n.name in self.names and n.op in ("call_module", "call_function", "call_method"):
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            call = _NodeCall(n, self.module, args, kwargs)
            tensors = call.tensors(args, kwargs)
            self.flops[n.name] = fvcore_flops(call, tensors).total if tensors else 0
        return result


def node_flops(gm: torch.fx.GraphModule, inputs: Tensor | tuple[Tensor, ...], names: Iterable[str]) -> dict[str, int]:
    """fvcore flops of each named node of ``gm`` when it runs on ``inputs`` (same handlers as the totals)."""
    counter = _NodeCounter(gm, set(names))
    with eval_mode(gm):
        counter.run(*as_inputs(inputs))
    return counter.flops


def parameters(module: nn.Module) -> int:
    """Trainable parameters, shared tensors once (the modelwise IndexNet counts once per model)."""
    return count_parameters(module)
