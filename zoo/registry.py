"""The zoo's registry (timm/smp style): ``create_model(name, **kwargs)``, ``list_models()``,
``paper_baseline(name)`` and ``example_input(name, size)``. The registry is a plain dict; an
unknown name is a UserError listing the valid ones. ``"timm:NAME"`` means ``unet`` over the
timm backbone NAME.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import nn

from indexnas.errors import UserError
from indexnas.names import did_you_mean
from indexnas.zoo.checkpoint import load_checkpoint
from indexnas.zoo.dncnn import DnCNN, DnCNNSegNet
from indexnas.zoo.fastdepth import FastDepth
from indexnas.zoo.matting import MattingB11
from indexnas.zoo.segnet import SegNet
from indexnas.zoo.unet import TimmUNet

TIMM_PREFIX = "timm:"


@dataclass(frozen=True)
class ZooEntry:
    """One zoo model: how to build it and what the Index Networks paper reports for it."""

    builder: Callable[..., nn.Module]
    task: str
    in_chans: int
    out_channels: str  # what the output holds, for documentation and the models table
    min_size: int  # smallest height/width at the default arguments
    paper_params_m: float | None = None  # Table figure, millions
    paper_gflops: float | None = None  # Table figure at 224x224 (multiply-adds / 2**30)
    paper_table: str | None = None
    pooled_channels: tuple[int, ...] = field(default=())  # channels entering each 2x2 pool at width 1.0


REGISTRY: dict[str, ZooEntry] = {
    "dncnn": ZooEntry(DnCNN, "denoise", 1, "noise estimate, same shape as the input", 1, 0.56, 25.89, "Table 5"),
    "dncnn_segnet": ZooEntry(
        DnCNNSegNet, "denoise", 1, "noise estimate, same shape as the input", 8, 7.09, 18.14, "Table 5", (64, 128, 256)
    ),
    "segnet": ZooEntry(
        SegNet, "segment", 3, "num_classes logits (default 37)", 32, 24.96, 24.76, "Table 6", (64, 128, 256, 512, 512)
    ),
    "fastdepth": ZooEntry(FastDepth, "depth", 3, "1 depth channel", 1, 3.96, 0.69, "Table 7"),
    "fastdepth_p": ZooEntry(
        partial(FastDepth, pooled=True),
        "depth",
        3,
        "1 depth channel",
        32,
        3.96,
        1.01,
        "Table 7",
        (32, 128, 256, 512, 1024),
    ),
    "matting": ZooEntry(
        MattingB11, "matting", 4, "1 alpha channel (raw)", 32, None, None, "Table 2 (B11)", (32, 24, 32, 64, 160)
    ),
    "unet": ZooEntry(TimmUNet, "segment", 3, "num_classes logits (default 1)", 32),
}


def list_models() -> list[str]:
    """The zoo's model names (any timm backbone is also reachable as ``timm:NAME``)."""
    return list(REGISTRY)


def _resolve(name: str) -> tuple[str, dict]:
    """Map a name to (registry key, implied kwargs); ``timm:NAME`` -> ("unet", {"backbone": NAME})."""
    if not isinstance(name, str):
        raise UserError(f"a model name must be a string, got {type(name).__name__}", f"use one of: {', '.join(REGISTRY)}")
    if name.startswith(TIMM_PREFIX):
        backbone = name[len(TIMM_PREFIX) :]
        if not backbone:
            raise UserError(f"{name!r} names no timm backbone", "write it as timm:NAME, e.g. timm:resnet18")
        return "unet", {"backbone": backbone}
    if name not in REGISTRY:
        raise UserError(
            f"unknown zoo model {name!r}",
            f"{did_you_mean(name, REGISTRY)}use one of: {', '.join(REGISTRY)} "
            "(or timm:NAME for a UNet over a timm backbone)",
        )
    return name, {}


def _entry(name: str) -> ZooEntry:
    return REGISTRY[_resolve(name)[0]]


def _accepted_kwargs(builder: Callable[..., nn.Module]) -> list[str]:
    bound = builder.keywords if isinstance(builder, partial) else {}
    target = builder.func if isinstance(builder, partial) else builder
    return [p for p in inspect.signature(target).parameters if p not in bound]


def create_model(name: str, pretrained: str | os.PathLike | None = None, **kwargs) -> nn.Module:
    """Build a zoo model with random weights, or load a local state_dict from ``pretrained``.

    Every model takes ``width`` (channel multiplier, default 1.0 = the paper's); see each
    class's docstring for its other arguments, input sizes and paper baseline.
    """
    key, implied = _resolve(name)
    entry = REGISTRY[key]
    accepted = _accepted_kwargs(entry.builder)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise UserError(
            f"{key} does not take {', '.join(map(repr, unknown))}",
            f"its arguments are: {', '.join(accepted + ['pretrained'])}",
        )
    clash = sorted(set(implied) & set(kwargs))
    if clash:
        raise UserError(f"{name!r} already names the backbone; do not also pass backbone=", f"use create_model({name!r})")
    model = entry.builder(**implied, **kwargs)
    if pretrained is not None:
        load_checkpoint(model, pretrained, name)
    return model


def paper_baseline(name: str) -> dict:
    """What the paper reports for a zoo model, plus what callers need to feed it.

    Keys: name, task, in_chans, output, min_size, params_m and gflops (paper figures at 224x224;
    None where the paper gives none; GFLOPs are the paper's multiply-adds / 2**30), table,
    pooled_channels (channels entering each 2x2 pool at width 1.0; empty when none).
    """
    key, _ = _resolve(name)
    entry = REGISTRY[key]
    return {
        "name": key,
        "task": entry.task,
        "in_chans": entry.in_chans,
        "output": entry.out_channels,
        "min_size": entry.min_size,
        "params_m": entry.paper_params_m,
        "gflops": entry.paper_gflops,
        "table": entry.paper_table,
        "pooled_channels": entry.pooled_channels,
    }


def model_task(name: str) -> str:
    """The task a zoo model solves: the name of a built-in task (tasks/registry.py)."""
    return _entry(name).task


def example_input(
    name: str, size: int | tuple[int, int] = 224, batch: int = 1, in_chans: int | None = None, seed: int = 0
) -> torch.Tensor:
    """A deterministic example input of the right shape: (batch, in_chans, H, W), values in [0, 1].

    For ``matting`` the 4th channel is a trimap (0 background, 0.5 unknown, 1 foreground).
    """
    entry = _entry(name)
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    if min(height, width) < entry.min_size:
        raise UserError(
            f"{name} needs inputs of at least {entry.min_size}x{entry.min_size}, asked for {height}x{width}",
            f"use size >= {entry.min_size}",
        )
    channels = in_chans if in_chans is not None else entry.in_chans
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, channels, height, width, generator=generator)
    if entry.task == "matting" and channels == 4:
        x[:, 3] = torch.randint(0, 3, (batch, height, width), generator=generator).float() / 2
    return x
