"""Indexed pooling (IP), indexed upsampling (IU) and index-map normalisation.

Index maps have the size of the feature they index, ``(B, 1 or C, H, W)``; an odd last
row/column lies outside every 2x2 region and has index 0. So IP floors like ``max_pool2d``
without ``ceil_mode``, and IU restores the original size with that row/column zero, as
``max_unpool2d(output_size=...)`` does. IP and IU are torch.fx leaf functions, so a traced
model shows one readable node per operator; nothing here reads a Python int off a tensor.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor

RATE = 2  # the paper's 2x2 region, stride 2
F_ = TypeVar("F_", bound=Callable[..., Tensor])


def fx_leaf(fn: F_) -> F_:
    """Make ``fn`` one call_function node under torch.fx, wherever it is called from.

    ``torch.fx.wrap`` only patches the name in one module's globals; a user's model that
    imports the function into its own module would be traced through it op by op.
    """

    @functools.wraps(fn)
    def leaf(*args, **kwargs):
        proxies: list[torch.fx.Proxy] = []
        torch.fx.node.map_aggregate((args, kwargs), lambda a: proxies.append(a) if isinstance(a, torch.fx.Proxy) else None)
        if proxies:
            return proxies[0].tracer.create_proxy("call_function", leaf, args, kwargs)
        return fn(*args, **kwargs)

    return leaf  # type: ignore[return-value]


def region_softmax(region_logits: Tensor) -> Tensor:
    """Softmax over the 4 positions of each region; input ``(B, Ci*4, h, w)``, channel-major."""
    return region_logits.unflatten(1, (-1, RATE * RATE)).softmax(2).flatten(1, 2)


def normalize_regions(region_logits: Tensor, norm: str) -> Tensor:
    """Apply one of the paper's Table 4 normalisations to region-layout logits."""
    if norm == "sigmoid":
        return region_logits.sigmoid()
    if norm == "softmax":
        return region_softmax(region_logits)
    if norm == "sigmoid_softmax":
        return region_softmax(region_logits.sigmoid())
    raise ValueError(f"unknown index normalisation {norm!r}")


def regions_to_map(region_values: Tensor, like: Tensor) -> Tensor:
    """Rearrange ``(B, Ci*4, h, w)`` (position j of channel c at c*4+j) to a map of ``like``'s size.

    An odd last row/column of ``like`` (outside every 2x2 region) gets index 0.
    """
    return pad_to_odd(F.pixel_shuffle(region_values, RATE), like)


def pad_to_odd(x: Tensor, like: Tensor) -> Tensor:
    """Zero-pad an even-sized ``x`` by the odd remainder of ``like``'s height and width."""
    return F.pad(x, (0, like.shape[-1] % RATE, 0, like.shape[-2] % RATE))


@fx_leaf
def indexed_pool(x: Tensor, enc_map: Tensor) -> Tensor:
    """IP: the index-weighted sum of every 2x2 region, ``avg_pool2d(X * I_enc, 2) * 4``."""
    return F.avg_pool2d(x * enc_map, RATE) * float(RATE * RATE)


@fx_leaf
def indexed_upsample(d: Tensor, dec_map: Tensor) -> Tensor:
    """IU: ``nearest_upsample(D, 2) * I_dec``, at the decoder map's (pre-pooling) size."""
    return pad_to_odd(F.interpolate(d, scale_factor=float(RATE), mode="nearest"), dec_map) * dec_map
