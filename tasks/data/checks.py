"""Validation of dataset options, so a bad number fails with a message instead of deep inside numpy."""

from __future__ import annotations

from indexnas.errors import UserError


def require_int(name: str, value: object, minimum: int) -> int:
    """`value` as an int >= minimum; anything else raises UserError naming the option."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(
            f"{name} must be an integer >= {minimum}, got {value!r}", f"pass {name}={max(minimum, 1)} or more"
        )
    return value


def require_range(name: str, value: object, low: float, high: float) -> tuple[float, float]:
    """A (min, max) pair with low <= min <= max <= high; anything else raises UserError naming the option."""
    try:
        first, second = (float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise UserError(
            f"{name} must be a (min, max) pair, got {value!r}", f"pass e.g. {name}=({low}, {high})"
        ) from None
    if not low <= first <= second <= high:
        raise UserError(f"{name}={value!r} is outside {low}..{high} or reversed", f"pass {low} <= min <= max <= {high}")
    return first, second


def optional_size(name: str, value: object, minimum: int) -> int | None:
    """None (meaning whole images) or an int >= minimum."""
    return None if value is None else require_int(name, value, minimum)
