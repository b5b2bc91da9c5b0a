"""What the tracer must not look inside, and what each op does to the resolution.

Two user-extendable registries, plain dicts whose keys are classes, functions or dotted names:
- ``LEAF_MODULES`` / ``LEAF_FUNCTIONS``: kept as one opaque node by torch.fx, each with the reason.
  timm's own notrace registry is consulted too. A leaf hides the downs/ups inside it: prefer none.
- ``RESAMPLERS``: a handler per op type (module class, function, or ``"Tensor.method"``) that says
  whether one call of it lowers or raises the resolution (Torch-Pruning style). An op with no
  handler that still changes the size is reported as ``unknown`` with a warning, never dropped.
- ``POINTWISE``: ops that keep every pixel where it is (1x1 convs, norms, activations), each with the
  reason: a pad that reaches a strided op through them folds into that op's transition.
"""

from __future__ import annotations

import operator
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx import Node

from indexnas import ops
from indexnas.errors import UserError

Size = tuple[int, int]

# ---------------------------------------------------------------------------------------------
# Leaf modules and functions (torch.fx keeps them as one node)
# ---------------------------------------------------------------------------------------------

# Keys: a class, or "package.module.ClassName" for classes of optional packages (not imported).
# Seeded with layers that decide on ``self.training`` in Python: traced through, fx would bake in
# the mode of the trace (no stochastic depth when training); as leaves they keep both behaviours.
_MODE_AT_CALL_TIME = "decides on self.training when called; as a leaf the traced model keeps train-mode behaviour"
LEAF_MODULES: dict[type | str, str] = {
    "timm.layers.drop.DropPath": _MODE_AT_CALL_TIME,
    "timm.layers.drop.DropBlock2d": _MODE_AT_CALL_TIME,
    "torchvision.ops.stochastic_depth.StochasticDepth": _MODE_AT_CALL_TIME,
    "torchvision.ops.drop_block.DropBlock2d": _MODE_AT_CALL_TIME,
}

# Keys: a function object, or "package.module.function" for optional packages (used once imported);
# autowrapped wherever a traced forward refers to it by global name.
_CASTS_A_SIZE = "casts a size to a Python number (int(proxy) fails under fx); as a leaf it runs on the real size"
LEAF_FUNCTIONS: dict[Callable[..., Any] | str, str] = {
    ops.indexed_pool: "indexnas IP operator: one readable node per IndexNet pooling",
    ops.indexed_upsample: "indexnas IU operator: its size argument is read from a tensor",
    ops.max_index_weighted: "a skip weighted by a max pool's index map: the rewrite re-weights it by I_enc",
    ops.coarsen_map: "indexnas: the part of a rate-k decoder map an up below the transition's input takes",
    "transformers.utils.generic.torch_int": _CASTS_A_SIZE,  # HF position-embedding interpolation (DPT, ViT)
    "transformers.utils.generic.torch_float": _CASTS_A_SIZE,
}


def register_leaf_module(key: type | str, reason: str) -> None:
    """Make torch.fx keep instances of ``key`` (a class or its dotted name) as one node."""
    if not (isinstance(key, type) and issubclass(key, nn.Module)) and not (isinstance(key, str) and "." in key):
        raise UserError(
            f"a leaf module entry must be an nn.Module subclass or 'package.module.Class', got {key!r}",
            "pass the class itself, e.g. register_leaf_module(MyBlock, 'branches on x.shape')",
        )
    LEAF_MODULES[key] = reason


def register_leaf_function(function: Callable[..., Any], reason: str) -> None:
    """Make torch.fx record calls to ``function`` as one node instead of tracing into it."""
    if not callable(function) or not hasattr(function, "__name__"):
        raise UserError(f"a leaf function entry must be a named function, got {function!r}")
    LEAF_FUNCTIONS[function] = reason


def class_path(cls: type) -> str:
    """The dotted name of a class, as used for string keys in the registries."""
    return f"{cls.__module__}.{cls.__qualname__}"


def _timm_notrace() -> tuple[set[type], set[Callable[..., Any]]]:
    try:
        from timm.layers import _fx as timm_fx
    except ImportError:  # timm is optional for the tracer
        return set(), set()
    return set(timm_fx.get_notrace_modules()), set(timm_fx.get_notrace_functions())


def leaf_reason(module: nn.Module) -> str | None:
    """Why ``module`` is a leaf (its class or a base class is registered), or None.

    timm's notrace entries are honoured only for modules that hold no resampling layer: a leaf
    would hide a strided conv (timm's NormFreeBlock) from the pair finder, and our tracer can
    usually go through them; the tracer falls back to timm's entry if that fails.
    """
    timm_modules, _ = _timm_notrace()
    for cls in type(module).__mro__:
        for key in (cls, class_path(cls)):
            if key in LEAF_MODULES:
                return LEAF_MODULES[key]
        if cls in timm_modules and not hides_resampling(module):
            return "listed in timm's own fx notrace registry (timm.layers.register_notrace_module)"
    if _huggingface_drop_path(type(module)):
        return _MODE_AT_CALL_TIME
    return None


def _huggingface_drop_path(cls: type) -> bool:
    """HuggingFace copies one stochastic-depth class into each model file (SegformerDropPath,
    ConvNextDropPath, ... 44 of them): all decide on ``self.training`` like timm's DropPath."""
    return cls.__module__.startswith("transformers.models.") and cls.__name__.endswith("DropPath")


def timm_leaf_fallback(module: nn.Module) -> bool:
    """Whether timm lists ``module``'s class as not traceable (a leaf to fall back to)."""
    timm_modules, _ = _timm_notrace()
    return any(cls in timm_modules for cls in type(module).__mro__)


_RESAMPLING_LAYERS = (nn.Upsample, nn.ConvTranspose2d, nn.MaxUnpool2d, nn.PixelShuffle, nn.PixelUnshuffle)


def hides_resampling(module: nn.Module) -> bool:
    """Whether a module holds a layer that changes resolution (strided conv/pool, upsampling)."""
    for layer in module.modules():
        if isinstance(layer, _RESAMPLING_LAYERS):
            return True
        stride = getattr(layer, "stride", 1)
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)) and max(_int_pair(stride) or (1, 1)) > 1:
            return True
    return False


def leaf_functions() -> tuple[Callable[..., Any], ...]:
    """Every function to autowrap: ours (dotted names of modules already imported) plus timm's notrace functions."""
    _, timm_functions = _timm_notrace()
    functions = [key if callable(key) else _imported(key) for key in LEAF_FUNCTIONS]
    return tuple(dict.fromkeys(f for f in [*functions, *timm_functions] if f is not None))


def size_casts() -> tuple[Callable[..., Any], ...]:
    """The leaf functions that only cast a size (a condition on their result still reads sizes)."""
    functions = (key if callable(key) else _imported(key) for key, why in LEAF_FUNCTIONS.items() if why == _CASTS_A_SIZE)
    return tuple(f for f in functions if f is not None)


def _imported(dotted: str) -> Callable[..., Any] | None:
    """The function a dotted name refers to if its module is imported (a model using it imported it)."""
    module, _, name = dotted.rpartition(".")
    found = getattr(sys.modules.get(module), name, None)
    return found if callable(found) else None


# ---------------------------------------------------------------------------------------------
# Resampling handlers: what one op call does to the resolution
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resampling:
    """The verdict on one op call: ``down``/``up`` (a transition) or ``ignore`` (with ``why``)."""

    direction: str  # "down" | "up" | "ignore"
    kind: str  # "conv", "maxpool", "avgpool", "interpolate", "upsample", "unpool", ...
    mode: str = ""  # interpolation mode for interpolate/upsample
    why: str = ""  # for "ignore": the reason shown to the user


@dataclass(frozen=True)
class OpCall:
    """One call of an op in the traced graph, with the spatial sizes shape propagation found."""

    node: Node
    module: nn.Module | None  # the called module for call_module nodes
    in_size: Size  # spatial size of the data input (first argument)
    out_size: Size | None  # spatial size of the output; None when the output is not 4-D

    def arg(self, index: int, name: str, default: Any = None) -> Any:
        """A call argument by position or keyword (function and method calls)."""
        if name in self.node.kwargs:
            return self.node.kwargs[name]
        return self.node.args[index] if len(self.node.args) > index else default

    @property
    def grows(self) -> bool:
        return self.out_size is not None and _area(self.out_size) > _area(self.in_size)

    @property
    def shrinks(self) -> bool:
        return self.out_size is not None and _area(self.out_size) < _area(self.in_size)


Handler = Callable[[OpCall], "Resampling | None"]
RESAMPLERS: dict[object, Handler] = {}


def register_resampler(key: object, handler: Handler) -> None:
    """Say what calls of ``key`` (module class, dotted class name, function, or ``"Tensor.method"``) do."""
    if not callable(handler):
        raise UserError(f"the handler for {key!r} must be callable, got {handler!r}")
    RESAMPLERS[key] = handler


def find_handler(node: Node, module: nn.Module | None) -> Handler | None:
    """The handler for a call: by module class (walking base classes), function or method name."""
    if node.op == "call_module" and module is not None:
        for cls in type(module).__mro__:
            for key in (cls, class_path(cls)):
                if key in RESAMPLERS:
                    return RESAMPLERS[key]
        return None
    if node.op == "call_method":
        return RESAMPLERS.get(f"Tensor.{node.target}")
    if node.op == "call_function":
        try:
            return RESAMPLERS.get(node.target)
        except TypeError:  # an unhashable target
            return None
    return None


def reads_first_argument(handler: Handler | None) -> bool:
    """Whether the op's image is its first argument (resamplers), not its largest input (elementwise)."""
    return handler is not None and handler is not _neutral


def _area(size: Size) -> int:
    return size[0] * size[1]


def _int_pair(value: Any) -> tuple[int, int] | None:
    """A constant int or pair of ints from a call argument; None if it is a traced value."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return (value[0], value[1])
    return None


GLOBAL_POOL = "global_pool"
PYRAMID_POOL = "pyramid_pool"
BROADCAST = "broadcast"
ALIGNMENT = "alignment"


def _global(call: OpCall) -> Resampling:
    return Resampling(
        "ignore",
        GLOBAL_POOL,
        why="global pool to 1x1 (squeeze-and-excitation gate or image pooling): not a transition",
    )


def _strided(kind: str, direction: str, stride: Any, call: OpCall) -> Resampling | None:
    pair = _int_pair(stride)
    if pair is None:  # a stride computed from a tensor: judge by the sizes
        if direction == "down" and call.out_size == (1, 1):
            return _global(call)
        moved = call.shrinks if direction == "down" else call.grows
        return Resampling(direction, kind) if moved else None
    if max(pair) <= 1:
        return None  # stride 1: at most a padding-sized change
    if direction == "down" and call.out_size == (1, 1) and min(call.in_size) > max(pair):
        return _global(call)
    return Resampling(direction, kind)


def _conv(call: OpCall) -> Resampling | None:
    stride = call.module.stride if call.module is not None else call.arg(3, "stride", 1)
    return _strided("conv", "down", stride, call)


def _conv_transpose(call: OpCall) -> Resampling | None:
    stride = call.module.stride if call.module is not None else call.arg(3, "stride", 1)
    return _strided("convtranspose", "up", stride, call)


def _pool(kind: str) -> Handler:
    def handler(call: OpCall) -> Resampling | None:
        if call.module is not None:
            stride = call.module.stride if call.module.stride is not None else call.module.kernel_size
        else:
            stride = call.arg(2, "stride") or call.arg(1, "kernel_size")
        return _strided(kind, "down", stride, call)

    return handler


def _adaptive_pool(call: OpCall) -> Resampling | None:
    if call.out_size in (None, (1, 1)):
        return _global(call)
    if call.out_size == call.in_size:
        return None
    return Resampling(
        "ignore",
        PYRAMID_POOL,
        why=f"adaptive pool to a fixed {call.out_size[0]}x{call.out_size[1]} grid (pyramid pooling): not a transition",
    )


def _spatial_reduction(call: OpCall) -> Resampling | None:
    """mean/amax/sum over H and W: a global pool when the output has no spatial extent left."""
    if call.out_size is None or call.out_size == (1, 1):
        return _global(call) if call.in_size != (1, 1) else None
    return None


def _resize(kind: str) -> Handler:
    def handler(call: OpCall) -> Resampling | None:
        mode = call.module.mode if call.module is not None else call.arg(3, "mode", "nearest")
        mode = mode if isinstance(mode, str) else ""
        if call.out_size is not None and call.out_size != call.in_size and not significant(call):
            return Resampling("ignore", ALIGNMENT, why=f"resizes {call.in_size} -> {call.out_size}, less than "
                                                       "x1.5: size alignment, not a transition")
        if call.grows:
            return Resampling("up", kind, mode=mode)
        if call.shrinks:
            if call.out_size == (1, 1):
                return _global(call)
            return Resampling("down", "interpolate", mode=mode)
        return None

    return handler


def _always(direction: str, kind: str) -> Handler:
    def handler(call: OpCall) -> Resampling | None:
        moved = call.grows if direction == "up" else call.shrinks
        return Resampling(direction, kind) if moved else None

    return handler


def _broadcast(call: OpCall) -> Resampling | None:
    if call.grows:
        return Resampling(
            "ignore", BROADCAST, why=f"broadcasts a {call.in_size[0]}x{call.in_size[1]} tensor: not an upsampling"
        )
    return None


def _neutral(call: OpCall) -> Resampling | None:
    """Pads, crops and elementwise ops: small size changes that are never transitions."""
    return None


def _coarsened_map(call: OpCall) -> Resampling:
    """The decoder map an up below a transition's input resolution takes (`ops.coarsen_map`): a map, not a feature."""
    return Resampling("ignore", "index_map", why="an index map coarsened for an up that undoes part of a transition: "
                                                 "not a transition")


def _keeps_first_argument(call: OpCall) -> Resampling | None:
    """Casts and copies (``mask.type_as(x)``, ``.to(x)``): the output is the first argument, resized by nothing."""
    return None


PADS: set[object] = {F.pad, nn.ZeroPad2d, nn.ConstantPad2d, nn.ReflectionPad2d, nn.ReplicationPad2d, nn.CircularPad2d}


def is_pad(node: Node, module: nn.Module | None) -> bool:
    """Whether a call only pads its input (folded into the down it feeds)."""
    if module is not None:
        return any(cls in PADS for cls in type(module).__mro__)
    return node.op == "call_function" and node.target in PADS


# Ops that keep every pixel where it is: a pad that reaches a strided op through them is that op's padding
# (the IndexNet authors' MobileNetV2 pads a block's input before its 1x1 expansion conv, BN and ReLU6, then
# runs the 3x3 stride-2 depthwise conv unpadded), so the transition is measured before the pad.
# Keys: a module class (or its dotted name), a function, or "Tensor.method"; values say why.
_PER_PIXEL = "acts on each pixel where it is (no window): a pad before it is still the padding of the strided op it feeds"
_PER_PIXEL_NORM = ("normalises each channel with statistics (running ones in eval mode), pixels stay where they are: "
                   "a pad before it is still the padding of the strided op it feeds")
POINTWISE: dict[object, str] = {
    nn.Conv2d: "a 1x1 conv with stride 1 and no padding mixes channels only (other convs have a window: not pointwise)",
    **dict.fromkeys((nn.BatchNorm2d, nn.SyncBatchNorm, nn.GroupNorm, nn.InstanceNorm2d), _PER_PIXEL_NORM),
    **dict.fromkeys((nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
                     nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Identity, nn.Dropout,
                     nn.Dropout2d), _PER_PIXEL),
    **dict.fromkeys((F.relu, F.relu6, F.leaky_relu, F.elu, F.gelu, F.silu, F.mish, F.hardswish, F.hardsigmoid,
                     F.hardtanh, F.batch_norm, F.group_norm, F.dropout, torch.relu, torch.sigmoid, torch.tanh),
                    _PER_PIXEL),
    **dict.fromkeys(("Tensor.relu", "Tensor.relu_", "Tensor.sigmoid", "Tensor.tanh", "Tensor.clamp",
                     "Tensor.clamp_"), _PER_PIXEL),
}


def register_pointwise(key: object, reason: str) -> None:
    """Say that calls of ``key`` (module class, dotted class name, function, ``"Tensor.method"``) keep every
    pixel where it is, so a pad before them folds into the strided op they feed."""
    POINTWISE[key] = reason


def is_pointwise(node: Node, module: nn.Module | None) -> bool:
    """Whether a call keeps every pixel where it is (see ``POINTWISE``; a conv only when 1x1, stride 1, unpadded)."""
    if module is not None:
        if not any(key in POINTWISE for cls in type(module).__mro__ for key in (cls, class_path(cls))):
            return False
        if isinstance(module, nn.Conv2d):
            return (_int_pair(module.kernel_size), _int_pair(module.stride), _int_pair(module.padding)) == ((1, 1), (1, 1), (0, 0))
        return True
    if node.op == "call_method":
        return f"Tensor.{node.target}" in POINTWISE
    try:
        return node.op == "call_function" and node.target in POINTWISE
    except TypeError:  # an unhashable target
        return False


def unknown_change(call: OpCall) -> Resampling:
    """The verdict for an op without a handler whose output size differs from its input's."""
    if call.shrinks and call.out_size == (1, 1):
        return _global(call)
    return Resampling("down" if call.shrinks else "up", "unknown")


def significant(call: OpCall) -> bool:
    """Whether an unhandled op's size change is a resolution change (>= 1.5x on one axis), not padding."""
    if call.out_size is None:
        return False
    ratios = [max(a, b) / max(min(a, b), 1) for a, b in zip(call.in_size, call.out_size)]
    return max(ratios) >= 1.5


def _seed() -> None:
    for key in (nn.Conv2d, F.conv2d):
        register_resampler(key, _conv)
    for key in (nn.ConvTranspose2d, F.conv_transpose2d):
        register_resampler(key, _conv_transpose)
    for key in (nn.MaxPool2d, F.max_pool2d, F.max_pool2d_with_indices, torch.max_pool2d):
        register_resampler(key, _pool("maxpool"))
    for key in (nn.AvgPool2d, F.avg_pool2d, nn.LPPool2d, F.lp_pool2d):
        register_resampler(key, _pool("avgpool"))
    for key in (
        nn.AdaptiveAvgPool2d,
        nn.AdaptiveMaxPool2d,
        F.adaptive_avg_pool2d,
        F.adaptive_max_pool2d,
        F.adaptive_max_pool2d_with_indices,
    ):
        register_resampler(key, _adaptive_pool)
    for key in ("Tensor.mean", "Tensor.amax", "Tensor.sum", "Tensor.max", torch.mean, torch.amax, torch.sum):
        register_resampler(key, _spatial_reduction)
    register_resampler(F.interpolate, _resize("interpolate"))
    register_resampler(F.upsample, _resize("interpolate"))
    register_resampler(nn.Upsample, _resize("upsample"))  # UpsamplingNearest2d/Bilinear2d subclass it
    for key in (nn.MaxUnpool2d, F.max_unpool2d):
        register_resampler(key, _always("up", "unpool"))
    for key in (nn.PixelShuffle, F.pixel_shuffle):
        register_resampler(key, _always("up", "pixel_shuffle"))
    for key in (nn.PixelUnshuffle, F.pixel_unshuffle):
        register_resampler(key, _always("down", "pixel_unshuffle"))
    for key in ("Tensor.expand", "Tensor.expand_as", "Tensor.repeat", "Tensor.broadcast_to", torch.broadcast_to):
        register_resampler(key, _broadcast)
    neutral = [*PADS, operator.getitem, operator.add, operator.mul, operator.sub, operator.truediv, torch.add, torch.mul, torch.cat]
    for key in neutral:
        register_resampler(key, _neutral)
    for key in ("Tensor.type_as", "Tensor.to", "Tensor.float", "Tensor.half", "Tensor.type", "Tensor.contiguous",
                "Tensor.clone", "Tensor.detach"):
        register_resampler(key, _keeps_first_argument)
    register_resampler(ops.indexed_pool, _always("down", "indexed_pool"))
    register_resampler(ops.indexed_upsample, _always("up", "indexed_upsample"))
    register_resampler(ops.max_index_weighted, _neutral)  # the feature's own size; the indices only select
    register_resampler(ops.coarsen_map, _coarsened_map)
    # timm: "same"-padding layers subclass nn.Conv2d / nn.MaxPool2d and are found through the MRO;
    # CondConv2d is its own class with a stride attribute.
    register_resampler("timm.layers.cond_conv2d.CondConv2d", _conv)


_seed()
