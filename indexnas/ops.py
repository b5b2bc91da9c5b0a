"""Indexed pooling (IP), indexed upsampling (IU) and index-map normalisation, at any rate k >= 2.

A rate-k operator works on k x k regions at stride k (the paper's IP sums I(x)x over a region E of
k x k; its experiments use k = 2, the default everywhere here). Index maps have the size of the
feature they index, ``(B, 1 or C, H, W)``; the last ``H % k`` rows and ``W % k`` columns lie outside
every region and have index 0. So IP floors like ``max_pool2d`` without ``ceil_mode``, and IU restores
the original size with those rows/columns zero, as ``max_unpool2d(output_size=...)`` does. IP and IU
are torch.fx leaf functions, so a traced model shows one readable node per operator; nothing here
reads a Python int off a tensor.

In eager mode IP and IU are autograd Functions: their kernels never build the nearest-upsampled
feature, and they save for backward only the inputs and maps their gradients need (IU is IP's
adjoint, so each backward is the other operator). While a graph is captured (torch.export,
torch.compile, jit tracing) they take the plain formulas of docs/indexnet-spec.md, which every exporter understands.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor

RATE = 2  # the paper's 2x2 region, stride 2: the default rate of every operator and index module
CPU_BLOCK_BYTES = 2**21  # temporaries of the eager CPU kernels, per block of channels
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


def check_rate(rate: int) -> int:
    """A rate is an int k >= 2 (k x k regions at stride k)."""
    if isinstance(rate, bool) or not isinstance(rate, int) or rate < 2:
        raise ValueError(f"an IndexNet rate is an int >= 2 (k x k regions at stride k), got {rate!r}")
    return rate


def region_softmax(region_logits: Tensor, rate: int = RATE) -> Tensor:
    """Softmax over the k*k positions of each region; input ``(B, Ci*k*k, h, w)``, channel-major."""
    return region_logits.unflatten(1, (-1, rate * rate)).softmax(2).flatten(1, 2)


def normalize_regions(region_logits: Tensor, norm: str, rate: int = RATE) -> Tensor:
    """Apply one of the paper's Table 4 normalisations to region-layout logits."""
    if norm == "sigmoid":
        return region_logits.sigmoid()
    if norm == "softmax":
        return region_softmax(region_logits, rate)
    if norm == "sigmoid_softmax":
        return region_softmax(region_logits.sigmoid(), rate)
    raise ValueError(f"unknown index normalisation {norm!r}")


def index_maps(region_logits: Tensor, enc_norm: str, dec_norm: str, like: Tensor, rate: int = RATE) -> tuple[Tensor, Tensor]:
    """Both index maps ``(I_enc, I_dec)`` at ``like``'s size from one set of rate-``rate`` region logits.

    The sigmoid the two default normalisations share is computed once, and equal
    normalisations give one map object for both.
    """
    sigmoid = region_logits.sigmoid() if {"sigmoid", "sigmoid_softmax"} & {enc_norm, dec_norm} else None

    def normalised(norm: str) -> Tensor:
        if sigmoid is not None and norm == "sigmoid":
            return sigmoid
        if sigmoid is not None and norm == "sigmoid_softmax":
            return region_softmax(sigmoid, rate)
        return normalize_regions(region_logits, norm, rate)

    enc = regions_to_map(normalised(enc_norm), like, rate)
    return enc, enc if dec_norm == enc_norm else regions_to_map(normalised(dec_norm), like, rate)


def regions_to_map(region_values: Tensor, like: Tensor, rate: int = RATE) -> Tensor:
    """Rearrange ``(B, Ci*k*k, h, w)`` (position j of channel c at c*k*k+j, j = row*k + column) to a map
    of ``like``'s size. The last ``H % k`` rows and ``W % k`` columns of ``like`` (outside every region) get index 0.
    """
    regions = region_values.unflatten(1, (-1, rate, rate))  # (B, Ci, i, j, h, w)
    pixels = regions.permute(0, 1, 4, 2, 5, 3).flatten(4, 5).flatten(2, 3)  # (B, Ci, h*i, w*j)
    return pad_remainder(pixels, like, rate)


def pad_remainder(x: Tensor, like: Tensor, rate: int = RATE) -> Tensor:
    """Zero-pad ``x`` (a multiple of ``rate`` in size) by the remainder of ``like``'s height and width modulo ``rate``."""
    pad_h, pad_w = like.shape[-2] % rate, like.shape[-1] % rate
    if type(pad_h) is type(pad_w) is int and pad_h == pad_w == 0 and not _traced():
        return x  # F.pad would copy; a graph (fx proxies, symbolic sizes) must not branch on the size
    return F.pad(x, (0, pad_w, 0, pad_h))


def _traced() -> bool:
    """Whether a graph is being captured (export, dynamo, jit): the plain formulas then keep graphs readable."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


def _regions(t: Tensor, h: int, w: int, rate: int) -> Tensor:
    """``t[..., :k*h, :k*w]`` viewed as ``(..., h, k, w, k)``: every k x k region, no copy."""
    return t[..., : rate * h, : rate * w].unflatten(-1, (w, rate)).unflatten(-3, (h, rate))


def _channel_blocks(channels: int, channel_bytes: int, device: torch.device) -> list[slice]:
    """Blocks of channels whose temporaries take about ``CPU_BLOCK_BYTES``: on CPU they then stay in
    cache and below malloc's mmap threshold (no page faults on every call); other devices take one."""
    step = max(1, CPU_BLOCK_BYTES // max(channel_bytes, 1)) if device.type == "cpu" else max(channels, 1)
    return [slice(start, min(start + step, channels)) for start in range(0, channels, step)]


def _block(t: Tensor, channels: slice) -> Tensor:
    """Channels ``channels`` (dimension -5 of a region view) of ``t``, or all of a broadcast one."""
    return t if t.shape[-5] == 1 else t[..., channels, :, :, :, :]


def _pool_kernel(x: Tensor, enc_map: Tensor, rate: int) -> Tensor:
    """IP's eager kernel: per block of channels, add each region's k weighted rows, then its k columns.

    Every loop runs over a contiguous inner dimension. Half and bfloat16 inputs are summed in float32.
    """
    shape = torch.broadcast_shapes(x.shape, enc_map.shape)
    h, w = shape[-2] // rate, shape[-1] // rate
    dtype = torch.result_type(x, enc_map)
    sum_dtype = torch.promote_types(dtype, torch.float32)
    out = x.new_empty((*shape[:-2], h, w), dtype=dtype)
    out_regions = out.unsqueeze(-2).unsqueeze(-1)  # (..., C, h, 1, w, 1): blocks index it like the inputs
    x_regions, map_regions = _regions(x, h, w, rate), _regions(enc_map, h, w, rate)
    channel_bytes = out[..., 0, :, :].numel() * rate * sum_dtype.itemsize
    for channels in _channel_blocks(shape[-3], channel_bytes, x.device):
        xs, maps = _block(x_regions, channels), _block(map_regions, channels)
        rows = xs.new_empty(torch.broadcast_shapes(xs[..., 0, :, :].shape, maps[..., 0, :, :].shape), dtype=sum_dtype)
        torch.mul(xs[..., 0, :, :], maps[..., 0, :, :], out=rows)
        for i in range(1, rate):
            rows.addcmul_(xs[..., i, :, :], maps[..., i, :, :])
        target = _block(out_regions, channels)[..., 0, :, 0]
        if rate == 2:
            torch.add(rows[..., 0], rows[..., 1], out=target)
        else:
            target.copy_(rows.sum(-1))
    return out


def _upsample_kernel(d: Tensor, dec_map: Tensor, rate: int) -> Tensor:
    """IU's eager kernel: a broadcast multiply writing the output's regions; the upsampled D never exists.

    On CPU, each block of D's channels is first repeated along the width, because CPU loops only
    vectorise over a contiguous inner dimension; elsewhere the repeat stays a stride-0 view.
    """
    h, w = d.shape[-2:]
    height, width = rate * h + dec_map.shape[-2] % rate, rate * w + dec_map.shape[-1] % rate
    shape = torch.broadcast_shapes((*d.shape[:-2], height, width), dec_map.shape)
    out = d.new_empty(shape, dtype=torch.result_type(d, dec_map))
    out_regions, map_regions = _regions(out, h, w, rate), _regions(dec_map, h, w, rate)
    d_regions = d.unsqueeze(-2).unsqueeze(-1)  # (..., C, h, 1, w, 1)
    channel_bytes = d[..., 0, :, :].numel() * rate * d.element_size()
    for channels in _channel_blocks(shape[-3], channel_bytes, d.device):
        d_wide = _block(d_regions, channels).expand(*[-1] * (d.dim() + 1), rate)
        if d.device.type == "cpu":
            d_wide = d_wide.contiguous()
        torch.mul(_block(map_regions, channels), d_wide, out=_block(out_regions, channels))
    out[..., rate * h :, :] = 0  # the last H % k rows and W % k columns, outside every region
    out[..., :, rate * w :] = 0
    return out


def _reduced(grad: Tensor, like: tuple[torch.Size, torch.dtype]) -> Tensor:
    """A gradient summed over the dimensions its input was broadcast along, in the input's dtype."""
    shape, dtype = like
    return grad.sum_to_size(shape).to(dtype)


class _IndexedPool(torch.autograd.Function):
    """IP saving only what its gradients need, of ``(x, enc_map)``: dX = IU(grad, I_enc), dI_enc = IU(grad, X)."""

    @staticmethod
    def forward(ctx, x: Tensor, enc_map: Tensor, rate: int) -> Tensor:
        grad_x, grad_map, _ = ctx.needs_input_grad
        ctx.save_for_backward(x if grad_map else None, enc_map if grad_x else None)
        ctx.inputs = [(t.shape, t.dtype) for t in (x, enc_map)]
        ctx.rate = rate
        return _pool_kernel(x, enc_map, rate)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        x, enc_map = ctx.saved_tensors
        grad_x = _reduced(_upsample(grad, enc_map, ctx.rate), ctx.inputs[0]) if ctx.needs_input_grad[0] else None
        grad_map = _reduced(_upsample(grad, x, ctx.rate), ctx.inputs[1]) if ctx.needs_input_grad[1] else None
        return grad_x, grad_map, None


class _IndexedUpsample(torch.autograd.Function):
    """IU saving only what its gradients need, of ``(d, dec_map)``: dD = IP(grad, I_dec), dI_dec = IU(D, grad)."""

    @staticmethod
    def forward(ctx, d: Tensor, dec_map: Tensor, rate: int) -> Tensor:
        grad_d, grad_map, _ = ctx.needs_input_grad
        ctx.save_for_backward(d if grad_map else None, dec_map if grad_d else None)
        ctx.inputs = [(t.shape, t.dtype) for t in (d, dec_map)]
        ctx.rate = rate
        return _upsample_kernel(d, dec_map, rate)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        d, dec_map = ctx.saved_tensors
        grad_d = _reduced(_pool(grad, dec_map, ctx.rate), ctx.inputs[0]) if ctx.needs_input_grad[0] else None
        grad_map = _reduced(_upsample(d, grad, ctx.rate), ctx.inputs[1]) if ctx.needs_input_grad[1] else None
        return grad_d, grad_map, None


def _pool(x: Tensor, enc_map: Tensor, rate: int) -> Tensor:
    """IP as its formula (docs/indexnet-spec.md) while a graph is captured, else as the autograd Function."""
    if _traced():
        return F.avg_pool2d(x * enc_map, rate) * float(rate * rate)
    return _IndexedPool.apply(x, enc_map, rate)


def _upsample(d: Tensor, dec_map: Tensor, rate: int) -> Tensor:
    """IU as its formula (docs/indexnet-spec.md) while a graph is captured, else as the autograd Function."""
    if _traced():
        return pad_remainder(F.interpolate(d, scale_factor=float(rate), mode="nearest"), dec_map, rate) * dec_map
    return _IndexedUpsample.apply(d, dec_map, rate)


@fx_leaf
def indexed_pool(x: Tensor, enc_map: Tensor, rate: int = RATE) -> Tensor:
    """IP: the index-weighted sum of every k x k region, ``avg_pool2d(X * I_enc, k) * k**2``."""
    return _pool(x, enc_map, check_rate(rate))


@fx_leaf
def indexed_upsample(d: Tensor, dec_map: Tensor, rate: int = RATE) -> Tensor:
    """IU: ``nearest_upsample(D, k) * I_dec``, at the decoder map's (pre-pooling) size."""
    return _upsample(d, dec_map, check_rate(rate))


@fx_leaf
def coarsen_map(index_map: Tensor, factor: int) -> Tensor:
    """A decoder map of a rate-k transition at ``factor`` times lower resolution: each ``factor`` x ``factor``
    block's maximum. An up that undoes only the lower part of a transition (a x4 down undone by two x2 ups:
    the first of them) takes its map from here: one-hot maps stay one-hot, uniform maps uniform."""
    return F.max_pool2d(index_map, factor)


@fx_leaf
def max_index_weighted(x: Tensor, indices: Tensor) -> Tensor:
    """X weighted by a max pooling's encoder index map (1 at each region's argmax, 0 elsewhere), given
    ``max_pool2d(X, return_indices=True)``'s indices: the max-pooling form of ``I_enc * X``. A host that
    concatenates this into a skip gets ``I_enc * X`` there once surgery puts IndexNet at that pool."""
    mask = torch.zeros_like(x).flatten(2).scatter(2, indices.flatten(2), 1.0).view_as(x)
    return x * mask
