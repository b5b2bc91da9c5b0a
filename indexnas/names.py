"""Close matches for a misspelt name ("did you mean ...?"), one helper for every unknown-name error."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

CUTOFF = 0.6  # difflib's similarity ratio below which a name is not offered


def close_names(name: str, candidates: Iterable[str], count: int = 3) -> list[str]:
    """Up to ``count`` of ``candidates`` most like ``name`` (case-insensitive), best first."""
    by_lower: dict[str, str] = {}
    for candidate in candidates:
        by_lower.setdefault(candidate.lower(), candidate)
    matches = difflib.get_close_matches(name.lower(), list(by_lower), n=count, cutoff=CUTOFF)
    return [by_lower[m] for m in matches]


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """"did you mean 'x' (or 'y')? " for the close matches of ``name``, or "" when none is close."""
    matches = close_names(name, candidates)
    if not matches:
        return ""
    return f"did you mean {' or '.join(repr(m) for m in matches)}? "
