"""Optuna's private API is used in one module only (search/optuna_private.py), so an Optuna upgrade is
checked there: no other installed module names a private Optuna attribute or imports a private Optuna module."""

from __future__ import annotations

import ast
import re

from test_imports import installed_modules

ADAPTER = "indexnas.search.optuna_private"
# Private attributes of Optuna's Study, Trial, FrozenTrial and caching storage that the search needs.
PRIVATE_ATTRIBUTES = {"_storage", "_study_id", "_trial_id", "_pop_waiting_trial_id", "_backend", "_CachedStorage"}
# `_get_stale_trial_ids` stays: search/heartbeat.py's storages override it (and call the RDB storage's own).


def private_uses(source: str) -> list[str]:
    """``name (line)`` for each private Optuna attribute or private Optuna module import in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in PRIVATE_ATTRIBUTES:
            found.append(f".{node.attr} (line {node.lineno})")
        elif isinstance(node, ast.Name) and node.id in PRIVATE_ATTRIBUTES:
            found.append(f"{node.id} (line {node.lineno})")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "optuna":
            if any(part.startswith("_") for part in node.module.split(".")):
                found.append(f"from {node.module} (line {node.lineno})")
            found += [f"{a.name} (line {node.lineno})" for a in node.names if a.name.startswith("_")]
        elif isinstance(node, ast.Import):
            found += [f"import {a.name} (line {node.lineno})" for a in node.names
                      if a.name.split(".")[0] == "optuna" and re.search(r"\._", a.name)]
    return found


def test_the_detector_finds_each_kind_of_private_use():
    source = ("from optuna.storages._heartbeat import BaseHeartbeat\nimport optuna.storages._cached_storage\n"
              "study._storage.get_trial(trial._trial_id)\nstudy._pop_waiting_trial_id = pop\n")
    assert len(private_uses(source)) == 5


def test_no_module_outside_the_adapter_uses_optuna_private_api():
    modules = installed_modules()
    assert ADAPTER in modules
    offenders = {name: uses for name, path in modules.items() if name != ADAPTER
                 and (uses := private_uses(path.read_text()))}
    assert not offenders, f"Optuna private API outside {ADAPTER} (use its functions): {offenders}"
