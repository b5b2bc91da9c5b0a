"""While torch.fx traces a model in this thread, make three torch queries answer "tracing".

Why each answer is needed (the code that asks is in the user's model, so it cannot be changed):

- ``torch.jit.is_tracing()``: segmentation_models_pytorch's ``SegmentationModel.check_input_shape``
  runs ``if h % output_stride != 0`` on the input size unless tracing; on an fx Proxy that ``if``
  fails ("symbolically traced variables cannot be used as inputs to control flow"). Code of the
  ``transformers`` package gets torch's own answer (see ``_asked_by_transformers``).
- ``torch.compiler.is_compiling()``: the same kind of guard written the compiler's way: smp's
  ``is_torch_compiling`` and HuggingFace's ``is_torchdynamo_compiling`` skip Python checks on
  tensor values (mask and size checks) when it is true.
- ``torch.jit.isinstance(x, Tensor)``: MONAI's BasicUNet concatenates its skip only when
  ``torch.jit.isinstance(x_e, torch.Tensor)``; an fx Proxy is not a Tensor, so without this the
  skip silently disappears from the graph.

- ``torch.as_tensor(x)``: MONAI wraps results in it (``x_conv + torch.as_tensor(self.chn_pad(x))``),
  an identity on a tensor; on a Proxy it fails. It returns the Proxy itself when called with a
  Proxy and no dtype or device.

- ``torch.zeros/ones/empty(*sizes)`` with traced sizes (MONAI ResNet's zero-padded shortcut,
  ``torch.zeros(n, planes - c, *x.shape[2:])``): builtins that cannot see a Proxy among their
  sizes; the call is recorded in the graph instead.

Two more answers are given by the tracer itself: ``len()`` and ``int()`` of an fx Proxy ask the
proxy's tracer (``SurgeryTracer.length`` answers ``len(x.shape)`` with the example's rank: MONAI's
UpCat and HuggingFace's attention reshapes read it; ``SurgeryTracer.to_int`` answers
``int(x.shape[1])``, MONAI's SwinUNETR); a proxy of any other tracer still raises torch's error.

The replacements are installed on entry to the outermost ``tracing_answers`` block and the
originals put back when the last block exits, on every exit path (exceptions included). While
installed they answer "tracing" only in a thread inside such a block: another thread calling
``torch.jit.is_tracing()`` at the same moment gets torch's own answer.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

_state = threading.local()  # .depth: how many tracing_answers blocks this thread is inside
_lock = threading.Lock()
_active_blocks = 0  # over all threads: the replacements are installed while > 0
_originals: tuple[Any, ...] | None = None


def _tracing_here() -> bool:
    return getattr(_state, "depth", 0) > 0


def _asked_by_transformers() -> bool:
    """HuggingFace's ``torch.jit.is_tracing()`` branches turn sizes into tensors
    (``torch_int(torch.ceil(h / p))``): right under torch.jit.trace, where sizes are tensors, wrong in
    an fx graph, which runs on Python ints. Its checks on tensor values use ``is_compiling`` instead."""
    caller = sys._getframe(2).f_globals.get("__name__", "")
    return caller.startswith("transformers.")


def _install() -> None:
    global _originals
    _originals = (torch.jit.is_tracing, torch.compiler.is_compiling, torch.jit.isinstance, torch.as_tensor,
                  torch.fx.Proxy.__len__, *(getattr(torch, name) for name in _FACTORIES))
    is_tracing, is_compiling, jit_isinstance, as_tensor, proxy_len = _originals[:5]

    def tracing_is_tracing(*args: Any, **kwargs: Any) -> bool:
        if _tracing_here() and not _asked_by_transformers():
            return True
        return is_tracing(*args, **kwargs)

    def tracing_is_compiling(*args: Any, **kwargs: Any) -> bool:
        return True if _tracing_here() else is_compiling(*args, **kwargs)

    def tracing_isinstance(obj: Any, target_type: Any) -> bool:
        if _tracing_here() and isinstance(obj, torch.fx.Proxy) and target_type is Tensor:
            return True
        return jit_isinstance(obj, target_type)

    def tracing_as_tensor(data: Any, *args: Any, **kwargs: Any) -> Any:
        if _tracing_here() and isinstance(data, torch.fx.Proxy) and not args and not kwargs:
            return data
        return as_tensor(data, *args, **kwargs)

    def tracer_len(proxy: torch.fx.Proxy) -> int:
        length = getattr(proxy.tracer, "length", None)
        return length(proxy) if length is not None else proxy_len(proxy)

    def tracer_int(proxy: torch.fx.Proxy) -> int:
        to_int = getattr(proxy.tracer, "to_int", None)
        if to_int is None:
            raise TypeError("int() argument must be a string, a bytes-like object or a real number, not 'Proxy'")
        return to_int(proxy)

    torch.jit.is_tracing = tracing_is_tracing
    torch.compiler.is_compiling = tracing_is_compiling
    torch.jit.isinstance = tracing_isinstance
    torch.as_tensor = tracing_as_tensor
    for name, factory in zip(_FACTORIES, _originals[5:]):
        setattr(torch, name, _recorded_when_traced(factory))
    torch.fx.Proxy.__len__ = tracer_len  # type: ignore[method-assign]
    torch.fx.Proxy.__int__ = tracer_int  # type: ignore[attr-defined]


_FACTORIES = ("zeros", "ones", "empty")


def _recorded_when_traced(factory: Any) -> Any:
    def factory_call(*args: Any, **kwargs: Any) -> Any:
        proxy = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.fx.Proxy)), None)
        if proxy is None or not _tracing_here():
            return factory(*args, **kwargs)
        return proxy.tracer.create_proxy("call_function", factory, args, kwargs)

    return factory_call


def _restore() -> None:
    global _originals
    assert _originals is not None
    (torch.jit.is_tracing, torch.compiler.is_compiling, torch.jit.isinstance, torch.as_tensor,
     torch.fx.Proxy.__len__) = _originals[:5]
    for name, factory in zip(_FACTORIES, _originals[5:]):
        setattr(torch, name, factory)
    del torch.fx.Proxy.__int__
    _originals = None


@contextlib.contextmanager
def tracing_answers() -> Iterator[None]:
    """Within this block (this thread only), the queries and functions above give the answers listed there."""
    global _active_blocks
    with _lock:
        if _active_blocks == 0:
            _install()
        _active_blocks += 1
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        yield
    finally:
        _state.depth -= 1
        with _lock:
            _active_blocks -= 1
            if _active_blocks == 0:
                _restore()
