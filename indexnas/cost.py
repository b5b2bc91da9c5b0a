"""What a model costs, counted one way for every package: the parameters its forward uses, and its FLOPs.

FLOPs follow fvcore's convention, one multiply-add = one flop. fvcore leaves the operators IP/IU are
made of uncounted, so ``_extra_handles`` adds them: elementwise arithmetic and activations at one
flop per output element (softmax three: exp, sum, divide), pooling at one flop per input element (an
add or a compare), unpooling / pixel shuffle / padding at zero (data movement). The handlers apply to
the whole model, so a host and its rewrite are counted alike. Two figures come out of one count:
``gflops`` = the total / 1e9, and ``gflops_paper_unit`` = the convolution/matmul multiply-adds / 2**30,
the unit of the Index Networks paper's tables (DnCNN: 27.80e9 / 2**30 = 25.89, its Table 5 figure).
The cross-check is ``torch.utils.flop_counter.FlopCounterMode``, which counts only matmul-like ops at
two flops per multiply-add: half its total must equal the convolution/matmul part exactly.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.fx
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils._pytree import tree_flatten, tree_unflatten

from indexnas.modes import eval_mode

# The cost axis every hypervolume of this project uses, the search's sampler and the reports alike.
# The reference point's Delta-params coordinate sits this far (in log10 units, x1.26) beyond the most
# expensive trial, so that trial still adds volume when it has the best metric.
PARAMS_REFERENCE_MARGIN = 0.1


def log_params(params_added: Any) -> Any:
    """The hypervolume's cost axis: log10(1 + Delta params), since Delta spans 16 to 10^8 in the paper."""
    return np.log10(1.0 + np.asarray(params_added, dtype=float))


PAPER_UNIT = float(2**30)  # the paper's "GFLOPs" are multiply-adds in units of 2**30
# fvcore operator names that FlopCounterMode also counts (at 2 flops per multiply-add): the paper's part.
MATMUL_OPS = ("conv", "addmm", "bmm", "matmul", "mm", "linear", "einsum", "_convolution")
_ELEMENTWISE = ("mul", "mul_", "add", "add_", "sub", "sub_", "div", "div_", "rsub", "sigmoid", "sigmoid_", "exp")
_ZERO_COST = ("max_unpool2d", "pixel_shuffle", "pixel_unshuffle", "hardtanh", "hardtanh_", "ones_like", "zeros_like",
              "repeat_interleave", "unflatten", "pad", "slice", "mean")


# --- parameters ----------------------------------------------------------------------------------


def used_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters ``model``'s forward uses, each tensor once.

    For a torch.fx GraphModule: those of the modules its graph calls and the attributes it reads, so
    a submodule the forward never calls (an unused backbone) is left out. Any other module: all of
    them (trace it, e.g. with ``indexnas.surgery.analyze``, to leave out what its forward never uses).
    """
    if not isinstance(model, torch.fx.GraphModule):
        return list(model.parameters())  # parameters() yields a shared tensor once
    used: dict[int, nn.Parameter] = {}
    for node in model.graph.nodes:
        if node.op == "call_module":
            found: Iterable[nn.Parameter] = model.get_submodule(str(node.target)).parameters()
        elif node.op == "get_attr":
            owner, _, name = str(node.target).rpartition(".")
            value = getattr(model.get_submodule(owner), name)
            if isinstance(value, nn.Module):
                found = value.parameters()
            else:
                found = [value] if isinstance(value, nn.Parameter) else []
        else:
            continue
        used.update((id(p), p) for p in found)
    return list(used.values())


def count_parameters(model: nn.Module) -> int:
    """Number of parameters the forward uses (see ``used_parameters``), frozen ones included, shared ones once."""
    return sum(p.numel() for p in used_parameters(model))


# --- FLOPs ---------------------------------------------------------------------------------------


@functools.cache
def _extra_handles() -> dict[str, Any]:
    """fvcore handlers for the operators IP/IU are made of (see the module docstring)."""
    from fvcore.nn.jit_handles import elementwise_flop_counter

    return {
        **{f"aten::{op}": elementwise_flop_counter(0, 1) for op in _ELEMENTWISE},
        "aten::softmax": elementwise_flop_counter(0, 3),
        "aten::_softmax": elementwise_flop_counter(0, 3),
        "aten::avg_pool2d": elementwise_flop_counter(1, 0),
        "aten::max_pool2d": elementwise_flop_counter(1, 0),
        "aten::max_pool2d_with_indices": elementwise_flop_counter(1, 0),
        **{f"aten::{op}": None for op in _ZERO_COST},
    }


@dataclass
class FlopCount:
    """One count: the total, per operator, and the operators nothing counted."""

    total: int
    by_operator: dict[str, int] = field(default_factory=dict)
    uncounted: dict[str, int] = field(default_factory=dict)  # operator -> number of calls skipped

    @property
    def matmul_part(self) -> int:
        """The convolution/matmul share: what FlopCounterMode also counts, and what the paper counts."""
        return sum(v for k, v in self.by_operator.items() if k in MATMUL_OPS)

    @property
    def gflops(self) -> float:
        """Every counted op / 1e9 (what the search and `indexnas insert` report)."""
        return self.total / 1e9

    @property
    def gflops_paper_unit(self) -> float:
        """Convolution/matmul multiply-adds / 2**30: the unit of the paper's tables."""
        return self.matmul_part / PAPER_UNIT


def as_inputs(inputs: Tensor | tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """A model's positional inputs as a tuple (one tensor or a tuple of them)."""
    return inputs if isinstance(inputs, tuple) else (inputs,)


@contextlib.contextmanager
def jit_traceable_unpooling() -> Iterator[None]:
    """Let torch.jit.trace (which fvcore uses) run max unpooling with ``output_size=x.shape[-2:]``.

    Traced sizes are 0-d tensors there, and torch's unpool size check insists on Python bools; the
    check is relaxed (sizes made ints) only while counting, for module and functional unpooling alike.
    """
    original = F._check_unpool_output_size

    def check(output_size: list, dim: int) -> None:
        original([int(s) for s in output_size], dim)

    F._check_unpool_output_size = check
    try:
        yield
    finally:
        F._check_unpool_output_size = original


@contextlib.contextmanager
def _quiet_fvcore() -> Iterator[None]:
    """fvcore's tracer and logger warnings off, for one count."""
    logger = logging.getLogger("fvcore")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # jit tracer warnings; fvcore's torch.jit.script deprecation
            yield
    finally:
        logger.setLevel(level)


def count_flops(model: nn.Module, inputs: Tensor | tuple[Tensor, ...]) -> FlopCount:
    """Count ``model(*inputs)`` with fvcore and the IP/IU handlers, in eval mode without gradients."""
    inputs = as_inputs(inputs)
    with _quiet_fvcore(), eval_mode(model), jit_traceable_unpooling():
        from fvcore.nn import FlopCountAnalysis

        analysis = FlopCountAnalysis(model, inputs).set_op_handle(**_extra_handles())
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
        total = int(analysis.total())
        by_operator = {k: int(v) for k, v in analysis.by_operator().items()}
        uncounted = dict(analysis.unsupported_ops())
    return FlopCount(total, by_operator, uncounted)


def measure(model: nn.Module, inputs: Tensor | tuple[Tensor, ...]) -> dict[str, float]:
    """{"params": count_parameters, "gflops": total / 1e9, "gflops_paper_unit": conv/matmul / 2**30}."""
    count = count_flops(model, inputs)
    return {"params": count_parameters(model), "gflops": count.gflops, "gflops_paper_unit": count.gflops_paper_unit}


# --- the cross-check -----------------------------------------------------------------------------


def torch_flops(model: nn.Module, inputs: Tensor | tuple[Tensor, ...]) -> int:
    """torch's FlopCounterMode total for ``model(*inputs)`` (2 flops per multiply-add, matmul-like ops only)."""
    from torch.utils.flop_counter import FlopCounterMode

    with eval_mode(model), FlopCounterMode(display=False) as counter:
        model(*as_inputs(inputs))
    return int(counter.get_total_flops())


@dataclass(frozen=True)
class CrossCheck:
    """Our count against FlopCounterMode on the same model and input."""

    fvcore_total: int
    fvcore_matmul: int
    torch_total: int  # 2 per multiply-add

    @property
    def agrees(self) -> bool:
        return 2 * self.fvcore_matmul == self.torch_total


def cross_check(model: nn.Module, inputs: Tensor | tuple[Tensor, ...]) -> CrossCheck:
    """Both counters on one model: our convolution/matmul part must be half of FlopCounterMode's total."""
    count = count_flops(model, inputs)
    return CrossCheck(count.total, count.matmul_part, torch_flops(model, inputs))


# --- per graph node --------------------------------------------------------------------------------


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
    """Runs a graph and counts the flops of the named nodes on their real inputs."""

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
            self.flops[n.name] = count_flops(call, tensors).total if tensors else 0
        return result


def node_flops(gm: torch.fx.GraphModule, inputs: Tensor | tuple[Tensor, ...], names: Iterable[str]) -> dict[str, int]:
    """Flops of each named node of ``gm`` when it runs on ``inputs`` (same handlers as the totals)."""
    counter = _NodeCounter(gm, set(names))
    with eval_mode(gm):
        counter.run(*as_inputs(inputs))
    return counter.flops
