"""Trace a model with torch.fx into a graph with readable names, and check it against eager.

While tracing, ``torch.jit.is_tracing``, ``torch.compiler.is_compiling`` and
``torch.jit.isinstance(proxy, Tensor)`` answer True in the tracing thread (surgery/tracing_queries.py
says why each is needed), so guards such as smp's input-shape check and TorchScript-style type
checks take their tracing branch instead of failing or silently dropping a branch. A graph is trusted only after it reproduced the eager
output at the example size and at a second size (a graph can trace and still be wrong).
"""

from __future__ import annotations

import builtins
import contextlib
import difflib
import inspect
import math
import io
import operator
import traceback
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import torch
import torch.fx
import torch.fx._symbolic_trace as fx_symbolic_trace
import torch.utils._pytree
from torch import Tensor, nn
from torch.fx.passes.shape_prop import ShapeProp
from torch.utils._pytree import tree_flatten

from indexnas.errors import UserError
from indexnas.modes import eval_mode, module_mode
from indexnas.surgery import registry
from indexnas.surgery.tracing_queries import tracing_answers

READABLE = "indexnas_name"  # node.meta key: the name a user recognises ("decoder.up3", "encoder.pool:2")


class SurgeryTracer(torch.fx.Tracer):
    """torch.fx tracer honouring the leaf registries; remembers which module a failure came from.

    Given example inputs, a Python ``if`` on a traced *shape* (``if skip.shape[1] != 0``) is
    answered with the example's value instead of failing; each such guard is recorded, and one
    that reads a spatial size is flagged, because the graph then holds only for that size.
    Conditions on tensor values are never guessed.
    """

    def __init__(self, example_inputs: tuple[Tensor, ...] | None = None) -> None:
        super().__init__(autowrap_functions=registry.leaf_functions())
        self.example_inputs = example_inputs
        self.forced_leaves: set[type] = set()  # timm notrace classes that failed to trace through
        self.guards: list[Guard] = []
        self._interpreter: torch.fx.Interpreter | None = None

    def create_args_for_root(self, root_fn: Any, is_module: bool, concrete_args: Any = None) -> tuple[Any, list[Any]]:
        """One graph input per example input; every other parameter of the root forward keeps its
        default. HuggingFace forwards take optional keyword arguments (``labels``,
        ``output_hidden_states``, ``return_dict``) and are wrapped in ``*args, **kwargs`` decorators:
        as graph inputs those would be Proxies that the decorators and the model branch on."""
        if self.example_inputs is None or not is_module or concrete_args is not None:
            return super().create_args_for_root(root_fn, is_module, concrete_args)
        signature = inspect.signature(inspect.unwrap(root_fn))
        names = [p.name for p in list(signature.parameters.values())[1:]
                 if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        names += [f"input_{i}" for i in range(len(names), len(self.example_inputs))]
        inputs = [self.create_proxy("placeholder", name, (), {}) for name in names[: len(self.example_inputs)]]
        return root_fn, [self.root, *inputs]

    def create_arg(self, a: Any) -> Any:
        """A mapping of another class than dict (HuggingFace's ModelOutput with ``.logits``) is rebuilt as that
        class in the graph, so the traced model returns what the model returned; fx would make it a dict."""
        if isinstance(a, Mapping) and type(a) is not dict and _rebuildable(type(a)):
            return self.create_node("call_function", type(a), (), {k: self.create_arg(v) for k, v in a.items()})
        return super().create_arg(a)

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if type(m) in self.forced_leaves or registry.leaf_reason(m) is not None:
            return True
        return super().is_leaf_module(m, module_qualified_name)

    def call_module(self, m: nn.Module, forward: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not self._installed(m):  # made inside a forward (MONAI's ``get_pool_layer(...)(x)``): record its ops
            return forward(*args, **kwargs)
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception as error:
            if not hasattr(error, "_indexnas_module"):  # the innermost module wins
                error._indexnas_module = (self.path_of_module(m), registry.class_path(type(m)))  # type: ignore[attr-defined]
                error._indexnas_stack = []  # type: ignore[attr-defined]
            error._indexnas_stack.append(m)  # type: ignore[attr-defined]  # innermost first
            raise

    def _installed(self, m: nn.Module) -> bool:
        try:
            self.path_of_module(m)
        except NameError:
            return False
        return True

    def to_int(self, obj: torch.fx.Proxy) -> int:
        """``int()`` of a traced size (``int(x.shape[1])``): the example's value, recorded as a guard
        (flagged when it is a spatial size: the graph then holds only for that size)."""
        reads = _shape_reads(obj.node) if self.example_inputs is not None else None
        if not reads:
            raise TypeError(f"int() of a traced tensor value ({obj.node.format_node()}) is not supported in symbolic tracing")
        value = int(self._evaluate(obj.node))
        self._record_guard(obj, reads, value)
        return value

    def to_bool(self, obj: torch.fx.Proxy) -> bool:
        reads = _shape_reads(obj.node)
        if self.example_inputs is None or reads is None:
            return super().to_bool(obj)  # raises: control flow on tensor values
        value = bool(self._evaluate(obj.node))
        self._record_guard(obj, reads, value)
        return value

    def _record_guard(self, obj: torch.fx.Proxy, reads: list[tuple[torch.fx.Node, int | None]], value: object) -> None:
        dims = {self._dim(node, index) for node, index in reads}
        scope = next(reversed(self.module_stack), "") if self.module_stack else ""
        self.guards.append(Guard(scope, obj.node.format_node(), value, spatial=not dims <= {0, 1}))

    def iter(self, obj: torch.fx.Proxy) -> Iterator[Any]:
        """Iterating a traced shape (``for d in x.shape[2:]``): its length is the example's rank."""
        if self.example_inputs is None or _shape_reads(obj.node) is None:
            return super().iter(obj)
        value = self._evaluate(obj.node)
        if not isinstance(value, (tuple, list)):
            return super().iter(obj)
        return iter([obj[i] for i in range(len(value))])

    def length(self, obj: torch.fx.Proxy) -> int:
        """``len()`` of a traced shape (``len(x.shape)``, ``len(x.size())``): the example's rank, which
        no input size changes. ``len`` of anything else (a tensor's batch size) is not answered."""
        value = self._evaluate(obj.node) if self.example_inputs is not None and _shape_reads(obj.node) else None
        if not isinstance(value, (tuple, list)):
            raise RuntimeError("'len' of a traced value other than a shape is not supported in symbolic tracing")
        return len(value)

    def _dim(self, node: torch.fx.Node, index: int | None) -> int:
        """The dimension a shape read refers to (non-negative), or -1 for the whole shape."""
        if index is None:
            return -1
        value = self._evaluate(node)  # the tensor (size(dim)) or its shape (shape[dim])
        return index % (value.dim() if isinstance(value, Tensor) else len(value))

    def _evaluate(self, target: torch.fx.Node) -> Any:
        """The value of a node of the graph traced so far, on the example inputs (eval mode)."""
        if self._interpreter is None:
            self._interpreter = torch.fx.Interpreter(self.root, garbage_collect_values=False, graph=self.graph)
            self._interpreter.args_iter = iter(self.example_inputs)
        interpreter = self._interpreter
        with _eager_modules(), eval_mode(self.root):
            for node in self.graph.nodes:
                if node not in interpreter.env:
                    interpreter.env[node] = interpreter.run_node(node)
                if node is target:
                    break
        return interpreter.env[target]


def _rebuildable(cls: type) -> bool:
    """A mapping class registered as a pytree node (HuggingFace registers every ModelOutput): built from keywords."""
    return cls in torch.utils._pytree.SUPPORTED_NODES


@contextlib.contextmanager
def _eager_modules() -> Iterator[None]:
    """Undo torch.fx's patching of nn.Module call/getattr for a moment, so modules run eagerly."""
    patched = (nn.Module.__call__, nn.Module.__getattr__)
    nn.Module.__call__ = fx_symbolic_trace._orig_module_call  # type: ignore[method-assign]
    nn.Module.__getattr__ = fx_symbolic_trace._orig_module_getattr  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.__call__, nn.Module.__getattr__ = patched  # type: ignore[method-assign]


@dataclass(frozen=True)
class Guard:
    """A Python condition on a traced shape, answered from the example input while tracing."""

    module: str  # qualified name of the module whose forward asked
    condition: str  # the fx node that computes it
    value: object  # the answer given: a bool (a condition) or an int (``int(size)``)
    spatial: bool  # reads H or W: the graph is specialised to the example's size


_SHAPE_ATTRS = {"shape", "ndim"}
_SHAPE_METHODS = {"size", "dim"}


def _shape_reads(node: torch.fx.Node) -> list[tuple[torch.fx.Node, int | None]] | None:
    """The (tensor node, dimension index or None for all) a condition reads, or None if it reads values."""
    reads: list[tuple[torch.fx.Node, int | None]] = []
    pending = [node]
    seen: set[torch.fx.Node] = set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        direct = _direct_reads(current)
        if direct is not None:
            reads.extend(direct)
        elif _combines_sizes(current):
            pending.extend(current.all_input_nodes)
        else:
            return None  # a tensor value, a placeholder or a module output: not a shape
    return reads


def _direct_reads(node: torch.fx.Node) -> list[tuple[torch.fx.Node, int | None]] | None:
    """What ``x.shape`` / ``x.ndim`` / ``x.size(d)`` / ``x.dim()`` reads; None for any other node."""
    if node.op == "call_function" and node.target is getattr and node.args[1] in _SHAPE_ATTRS:
        if node.args[1] == "ndim":
            return []
        indices = [u.args[1] for u in node.users if u.target is operator.getitem]
        if indices and all(isinstance(i, int) for i in indices) and len(indices) == len(node.users):
            return [(node, i) for i in indices]
        return [(node.args[0], None)]
    if node.op == "call_method" and node.target in _SHAPE_METHODS:
        if node.target != "size":
            return []
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        return [(node.args[0], dim if isinstance(dim, int) else None)]
    return None


def _combines_sizes(node: torch.fx.Node) -> bool:
    """Arithmetic, comparisons, indexing, len/min/max, rounding and size casts (HuggingFace's ``torch_int``):
    ops through which a condition still reads only sizes."""
    if node.op != "call_function":
        return False
    return getattr(node.target, "__module__", None) in ("_operator", "operator") or node.target in (
        *_SIZE_FUNCTIONS, *registry.size_casts())


# Taken at import: while fx traces, ``math.ceil`` itself is swapped for fx's autowrapping stand-in.
_SIZE_FUNCTIONS = (builtins.len, builtins.min, builtins.max, math.ceil, math.floor, torch.ceil, torch.floor, torch.round)


def trace(model: nn.Module, example_inputs: tuple[Tensor, ...] | None = None) -> torch.fx.GraphModule:
    """Symbolically trace ``model`` in eval mode (no sizes baked in), with readable node names.

    With ``example_inputs``, conditions on shapes are answered from them; the guards taken are
    in ``gm.meta['indexnas_guards']``. A forward that reads ``self.training`` in Python (drop
    connect, stochastic depth) is baked into the graph in the mode traced, so the model is also
    traced in train mode: the modules whose code differs are in ``gm.meta['indexnas_train_only']``.
    """
    gm = _trace_in_mode(model, example_inputs, training=False)
    train_gm = _trace_in_mode(model, example_inputs, training=True)
    gm.meta["indexnas_train_only"] = _differing_scopes(gm, train_gm)
    return gm


def _trace_in_mode(model: nn.Module, example_inputs: tuple[Tensor, ...] | None, training: bool) -> torch.fx.GraphModule:
    with _constants_kept_off(model):
        return _trace_with_fallbacks(model, example_inputs, training)


@contextlib.contextmanager
def _constants_kept_off(model: nn.Module) -> Iterator[None]:
    """fx stores the tensor constants a forward creates as ``_tensor_constant*`` attributes of the
    traced root, the user's model: take them off again (the GraphModule holds its own references)."""
    before = set(vars(model))
    try:
        yield
    finally:
        for name in set(vars(model)) - before:
            if name.startswith("_tensor_constant"):
                delattr(model, name)


def _trace_with_fallbacks(model: nn.Module, example_inputs: tuple[Tensor, ...] | None, training: bool) -> torch.fx.GraphModule:
    """Trace, keeping whole any timm notrace module that fails to trace through."""
    forced: set[type] = set()
    while True:
        tracer = SurgeryTracer(example_inputs)
        tracer.forced_leaves = forced
        try:
            with module_mode(model, training), tracing_answers():
                graph = tracer.trace(model)
            break
        except UserError:
            raise
        except Exception as error:
            fallback = next((m for m in getattr(error, "_indexnas_stack", []) if registry.timm_leaf_fallback(m)
                             and type(m) not in forced), None)
            if fallback is None:
                raise _trace_failure(model, error) from error
            forced.add(type(fallback))  # timm says it is not traceable: keep it whole after all
    gm = torch.fx.GraphModule(tracer.root, graph, class_name=type(model).__name__)
    gm.meta["indexnas_guards"] = tracer.guards
    gm.meta["indexnas_forced_leaves"] = sorted(registry.class_path(cls) for cls in forced)
    _name_nodes(gm)
    return gm


def _scope(node: torch.fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    return next(reversed(stack.values()))[0] if stack else ""


def _differing_scopes(first: torch.fx.GraphModule, second: torch.fx.GraphModule) -> list[str]:
    """The modules (innermost) in which two traces of one model recorded different ops."""
    def ops(gm: torch.fx.GraphModule) -> list[tuple[str, str, str]]:
        return [(n.op, str(n.target), _scope(n)) for n in gm.graph.nodes]

    a, b = ops(first), ops(second)
    if a == b:
        return []
    scopes: dict[str, None] = {}
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag != "equal":
            scopes.update((op[2] or "<root>", None) for op in [*a[i1:i2], *b[j1:j2]])
    return list(scopes)


def _trace_failure(model: nn.Module, error: Exception) -> UserError:
    """A UserError naming the module and source line where tracing failed, and the registry fix."""
    qualname, cls = getattr(error, "_indexnas_module", ("", registry.class_path(type(model))))
    where = _user_frame(error.__traceback__)
    line = f" at {where[0]}:{where[1]} in {where[2]}()" if where else ""
    inside = f"module '{qualname}' ({cls})" if qualname else f"the model's own forward ({cls})"
    problem = f"torch.fx could not trace {inside}{line}: {type(error).__name__}: {str(error).splitlines()[0]}"
    if where and where[3]:  # a plain module-level function: wrapping it is the least invasive fix
        fix = (
            f"register the function as a leaf: indexnas.surgery.registry.register_leaf_function({where[3]}, "
            "'reads a traced value'); or mark the module a leaf (it then hides the downs/ups inside it): "
            f"indexnas.surgery.registry.register_leaf_module('{cls}', 'control flow on tensor values')"
        )
    elif qualname:
        fix = (
            f"mark it a leaf: indexnas.surgery.registry.register_leaf_module('{cls}', 'control flow on tensor values') "
            "(a leaf hides any downs/ups inside it from the pair finder)"
        )
    else:
        fix = "move the data-dependent control flow into a submodule or function and register that as a leaf"
    return UserError(problem, fix)


def _user_frame(tb: TracebackType | None) -> tuple[str, int, str, str] | None:
    """(file, line, function, dotted name if a module-level function) of the last frame outside torch."""
    found = None
    for frame, lineno in traceback.walk_tb(tb):
        filename = frame.f_code.co_filename
        if "/torch/" in filename or filename.endswith(__file__):
            continue
        name = frame.f_code.co_name
        is_function = "self" not in frame.f_locals and callable(frame.f_globals.get(name))
        dotted = f"{frame.f_globals.get('__name__', '?')}.{name}" if is_function else ""
        found = (filename, lineno, name, dotted)
    return found


def _name_nodes(gm: torch.fx.GraphModule) -> None:
    """Give each call node the name a user recognises: module path, or enclosing module + function."""
    bases: dict[str, str] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            bases[node.name] = str(node.target)
        elif node.op in ("call_function", "call_method"):
            stack = node.meta.get("nn_module_stack") or {}
            scope = next(reversed(stack.values()))[0] if stack else ""
            op = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", node.name)
            bases[node.name] = f"{scope}.{op}" if scope else op
    counts = Counter(bases.values())
    seen: Counter[str] = Counter()
    for node in gm.graph.nodes:
        base = bases.get(node.name)
        if base is None:
            node.meta[READABLE] = node.name
            continue
        node.meta[READABLE] = f"{base}:{seen[base]}" if counts[base] > 1 else base
        seen[base] += 1


def other_sizes(inputs: tuple[Tensor, ...]) -> list[tuple[Tensor, ...]]:
    """Inputs at other spatial sizes to check a graph at, cheapest first: smaller by the largest
    multiple of 32 up to half the size (keeping at least 64), then 32 larger (steps of 32 keep the
    divisibility and parity that size guards such as ``if h % 2`` and smp's checks depend on);
    then steps of the example's own divisibility (its largest power-of-two factor, times 7 when 7
    divides it: window sizes of Swin-style models), for models that need more than 32."""
    if not all(isinstance(x, Tensor) and x.dim() == 4 for x in inputs):
        return []
    generator = torch.Generator().manual_seed(0)
    side = min(min(x.shape[2:]) for x in inputs)
    shrink = 32 * max(1, (side // 2) // 32)
    unit = (side & -side) * (7 if side % 7 == 0 else 1)
    deltas = ([-shrink] if side - shrink >= 64 else []) + [32, unit]
    if side - unit >= max(32, side // 2):
        deltas.append(-unit)
    return [
        tuple(torch.randn(*x.shape[:2], x.shape[2] + d, x.shape[3] + d, generator=generator).to(x) for x in inputs)
        for d in dict.fromkeys(deltas)
    ]


def propagate_and_check(model: nn.Module, gm: torch.fx.GraphModule, inputs: tuple[Tensor, ...]) -> list[str]:
    """Record every node's output shape (``node.meta['tensor_meta']``) and check the graph against eager
    at the example size and at one other size the model accepts.

    Raises UserError when the traced graph disagrees with the eager model, or runs at no other size
    the eager model runs at; returns warnings (e.g. no second size could be checked because the
    model rejects them).
    """
    with eval_mode(model):
        expected = _eager_output(model, inputs)
        got = ShapeProp(gm).propagate(*inputs)
        _compare(model, expected, got, inputs)
        rejected: list[str] = []
        graph_failures: list[str] = []
        for other in other_sizes(inputs):
            try:
                expected = model(*other)
            except Exception as error:  # the model itself rejects this size: try the next
                rejected.append(f"{tuple(other[0].shape)} ({type(error).__name__}: {error!s:.100})")
                continue
            try:
                with contextlib.redirect_stderr(io.StringIO()):  # fx prints the failing generated code there
                    got = gm(*other)
            except Exception as error:  # sizes baked into the graph: another size may still agree
                graph_failures.append(f"{tuple(other[0].shape)} ({type(error).__name__}: {error!s:.160})")
                continue
            _compare(model, expected, got, other)
            return []
    if graph_failures:
        raise _size_specialised(model, gm, graph_failures)
    return [f"the graph was checked at the example size only: the eager model rejects {'; '.join(rejected)}"] if rejected else []


def _eager_output(model: nn.Module, inputs: tuple[Tensor, ...]) -> Any:
    try:
        return model(*inputs)
    except Exception as error:
        shapes = ", ".join(str(tuple(x.shape)) for x in inputs)
        raise UserError(
            f"{type(model).__name__} fails on the example input {shapes} itself: {type(error).__name__}: {error!s:.200}",
            "pass an input the model accepts: the channels it expects, and a size it can take (--size); "
            "a model file's factory can return (model, example_input)",
        ) from error


def _size_specialised(model: nn.Module, gm: torch.fx.GraphModule, failures: list[str]) -> UserError:
    """The error for a graph that runs only at the example size although the model runs at others."""
    guards = [g for g in gm.meta.get("indexnas_guards", []) if g.spatial]
    where = f" (Python reads the input size, e.g. in {guards[0].module or 'forward'})" if guards else ""
    reader = next((g.module for g in guards if g.module), "")
    leaf = (f"'{registry.class_path(type(model.get_submodule(reader)))}'" if reader else "Class")
    return UserError(
        f"the traced graph of {type(model).__name__} runs only at the example size{where}: the eager model runs "
        f"at {'; '.join(failures)} but the graph fails there",
        "pass an example input of the size you will train at (--size); or keep the module that reads the size "
        f"whole (it then hides any downs/ups inside it): indexnas.surgery.registry.register_leaf_module({leaf}, "
        "'reads the input size')",
    )


def _compare(model: nn.Module, expected: Any, got: Any, inputs: tuple[Tensor, ...]) -> None:
    want, _ = tree_flatten(expected)
    have, _ = tree_flatten(got)
    want = [t for t in want if isinstance(t, Tensor)]
    have = [t for t in have if isinstance(t, Tensor)]
    size = tuple(inputs[0].shape) if inputs else ()
    name = type(model).__name__
    fix = (
        "some forward takes a branch under torch.fx that it does not take eagerly (e.g. isinstance or a "
        "Python value read from a tensor); mark the module that contains it a leaf with "
        "indexnas.surgery.registry.register_leaf_module(Class, reason)"
    )
    if len(want) != len(have):
        raise UserError(f"the traced graph of {name} returns {len(have)} tensors, eager returns {len(want)}", fix)
    for index, (a, b) in enumerate(zip(want, have)):
        if a.shape != b.shape:
            raise UserError(
                f"the traced graph of {name} disagrees with eager at input {size}: output {index} has shape "
                f"{tuple(b.shape)}, eager {tuple(a.shape)}",
                fix,
            )
        scale = max(1.0, float(a.abs().max())) if a.numel() and a.is_floating_point() else 1.0
        if not torch.allclose(a, b, rtol=1e-4, atol=1e-5 * scale, equal_nan=True):
            diff = float((a.double() - b.double()).abs().max())
            raise UserError(
                f"the traced graph of {name} disagrees with eager at input {size}: output {index} differs by {diff:.3g}",
                fix,
            )
