"""The checks a search setting declares (search/settings.py): each takes the setting's name and value and
returns the value to store (normalised where the study stores it so), or raises the UserError the CLI prints."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from indexnas.errors import UserError
from indexnas.search import objectives

Check = Callable[[str, Any], Any]
MAX_SEED = 2**31 - 1  # samplers seed numpy with seed + worker offset, which must stay below 2**32


def option(name: str) -> str:
    """The command-line spelling of a setting in messages: ``budget_steps`` -> ``--budget-steps``."""
    return f"--{name.replace('_', '-')}"


def integer(minimum: int, kind: str, fix: str | None = None) -> Check:
    """A check that the value is an int of at least ``minimum`` ("--NAME must be KIND, got VALUE")."""
    def check(name: str, value: Any) -> Any:
        if not isinstance(value, int) or value < minimum:
            raise UserError(f"{option(name)} must be {kind}, got {value!r}", fix)
        return value

    return check


POSITIVE_INT = integer(1, "a positive integer")
NON_NEGATIVE_INT = integer(0, "a non-negative integer")


def optional(check: Check) -> Check:
    """``check`` for a setting that may also be None (None: not set)."""
    return lambda name, value: value if value is None else check(name, value)


def positive(name: str, value: Any) -> Any:
    """A number above zero."""
    if not value > 0:
        raise UserError(f"{option(name)} must be positive, got {value!r}")
    return value


@dataclass(frozen=True)
class OneOf:
    """A check that the value is one of ``values``; the CLI offers them as the option's choices."""

    values: tuple[str, ...]
    noun: str  # what the message calls the setting: "unknown NOUN 'x'"

    def __call__(self, name: str, value: Any) -> Any:
        if value not in self.values:
            raise UserError(f"unknown {self.noun} {value!r}", f"use one of: {', '.join(self.values)}")
        return value


def lr_positive(_name: str, value: Any) -> Any:
    """The learning rate is above zero (a NaN passes, as it always has)."""
    if value <= 0:
        raise UserError("--lr and --sigma must be positive")
    return value


def sigma_positive(_name: str, value: Any) -> Any:
    """The noise level is above zero (a NaN does not pass)."""
    if not value > 0:
        raise UserError("--lr and --sigma must be positive")
    return value


def seed_in_range(name: str, value: Any) -> Any:
    """An int from 0 to MAX_SEED (a bool is not a seed)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        raise UserError(f"{option(name)} must be an integer from 0 to {MAX_SEED}, got {value!r}", "pass e.g. --seed 0")
    return value


def study_name(_name: str, value: Any) -> Any:
    """A study name usable as a folder name: not empty, no path separator or newline."""
    if not value or any(c in value for c in "/\\\n"):
        raise UserError(f"invalid study name {value!r}", "use letters, digits, '-', '_' and '.'")
    return value


def path_text(_name: str, value: Any) -> str:
    """A path or URL as the text the study stores (a `pathlib.Path` is accepted)."""
    return os.fspath(value)


def json_values(_name: str, value: Any) -> dict[str, Any]:
    """Model arguments as the study stores them, JSON: tuples read back as lists, so compare them as JSON
    from the start."""
    try:
        return json.loads(json.dumps(dict(value)))
    except (TypeError, ValueError) as error:
        raise UserError(f"model arguments must be numbers, strings, lists or dicts: {error}",
                        "pass Python literals, e.g. --model-arg classes=6") from None


def known_objectives(_name: str, value: Any) -> Any:
    """Objectives that search.objectives can parse."""
    objectives.parse(value)
    return value


def rung_fractions(_name: str, value: Any) -> tuple[float, ...]:
    """Rungs as sorted fractions of the budget, from a tuple or the CLI's comma-separated text."""
    from indexnas.search.halving import parse_rungs  # halving imports optuna: building the CLI parser must not

    return parse_rungs(value)


def heartbeat_within_grace(heartbeat_interval: float, grace_period: float) -> None:
    """A running trial's heartbeat comes (and comes more often than the grace period that fails it)."""
    if not 0 < heartbeat_interval < grace_period:
        raise UserError(f"the heartbeat interval ({heartbeat_interval} s) must be positive and shorter than "
                        f"the grace period ({grace_period} s)", "e.g. heartbeat_interval=10, grace_period=60")


def rungs_within_budget(prune: str, rungs: tuple[float, ...], budget_steps: int) -> None:
    """With pruning on, some rung falls on a step before the end of the trial's budget."""
    from indexnas.search.halving import rung_steps  # halving imports optuna: building the CLI parser must not

    if prune != "off" and not rung_steps(budget_steps, rungs):
        raise UserError(f"--rungs {','.join(map(str, rungs))} of --budget-steps {budget_steps} leave no "
                        "step before the end to prune at", "raise --budget-steps, or search with --prune off")
