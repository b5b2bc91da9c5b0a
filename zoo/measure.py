"""Parameters and fvcore GFLOPs of a model, in fvcore's unit and in the paper's.

fvcore counts one multiply-add as one flop. The Index Networks paper's GFLOPs are convolution
multiply-adds divided by 2**30 (DnCNN: 27.80e9 / 2**30 = 25.89, its Table 5 figure), so both are
reported: ``gflops`` = fvcore total / 1e9 (all ops fvcore counts, BN and interpolation included)
and ``gflops_paper_unit`` = fvcore's convolution and linear counts / 2**30.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from fvcore.nn import FlopCountAnalysis

PAPER_UNIT = 2**30
PAPER_OPS = ("conv", "linear", "addmm", "matmul")  # what the paper's figures count


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not; BN affine weights included, buffers not)."""
    return sum(p.numel() for p in model.parameters())


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


def fvcore_flops(model: nn.Module, inputs: torch.Tensor | tuple) -> FlopCountAnalysis:
    """An evaluated fvcore FlopCountAnalysis of ``model`` on ``inputs`` (eval mode, no warnings spam)."""
    with warnings.catch_warnings():  # fvcore imports torch.jit.script, deprecated in torch 2.14
        warnings.simplefilter("ignore", FutureWarning)
        from fvcore.nn import FlopCountAnalysis
    was_training = model.training
    model.eval()
    analysis = FlopCountAnalysis(model, inputs)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    logger = logging.getLogger("fvcore")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with jit_traceable_unpooling(), warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            analysis.total()  # runs the trace once; later queries reuse it
    finally:
        logger.setLevel(level)
        model.train(was_training)
    return analysis


def measure(model: nn.Module, inputs: torch.Tensor) -> dict[str, float]:
    """{"params": count, "gflops": fvcore total / 1e9, "gflops_paper_unit": conv+linear / 2**30}."""
    analysis = fvcore_flops(model, inputs)
    by_operator = analysis.by_operator()
    return {
        "params": count_parameters(model),
        "gflops": analysis.total() / 1e9,
        "gflops_paper_unit": sum(by_operator.get(op, 0) for op in PAPER_OPS) / PAPER_UNIT,
    }
