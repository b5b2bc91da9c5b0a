"""Find the resolution changes in a shape-propagated graph and classify them with the registry.

A 4-D tensor counts as an image (N, C, H, W) only while its layout is known to be NCHW: layouts
are followed through permute/transpose (ConvNeXt's channels-last blocks) and lost at reshapes
(token and window layouts), so channels-last or token tensors never look like resolution changes.
"""

from __future__ import annotations

import math
import operator
import warnings
from dataclasses import dataclass, field

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import TensorMetadata

from indexnas.surgery import registry
from indexnas.surgery.pairs import Down, Size, Up
from indexnas.surgery.trace import READABLE

Level = tuple[int, int]
NCHW = (0, 1, 2, 3)  # a layout: which logical axis (0=N, 1=C, 2=H, 3=W) each dimension holds
OTHER = -1  # an axis that is none of N, C, H, W (e.g. torch.stack's new axis)
Layout = tuple[int, ...] | None

_RESHAPES = {"view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze", "view_as", "reshape_as"}
_RESHAPE_FUNCTIONS = {torch.reshape, torch.flatten, torch.squeeze, torch.unsqueeze}
_IMAGE_MODULES = (nn.Conv2d, nn.ConvTranspose2d)
_REDUCTIONS = {"sum", "mean", "amax", "amin", "max", "min", "prod"}


def tensor_meta(node: fx.Node) -> TensorMetadata | None:
    """The node's output metadata from shape propagation (the first tensor of a tuple output)."""
    meta = node.meta.get("tensor_meta")
    while not isinstance(meta, TensorMetadata) and isinstance(meta, (tuple, list)) and meta:
        meta = meta[0]  # TensorMetadata is itself a tuple: test it first
    return meta if isinstance(meta, TensorMetadata) else None


def is_tensor(node: fx.Node) -> bool:
    return tensor_meta(node) is not None


@dataclass
class Shapes:
    """Layouts, spatial sizes, channels and scale levels of a shape-propagated graph's nodes."""

    reference: Size  # the example input's spatial size
    layouts: dict[fx.Node, Layout] = field(default_factory=dict)
    read_from: dict[fx.Node, fx.Node] = field(default_factory=dict)  # a reshape -> the image whose H, W it was given
    levels: dict[fx.Node, Level] = field(default_factory=dict)  # filled by detect()

    def size(self, node: fx.Node) -> Size | None:
        """(H, W) of an NCHW image tensor, else None."""
        meta = tensor_meta(node)
        if meta is None or len(meta.shape) != 4 or self.layouts.get(node) != NCHW:
            return None
        return (int(meta.shape[2]), int(meta.shape[3]))

    def spatial_size(self, node: fx.Node) -> Size | None:
        """(H, W) of an image in any layout (NCHW or channels-last), else None."""
        meta, layout = tensor_meta(node), self.layouts.get(node)
        if meta is None or layout is None or not {2, 3} <= set(layout):
            return None
        return (int(meta.shape[layout.index(2)]), int(meta.shape[layout.index(3)]))

    def channels(self, node: fx.Node) -> int:
        meta = tensor_meta(node)
        return int(meta.shape[1]) if meta is not None and len(meta.shape) == 4 else 0

    def level(self, node: fx.Node) -> Level | None:
        """How many halvings below the input resolution an image is, per axis (None for non-images)."""
        return self.levels.get(node)


def level_of(size: Size, reference: Size) -> Level:
    """The level a size has relative to the input, by rounding (used where no structure tells it)."""
    return tuple(round(math.log2(r / max(s, 1))) for s, r in zip(size, reference))  # type: ignore[return-value]


def _steps(larger: Size, smaller: Size) -> Level:
    """How many halvings one resampling op makes, per axis."""
    return tuple(max(0, round(math.log2(a / max(b, 1)))) for a, b in zip(larger, smaller))  # type: ignore[return-value]


def follow_layouts(gm: fx.GraphModule) -> Shapes:
    """Track which 4-D tensors are NCHW images, starting from the image inputs."""
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder" and _rank(n) == 4]
    if not placeholders:
        raise ValueError("no 4-D image input")
    metas = [tensor_meta(p) for p in placeholders]
    reference = max(((int(m.shape[2]), int(m.shape[3])) for m in metas if m is not None), key=lambda s: s[0] * s[1])
    shapes = Shapes(reference)
    modules = dict(gm.named_modules())
    for node in gm.graph.nodes:
        sized = _sized_from_image(node, shapes.layouts)
        if sized is not None:
            shapes.layouts[node], image = sized
            if _rearranges(node, image) or shapes.spatial_size(image) == shapes.spatial_size(node):
                shapes.read_from[node] = image
        else:
            shapes.layouts[node] = _layout(node, shapes.layouts, modules)
    return shapes


def _is_reshape(node: fx.Node) -> bool:
    name = node.target if node.op == "call_method" else getattr(node.target, "__name__", "")
    return node.op in ("call_method", "call_function") and (name in _RESHAPES or node.target in _RESHAPE_FUNCTIONS)


def _sized_from_image(node: fx.Node, layouts: dict[fx.Node, Layout]) -> tuple[Layout, fx.Node] | None:
    """A 4-D view whose H and W were read off an image's shape (a ViT stage turning tokens back into
    a map, ``x.reshape(B, H, W, -1)``; a space-to-depth ``x.view(N, C * 16, H // 4, W // 4)``): its
    layout and that image. N goes to the first other dimension, C to the last."""
    if _rank(node) != 4 or node.target not in ("view", "reshape", torch.reshape):
        return None
    sizes = list(node.args[1:]) if node.op == "call_method" else list(node.args[1:2])
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = list(sizes[0])
    if len(sizes) != 4:
        return None
    reads = [_spatial_read(size, layouts) for size in sizes]
    axes = [read[1] if read is not None else None for read in reads]
    if sorted(a for a in axes if a is not None) != [2, 3]:
        return None
    images = {read[0] for read in reads if read is not None}
    if len(images) != 1:
        return None
    others = iter((0, 1))
    return tuple(a if a is not None else next(others) for a in axes), images.pop()


_REARRANGEMENTS = {*_RESHAPES, "permute", "transpose", "contiguous"}


def _rearranges(node: fx.Node, image: fx.Node, steps: int = 6) -> bool:
    """Whether a view only rearranges ``image``'s elements (space-to-depth by view/permute), not the
    tokens of some other tensor sized from it (Twins' grid ``(H // 4, W // 4)`` of a conv's tokens)."""
    current = node
    for _ in range(steps):
        name = current.target if current.op == "call_method" else getattr(current.target, "__name__", "")
        if current.op not in ("call_method", "call_function") or name not in _REARRANGEMENTS:
            return False
        current = current.args[0]
        if current is image:
            return True
        if not isinstance(current, fx.Node):
            return False
    return False


_ARITHMETIC = {operator.floordiv, operator.mul, operator.truediv, operator.add, operator.sub}


def _spatial_read(size: object, layouts: dict[fx.Node, Layout]) -> tuple[fx.Node, int] | None:
    """(image, 2 or 3) when a size argument is an image's H or W (``x.shape[2]``, ``x.size(3)``,
    ``h // 4`` of one), else None."""
    read = _dimension_read(_through_arithmetic(size))
    if read is None:
        return None
    tensor, index = read
    layout = layouts.get(tensor)
    if layout is None:
        return None
    axis = layout[index % len(layout)]
    return (tensor, axis) if axis in (2, 3) else None


def _through_arithmetic(size: object) -> object:
    """The one traced value a size computed by arithmetic (``h // 4``, ``w * 2``) derives from."""
    while isinstance(size, fx.Node) and size.op == "call_function" and size.target in _ARITHMETIC:
        nodes = [a for a in size.args if isinstance(a, fx.Node)]
        if len(nodes) != 1:
            return None
        size = nodes[0]
    return size


def _dimension_read(size: object) -> tuple[fx.Node, int] | None:
    """(tensor, dimension) for ``x.size(d)`` or ``x.shape[d]`` / ``x.size()[d]``, else None."""
    if not isinstance(size, fx.Node):
        return None
    if size.op == "call_method" and size.target == "size" and len(size.args) > 1:
        tensor, index = size.args[0], size.args[1]
    elif size.target is operator.getitem and isinstance(size.args[0], fx.Node) and _is_shape(size.args[0]):
        tensor, index = size.args[0].args[0], size.args[1]
    else:
        return None
    return (tensor, index) if isinstance(tensor, fx.Node) and isinstance(index, int) else None


def _is_shape(node: fx.Node) -> bool:
    """``x.shape`` or ``x.size()``."""
    return (node.target is getattr and node.args[1] == "shape") or (
        node.op == "call_method" and node.target == "size" and len(node.args) == 1)


def _rank(node: fx.Node) -> int:
    meta = tensor_meta(node)
    return len(meta.shape) if meta is not None else -1


def _layout(node: fx.Node, layouts: dict[fx.Node, Layout], modules: dict[str, nn.Module]) -> Layout:
    """The node's layout from its input's: followed through permutes, stacks and reductions."""
    rank = _rank(node)
    if node.op in ("placeholder", "get_attr", "output") or rank < 0:
        return NCHW if node.op == "placeholder" and rank == 4 else None
    made = _made_image(node, rank, layouts, modules)
    if made is not False:
        return made  # type: ignore[return-value]
    source = next((a for a in node.all_input_nodes if layouts.get(a) is not None), None)
    if source is None:
        return None
    return _derived_layout(node, rank, source, layouts[source])  # type: ignore[arg-type]


def _made_image(node: fx.Node, rank: int, layouts: dict[fx.Node, Layout], modules: dict[str, nn.Module]) -> Layout | bool:
    """The layout of a node that makes (or unmakes) an image whatever its input's layout; False otherwise."""
    if node.op == "call_module" and isinstance(modules.get(node.target), _IMAGE_MODULES) and rank == 4:
        return NCHW  # a convolution makes an image even from a tensor reshaped back from tokens
    if _several_outputs(node, modules):
        return None  # a leaf returning a list of features is not one image (its elements are)
    if node.target is operator.getitem and rank == 4 and _several_outputs(node.args[0], modules):
        return NCHW if any(layouts.get(a) == NCHW for a in node.args[0].all_input_nodes) else None
    if rank == 4 and _is_reshape(node) and _reshaped_back(node, layouts):
        return NCHW
    return False


def _derived_layout(node: fx.Node, rank: int, source: fx.Node, inherited: tuple[int, ...]) -> Layout:
    """The layout an op gives its input's (``inherited``): permuted, an axis added or removed, or kept."""
    name = node.target if node.op == "call_method" else getattr(node.target, "__name__", "")
    if name in ("permute", "transpose"):
        return _permuted(node, inherited)
    if name in ("stack", "unsqueeze"):  # a new axis
        dim = _dim_arg(node, 1)
        return None if dim is None else (*inherited[: dim % rank], OTHER, *inherited[dim % rank :])
    if name in _REDUCTIONS or name == "squeeze":
        return _reduced(node, rank, inherited)
    if _is_reshape(node):
        return inherited if tensor_meta(source).shape == tensor_meta(node).shape else None
    return inherited if len(inherited) == rank else None  # elementwise and other rank-preserving ops


def _reduced(node: fx.Node, rank: int, inherited: tuple[int, ...]) -> Layout:
    """After a reduction or squeeze: an axis removed (only a non-image one), or the layout kept."""
    dim = _dim_arg(node, 1)
    if dim is not None and not node.kwargs.get("keepdim", False) and len(inherited) == rank + 1:
        dim %= len(inherited)
        return (*inherited[:dim], *inherited[dim + 1 :]) if inherited[dim] == OTHER else None
    return inherited if len(inherited) == rank else None


def _several_outputs(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """A module call (a leaf: a backbone kept whole) returning a tuple or list of tensors."""
    if node.op != "call_module" or isinstance(node.meta.get("tensor_meta"), TensorMetadata):
        return False
    return isinstance(node.meta.get("tensor_meta"), (tuple, list)) and registry.find_handler(node, modules.get(node.target)) is None


def _reshaped_back(node: fx.Node, layouts: dict[fx.Node, Layout], steps: int = 12) -> bool:
    """Whether a reshape rebuilds (N, C, H, W) of the image its tokens came from (a ViT/MLP decoder
    doing ``x.flatten(2).transpose(1, 2)`` ... ``.reshape(B, C, H, W)``)."""
    shape = tensor_meta(node).shape
    current = node
    for _ in range(steps):
        inputs = [a for a in current.all_input_nodes if is_tensor(a)]
        if not inputs:
            return False
        current = inputs[0]
        if layouts.get(current) == NCHW:
            image = tensor_meta(current).shape
            return image[0] == shape[0] and tuple(image[2:]) == tuple(shape[2:])
    return False


def _dim_arg(node: fx.Node, index: int) -> int | None:
    dim = node.kwargs.get("dim", node.args[index] if len(node.args) > index else 0)
    return dim if isinstance(dim, int) and not isinstance(dim, bool) else None


def _permuted(node: fx.Node, layout: tuple[int, ...]) -> Layout:
    args = list(node.args[1:])
    rank = len(layout)
    if node.target == "transpose" or getattr(node.target, "__name__", "") == "transpose":
        if len(args) != 2 or not all(isinstance(a, int) for a in args):
            return None
        order = list(range(rank))
        a, b = args[0] % rank, args[1] % rank
        order[a], order[b] = order[b], order[a]
    else:
        dims = args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else args
        dims = node.kwargs.get("dims", dims)
        if len(dims) != rank or not all(isinstance(d, int) for d in dims):
            return None
        order = [d % rank for d in dims]
    return tuple(layout[i] for i in order)


@dataclass
class Detection:
    """Every resolution change in a graph: downs and ups in graph order, ignored ops with reasons."""

    shapes: Shapes
    downs: list[tuple[fx.Node, Down]] = field(default_factory=list)
    ups: list[tuple[fx.Node, Up]] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)
    ignored_kinds: dict[fx.Node, str] = field(default_factory=dict)
    sources: dict[fx.Node, fx.Node] = field(default_factory=dict)  # each down/up/ignored op's input image
    warnings: list[str] = field(default_factory=list)


def data_input(node: fx.Node, shapes: Shapes, first: bool = True) -> fx.Node | None:
    """The image a call reads: its first argument (``first``, for resamplers), else its largest image
    input (elementwise ops, where a broadcast gate may come first)."""
    head = node.args[0] if node.args else None
    if first and isinstance(head, fx.Node) and shapes.size(head) is not None:
        return head
    images = [a for a in node.all_input_nodes if shapes.size(a) is not None]
    return max(images, key=lambda a: math.prod(shapes.size(a)), default=None)  # type: ignore[arg-type]


def detect(gm: fx.GraphModule) -> Detection:
    """Classify every call that changes an image's spatial size (graph must be shape-propagated).

    Levels are propagated structurally: a node inherits its data input's level and each
    down/up adds/subtracts its own halvings (measured before any padding that feeds it), so
    "same" padding or odd sizes never shift a level; only global pools fall back to rounding.
    """
    shapes = follow_layouts(gm)
    found = Detection(shapes)
    modules = dict(gm.named_modules())
    for node in gm.graph.nodes:
        if node.op == "placeholder" and shapes.size(node) is not None:
            shapes.levels[node] = level_of(shapes.size(node), shapes.reference)
        if node.op not in ("call_module", "call_function", "call_method"):
            continue
        module = modules.get(node.target) if node.op == "call_module" else None
        handler = registry.find_handler(node, module)
        source = data_input(node, shapes, first=registry.reads_first_argument(handler))
        if node in shapes.read_from:  # a view given an image's H and W: that image is its source
            source, handler = shapes.read_from[node], _view_of_image
        if source is None:  # an image made from non-images (tokens reshaped back): level by its size
            if shapes.size(node) is not None:
                shapes.levels[node] = level_of(shapes.size(node), shapes.reference)
            continue
        out_size = shapes.size(node) if _rank(node) == 4 else None
        if out_size is None and _rank(node) == 4:
            continue  # a 4-D output that is not an image (layout changed): not a resolution change
        call = registry.OpCall(node, module, shapes.spatial_size(source), out_size)  # type: ignore[arg-type]
        if handler is not None:
            verdict = handler(call)
        elif call.out_size is not None and registry.significant(call):
            verdict = registry.unknown_change(call)
            message = (
                f"{node.meta.get(READABLE, node.name)}: no resampling handler for {_op_label(node, call)} "
                f"but it changes the size {call.in_size} -> {call.out_size}; treated as '{verdict.kind}' "
                "(indexnas.surgery.registry.register_resampler adds a handler)"
            )
            found.warnings.append(message)
            warnings.warn(message, stacklevel=2)
        else:
            verdict = None
        if verdict is not None:
            _record(found, node, source, call, verdict, modules)
        if out_size is not None:
            shapes.levels[node] = _level(shapes, node, source, verdict, modules)
    _drop_key_value_reductions(found)
    return found


_ATTENTION = {operator.matmul, torch.matmul, torch.bmm, torch.baddbmm, torch.einsum,
              torch.nn.functional.scaled_dot_product_attention, "matmul", "bmm", "__matmul__"}


def _is_attention(target: object) -> bool:
    try:
        return target in _ATTENTION
    except TypeError:  # an unhashable callable
        return False


def _drop_key_value_reductions(found: Detection) -> None:
    """A down inside a module (not the root) whose every path leads into an attention product before it
    leaves that module (PVT's and Segformer's ``sr``: keys and values from a reduced map) changes no
    feature's resolution: the attention's output has the queries' size. Ignored, with the reason."""
    kept = []
    for node, down in found.downs:
        scopes = _enclosing_scopes(_scope_of(node))
        if any(_only_into_attention(node, scope) for scope in scopes):
            found.ignored.append((down.target, "reduces the keys/values of an attention (it rejoins through the "
                                               "attention product at the queries' resolution): not a transition"))
            found.ignored_kinds[node] = "key_value_reduction"
        else:
            kept.append((node, down))
    found.downs = kept


def _module_path(node: fx.Node) -> str:
    """The module a node runs in: a module call's own path, a function's enclosing module."""
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack") or {}
    return next(reversed(stack.values()))[0] if stack else ""


def _scope_of(down: fx.Node) -> str:
    """The module a down belongs to: a module call's parent, a function's enclosing module."""
    return _module_path(down).rpartition(".")[0] if down.op == "call_module" else _module_path(down)


def _reads_metadata(node: fx.Node) -> bool:
    """``x.shape``, ``x.size()``, ``x.dim()``, ``x.dtype``: a read of a tensor's metadata, not of its values."""
    if node.op == "call_function" and node.target is getattr:
        return node.args[1] in ("shape", "ndim", "dtype", "device")
    return node.op == "call_method" and node.target in ("size", "dim")


def _enclosing_scopes(scope: str) -> list[str]:
    """A module path and its ancestors, innermost first, without the root (the model as a whole)."""
    parts = scope.split(".") if scope else []
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)]


def _only_into_attention(down: fx.Node, scope: str) -> bool:
    """Whether every path from ``down`` meets an attention product before it leaves module ``scope``."""
    pending, seen = list(down.users), set()
    while pending:
        node = pending.pop()
        if node in seen:
            continue
        seen.add(node)
        if node.op in ("call_method", "call_function") and _is_attention(node.target) or _reads_metadata(node):
            continue  # the attention product (or only a size read off the tensor): this path ends here
        if node.op == "output" or not (_module_path(node) + ".").startswith(scope + "."):
            return False
        pending.extend(node.users)
    return bool(seen)


def _view_of_image(call: registry.OpCall) -> registry.Resampling | None:
    """A view sized from an image: same size (tokens back to a map) or space-to-depth / depth-to-space."""
    if call.out_size is None or not registry.significant(call):
        return None
    return registry.Resampling("down", "space_to_depth") if call.shrinks else registry.Resampling("up", "depth_to_space")


def _level(shapes: Shapes, node: fx.Node, source: fx.Node, verdict: registry.Resampling | None,
           modules: dict[str, nn.Module]) -> Level:
    size = shapes.size(node)
    assert size is not None
    base = shapes.levels.get(source)
    if base is None or (verdict is not None and verdict.direction == "ignore"):
        return level_of(size, shapes.reference)
    if verdict is None:
        return base
    if verdict.direction == "down":
        unpadded = _unpadded(source, shapes, modules)
        base = shapes.levels.get(unpadded, base)
        return tuple(b + s for b, s in zip(base, _steps(shapes.spatial_size(unpadded), size)))  # type: ignore[arg-type,return-value]
    return tuple(b - s for b, s in zip(base, _steps(size, shapes.size(source))))  # type: ignore[arg-type,return-value]


def _unpadded(node: fx.Node, shapes: Shapes, modules: dict[str, nn.Module]) -> fx.Node:
    """Walk back from a down's input through the padding that feeds it ("same" padding): the input of the
    earliest pad reached directly or through pointwise ops (``registry.POINTWISE``: a pad, then a 1x1
    expansion conv, BN and ReLU6, then the strided conv, as the IndexNet authors' MobileNetV2 writes it).
    Without a pad, the down's own input. A pad reached through pointwise ops folds only when its amounts
    are constants (the IndexNet then reads the down's input cropped by them)."""
    current, found, crossed = node, node, False
    while True:
        module = modules.get(current.target) if current.op == "call_module" else None
        pad = registry.is_pad(current, module)
        if not pad and not (registry.is_pointwise(current, module) and _one_image_input(current, shapes)):
            return found
        if pad and crossed and _pad_amounts(current, module) is None:
            return found
        previous = data_input(current, shapes, first=True)
        if previous is None:
            return found
        crossed = crossed or not pad
        current = previous
        if pad:
            found = current


def _one_image_input(node: fx.Node, shapes: Shapes) -> bool:
    """Whether a call reads one image (a pointwise op on one feature, not a residual sum), of its own size."""
    images = [a for a in node.all_input_nodes if shapes.size(a) is not None]
    return len(images) == 1 and shapes.size(images[0]) == shapes.size(node)


def _pad_amounts(node: fx.Node, module: nn.Module | None) -> tuple[int, int, int, int] | None:
    """(left, right, top, bottom) a pad adds, or None when they are not constants."""
    amounts = module.padding if module is not None else node.kwargs.get("pad", node.args[1] if len(node.args) > 1 else None)
    if not isinstance(amounts, (tuple, list)) or len(amounts) != 4 or not all(isinstance(a, int) for a in amounts):
        return None
    return tuple(amounts)  # type: ignore[return-value]


@dataclass(frozen=True)
class Folded:
    """The padding folded into a down: totals per axis, and where pointwise ops lie between the pad and the
    down, the leading (top, left) amounts the IndexNet's input is cropped by."""

    totals: tuple[int, int] | None  # None when computed at run time
    crop: tuple[int, int] | None = None


def _folded(padded: fx.Node, unpadded: fx.Node, shapes: Shapes, modules: dict[str, nn.Module]) -> Folded:
    """The padding added between ``unpadded`` and ``padded`` (the down's input), through pads and pointwise ops."""
    height = width = top = left = 0
    crossed = False
    node = padded
    while node is not unpadded:
        module = modules.get(node.target) if node.op == "call_module" else None
        if registry.is_pad(node, module):
            amounts = _pad_amounts(node, module)
            if amounts is None:
                return Folded(None)
            pad_left, pad_right, pad_top, pad_bottom = amounts
            height, width, top, left = height + pad_top + pad_bottom, width + pad_left + pad_right, top + pad_top, left + pad_left
        else:
            crossed = True  # a pointwise op (``_unpadded`` walked through it)
        node = data_input(node, shapes, first=True)  # type: ignore[assignment]
    return Folded((height, width), (top, left) if crossed else None)


def _op_label(node: fx.Node, call: registry.OpCall) -> str:
    if call.module is not None:
        return registry.class_path(type(call.module))
    return f"Tensor.{node.target}" if node.op == "call_method" else getattr(node.target, "__name__", str(node.target))


def _record(found: Detection, node: fx.Node, source: fx.Node, call: registry.OpCall, verdict: registry.Resampling,
            modules: dict[str, nn.Module]) -> None:
    shapes = found.shapes
    name = node.meta.get(READABLE, node.name)
    found.sources[node] = source
    if verdict.direction == "ignore":
        found.ignored.append((name, verdict.why))
        found.ignored_kinds[node] = verdict.kind
        return
    assert call.out_size is not None
    if verdict.direction == "down":
        unpadded = _unpadded(source, shapes, modules)  # "same"/fixed padding is part of the down
        folded = _folded(source, unpadded, shapes, modules)
        down = Down(node.name, name, verdict.kind, shapes.spatial_size(unpadded) or call.in_size, call.out_size,
                    shapes.channels(source), shapes.channels(node), unpadded.name, folded.totals, folded.crop)
        found.downs.append((node, down))
    elif verdict.direction == "up":
        up = Up(node.name, name, verdict.kind, call.in_size, call.out_size,
                shapes.channels(source), shapes.channels(node), verdict.mode)
        found.ups.append((node, up))
    else:
        raise ValueError(f"a resampling handler returned direction {verdict.direction!r}")
