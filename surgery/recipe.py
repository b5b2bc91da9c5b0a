"""Save and replay a rewrite: a small JSON recipe (mode + one choice per pair) and the rewritten weights.

A recipe replays onto a fresh instance of the same model: the pair names come from the model's
own module names, and the index modules are named after their transitions, so a rewritten
model's ``state_dict`` loads into the replayed one. Files are written atomically (a temporary file
in the same folder, then renamed), so an interrupted save never leaves half a recipe.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from indexnas.atomic import atomic_save, atomic_write_bytes
from indexnas.errors import UserError
from indexnas.spec import IndexSpec
from indexnas import cost
from indexnas.surgery import compat

FORMAT = "indexnas-recipe"
VERSION = 1


def from_report(report: Any, model: str | None = None) -> dict[str, Any]:
    """The recipe of a rewrite (``report``: the RewriteReport that insert_indexnet returned)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "model": model,
        "mode": report.mode,
        "channel_fit": report.channel_fit,
        "choices": dict(report.choices),
    }


def validate(recipe: object, source: str = "the recipe") -> dict[str, Any]:
    """Check a recipe's structure; every problem is a UserError naming the field."""
    fix = "write it with `indexnas insert ... --out FILE` or surgery.recipe.save"
    if not isinstance(recipe, dict) or recipe.get("format") != FORMAT:
        raise UserError(f"{source} is not an indexnas recipe (no \"format\": \"{FORMAT}\")", fix)
    if recipe.get("version") != VERSION:
        raise UserError(f"{source} has version {recipe.get('version')!r}; this indexnas reads version {VERSION}", fix)
    compat.check_mode(recipe.get("mode"))  # type: ignore[arg-type]
    compat.check_channel_fit(recipe.get("channel_fit", "strict"))
    choices = recipe.get("choices")
    if not isinstance(choices, dict) or not all(isinstance(k, str) for k in choices):
        raise UserError(f"{source} has no \"choices\" object mapping pair names to choices", fix)
    for choice in choices.values():
        IndexSpec.parse(choice)
    return recipe


def _check_folder(path: str | os.PathLike) -> Path:
    """The target as a Path; a missing folder raises UserError (recipes never create folders)."""
    target = Path(path)
    if not target.parent.exists():
        raise UserError(f"cannot write {target}: folder {target.parent} does not exist", "create it first")
    return target


def save(recipe: dict[str, Any], path: str | os.PathLike) -> None:
    """Write a recipe as JSON, atomically."""
    validate(recipe)
    atomic_write_bytes((json.dumps(recipe, indent=2) + "\n").encode("utf-8"), _check_folder(path))


def load(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a recipe file."""
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise UserError(f"cannot read recipe {path}: {error.strerror or error}", "check the path") from error
    try:
        recipe = json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"recipe {path} is not valid JSON ({error})", "regenerate it with indexnas insert --out") from error
    return validate(recipe, f"recipe {path}")


def replay(
    recipe: dict[str, Any], model: nn.Module, example_input: Tensor | tuple[Tensor, ...], *, flops: bool = True
) -> tuple[torch.fx.GraphModule, Any]:
    """Apply a recipe to a fresh instance of the model it was made for; returns (rewritten, report)."""
    from indexnas.surgery.analysis import analyze
    from indexnas.surgery.rewrite import rewrite_analyzed

    recipe = validate(recipe)
    choices = recipe["choices"]
    inputs = cost.as_inputs(example_input)
    gm, report = analyze(model, inputs)
    found = {pair.name for pair in report.pairs}
    missing, extra = sorted(found - set(choices)), sorted(set(choices) - found)
    if missing or extra:
        problem = (f"no pair named {', '.join(extra)} in this model" if extra else "") + (
            f"{'; ' if extra else ''}the recipe does not cover pair(s) {', '.join(missing)} of this model" if missing else ""
        )
        raise UserError(
            problem,
            f"the recipe was made for another model ({recipe.get('model') or 'unnamed'}); rewrite this one with indexnas insert",
        )
    mode, channel_fit = recipe["mode"], recipe.get("channel_fit", "strict")
    return rewrite_analyzed(model, gm, report, inputs, dict(choices), mode, channel_fit=channel_fit, flops=flops)


def save_state_dict(model: nn.Module, path: str | os.PathLike) -> None:
    """Save a (rewritten) model's state_dict, atomically."""
    atomic_save(model.state_dict(), _check_folder(path))
