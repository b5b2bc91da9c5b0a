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


def index_maps(region_logits: Tensor, enc_norm: str, dec_norm: str, like: Tensor) -> tuple[Tensor, Tensor]:
    """Both index maps ``(I_enc, I_dec)`` at ``like``'s size from one set of region logits.

    The sigmoid the two default normalisations share is computed once, and equal
    normalisations give one map object for both.
    """
    sigmoid = region_logits.sigmoid() if {"sigmoid", "sigmoid_softmax"} & {enc_norm, dec_norm} else None

    def normalised(norm: str) -> Tensor:
        if sigmoid is not None and norm == "sigmoid":
            return sigmoid
        if sigmoid is not None and norm == "sigmoid_softmax":
            return region_softmax(sigmoid)
        return normalize_regions(region_logits, norm)

    enc = regions_to_map(normalised(enc_norm), like)
    return enc, enc if dec_norm == enc_norm else regions_to_map(normalised(dec_norm), like)


def regions_to_map(region_values: Tensor, like: Tensor) -> Tensor:
    """Rearrange ``(B, Ci*4, h, w)`` (position j of channel c at c*4+j) to a map of ``like``'s size.

    An odd last row/column of ``like`` (outside every 2x2 region) gets index 0.
    """
    regions = region_values.unflatten(1, (-1, RATE, RATE))  # (B, Ci, i, j, h, w)
    pixels = regions.permute(0, 1, 4, 2, 5, 3).flatten(4, 5).flatten(2, 3)  # (B, Ci, h*i, w*j)
    return pad_to_odd(pixels, like)


def pad_to_odd(x: Tensor, like: Tensor) -> Tensor:
    """Zero-pad an even-sized ``x`` by the odd remainder of ``like``'s height and width."""
    pad_h, pad_w = like.shape[-2] % RATE, like.shape[-1] % RATE
    if type(pad_h) is type(pad_w) is int and pad_h == pad_w == 0 and not _traced():
        return x  # F.pad would copy; a graph (fx proxies, symbolic sizes) must not branch on the size
    return F.pad(x, (0, pad_w, 0, pad_h))


def _traced() -> bool:
    """Whether a graph is being captured (export, dynamo, jit): the plain formulas then keep graphs readable."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


def _regions(t: Tensor, h: int, w: int) -> Tensor:
    """``t[..., :2h, :2w]`` viewed as ``(..., h, RATE, w, RATE)``: every 2x2 region, no copy."""
    return t[..., : RATE * h, : RATE * w].unflatten(-1, (w, RATE)).unflatten(-3, (h, RATE))


def _pool_kernel(x: Tensor, enc_map: Tensor) -> Tensor:
    """IP's eager kernel: add each region's two weighted rows, then its two columns.

    Every loop runs over a contiguous inner dimension; the one temporary is half of ``X``'s size.
    Half and bfloat16 inputs are summed in float32.
    """
    shape = torch.broadcast_shapes(x.shape, enc_map.shape)
    h, w = shape[-2] // RATE, shape[-1] // RATE
    dtype = torch.result_type(x, enc_map)
    x_regions, map_regions = _regions(x, h, w), _regions(enc_map, h, w)
    rows = x.new_empty((*shape[:-2], h, w, RATE), dtype=torch.promote_types(dtype, torch.float32))
    torch.mul(x_regions[..., 0, :, :], map_regions[..., 0, :, :], out=rows)
    rows.addcmul_(x_regions[..., 1, :, :], map_regions[..., 1, :, :])
    return (rows[..., 0] + rows[..., 1]).to(dtype)


def _upsample_kernel(d: Tensor, dec_map: Tensor) -> Tensor:
    """IU's eager kernel: one broadcast multiply writing the output's regions; the upsampled D never exists.

    On CPU, D is first repeated along the width (half the output's size) because CPU loops only
    vectorise over a contiguous inner dimension; elsewhere the repeat stays a stride-0 view.
    """
    h, w = d.shape[-2:]
    height, width = RATE * h + dec_map.shape[-2] % RATE, RATE * w + dec_map.shape[-1] % RATE
    shape = torch.broadcast_shapes((*d.shape[:-2], height, width), dec_map.shape)
    out = d.new_empty(shape, dtype=torch.result_type(d, dec_map))
    d_wide = d[..., None].expand(*d.shape, RATE)
    if d.device.type == "cpu":
        d_wide = d_wide.contiguous()
    torch.mul(_regions(dec_map, h, w), d_wide[..., :, None, :, :], out=_regions(out, h, w))
    out[..., RATE * h :, :] = 0  # the odd last row/column, outside every region
    out[..., :, RATE * w :] = 0
    return out


def _reduced(grad: Tensor, like: tuple[torch.Size, torch.dtype]) -> Tensor:
    """A gradient summed over the dimensions its input was broadcast along, in the input's dtype."""
    shape, dtype = like
    return grad.sum_to_size(shape).to(dtype)


class _IndexedPool(torch.autograd.Function):
    """IP saving only what its gradients need, of ``(x, enc_map)``: dX = IU(grad, I_enc), dI_enc = IU(grad, X)."""

    @staticmethod
    def forward(ctx, x: Tensor, enc_map: Tensor) -> Tensor:
        grad_x, grad_map = ctx.needs_input_grad
        ctx.save_for_backward(x if grad_map else None, enc_map if grad_x else None)
        ctx.inputs = [(t.shape, t.dtype) for t in (x, enc_map)]
        return _pool_kernel(x, enc_map)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        x, enc_map = ctx.saved_tensors
        grad_x = _reduced(_upsample(grad, enc_map), ctx.inputs[0]) if ctx.needs_input_grad[0] else None
        grad_map = _reduced(_upsample(grad, x), ctx.inputs[1]) if ctx.needs_input_grad[1] else None
        return grad_x, grad_map


class _IndexedUpsample(torch.autograd.Function):
    """IU saving only what its gradients need, of ``(d, dec_map)``: dD = IP(grad, I_dec), dI_dec = IU(D, grad)."""

    @staticmethod
    def forward(ctx, d: Tensor, dec_map: Tensor) -> Tensor:
        grad_d, grad_map = ctx.needs_input_grad
        ctx.save_for_backward(d if grad_map else None, dec_map if grad_d else None)
        ctx.inputs = [(t.shape, t.dtype) for t in (d, dec_map)]
        return _upsample_kernel(d, dec_map)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        d, dec_map = ctx.saved_tensors
        grad_d = _reduced(_pool(grad, dec_map), ctx.inputs[0]) if ctx.needs_input_grad[0] else None
        grad_map = _reduced(_upsample(d, grad), ctx.inputs[1]) if ctx.needs_input_grad[1] else None
        return grad_d, grad_map


def _pool(x: Tensor, enc_map: Tensor) -> Tensor:
    if _traced():
        return F.avg_pool2d(x * enc_map, RATE) * float(RATE * RATE)
    return _IndexedPool.apply(x, enc_map)


def _upsample(d: Tensor, dec_map: Tensor) -> Tensor:
    if _traced():
        return pad_to_odd(F.interpolate(d, scale_factor=float(RATE), mode="nearest"), dec_map) * dec_map
    return _IndexedUpsample.apply(d, dec_map)


@fx_leaf
def indexed_pool(x: Tensor, enc_map: Tensor) -> Tensor:
    """IP: the index-weighted sum of every 2x2 region, ``avg_pool2d(X * I_enc, 2) * 4``."""
    return _pool(x, enc_map)


@fx_leaf
def indexed_upsample(d: Tensor, dec_map: Tensor) -> Tensor:
    """IU: ``nearest_upsample(D, 2) * I_dec``, at the decoder map's (pre-pooling) size."""
    return _upsample(d, dec_map)
