"""A progress bar for long commands (`indexnas table`, `indexnas models`): on stderr, only on a terminal."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress_steps(items: Iterable[T], label: str, enabled: bool = True) -> Iterator[T]:
    """``items`` with a bar on stderr while they are worked through (none when disabled or not a terminal)."""
    if not enabled:
        yield from items
        return
    from tqdm import tqdm

    items = list(items)
    yield from tqdm(items, desc=label, total=len(items), leave=False, disable=None, dynamic_ncols=True)
