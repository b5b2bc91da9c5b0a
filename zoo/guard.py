"""Input checks for zoo models: a wrong channel count or a too-small image becomes a UserError
naming the constraint instead of a shape error deep inside the network.

The check is a forward pre-hook on the root model: torch.fx's symbolic_trace calls
``forward`` directly, so the hook never enters a traced graph and never branches on a proxy.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from indexnas.errors import UserError


class InputGuard:
    """Forward pre-hook: input must be (B, in_chans, H, W) with H, W >= min_size."""

    def __init__(self, model_name: str, in_chans: int, min_size: int, size_rule: str) -> None:
        self.model_name = model_name
        self.in_chans = in_chans
        self.min_size = min_size
        self.size_rule = size_rule

    def __call__(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        if torch.jit.is_tracing():  # sizes are tensors under jit tracing (fvcore); checked eagerly anyway
            return
        x = args[0] if args else next(iter(kwargs.values()), None)
        if not isinstance(x, Tensor) or x.dim() != 4:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise UserError(
                f"{self.model_name} takes a 4-D tensor (batch, {self.in_chans}, height, width), got {shape}",
                "add a batch dimension with x.unsqueeze(0), or see zoo.example_input(name)",
            )
        channels, height, width = x.shape[1:]
        if channels != self.in_chans:
            raise UserError(
                f"{self.model_name} expects {self.in_chans} input channel(s), got {channels}",
                f"pass {self.in_chans}-channel images, or create the model with in_chans={channels} where it has that option",
            )
        if height < self.min_size or width < self.min_size:
            raise UserError(
                f"{self.model_name} cannot take a {height}x{width} input: {self.size_rule}",
                f"use an input of at least {self.min_size}x{self.min_size}",
            )


def guard_input(model: nn.Module, model_name: str, in_chans: int, min_size: int, size_rule: str) -> None:
    """Attach an InputGuard to ``model`` and record the rule on it (``model.min_input_size``)."""
    model.min_input_size = min_size
    model.register_forward_pre_hook(InputGuard(model_name, in_chans, min_size, size_rule), with_kwargs=True)
