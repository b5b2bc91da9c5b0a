"""Train/eval mode for a while: run a model in a mode and restore every submodule's own flag afterwards.

Shared by tracing (surgery) and cost counting (indexnas.cost), which must leave the user's model as it was.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


@contextlib.contextmanager
def module_mode(model: nn.Module, training: bool) -> Iterator[None]:
    """Put the model in train or eval mode, restoring every submodule's own flag afterwards."""
    flags = {module: module.training for module in model.modules()}
    model.train(training)
    try:
        yield
    finally:
        for module, flag in flags.items():
            module.training = flag


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Run in eval mode without gradients, restoring every submodule's training flag afterwards."""
    with module_mode(model, False), torch.no_grad():
        yield
