"""The canonical form of a configuration: aliases resolved against the host, so equal models compare equal.

Two configurations that build the same model (the same function with the same parameters) get the
same canonical form, and the study trains only one of them (see `search.cache`). The aliases:
- ``max`` at a pair whose host already pools and unpools with max indices (max pooling down, max
  unpooling up, one transition) is the host's own operator: ``keep``;
- ``o2o-modelwise`` used at a single pair shares its module with nobody: it is ``o2o-shared`` there
  (the same layout and parameters, ``indexnas/indexnet.py``), with the same linearity and context;
- all ``keep`` is the untouched host, whatever the trial was called.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from indexnas.spec import IndexSpec

MAX_INDEX_DOWNS = frozenset({"maxpool"})  # downs whose indices are max indices
MAX_INDEX_UPS = frozenset({"unpool"})  # ups that place values at the recorded indices (max unpooling)


def max_is_host(pair: Mapping[str, Any]) -> bool:
    """True when the host's own operators at ``pair`` are max pooling + max unpooling over one transition."""
    kinds = pair.get("down_kinds")
    return (bool(kinds) and len(pair.get("downs", ())) == 1 and set(kinds) <= MAX_INDEX_DOWNS
            and pair.get("up_kind") in MAX_INDEX_UPS)


def canonical_choices(choices: Mapping[str, IndexSpec | str], pairs: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """``choices`` with every alias replaced by its canonical choice, in the study's pair order."""
    by_name = {pair["name"]: pair for pair in pairs}
    specs = {name: IndexSpec.parse(choice) for name, choice in choices.items()}
    modelwise_pairs = [name for name, spec in specs.items() if spec.modelwise]
    canonical = {}
    for name in [p["name"] for p in pairs if p["name"] in specs] + [n for n in specs if n not in by_name]:
        spec = specs[name]
        if spec.family == "max" and name in by_name and max_is_host(by_name[name]):
            spec = IndexSpec("keep")
        elif spec.modelwise and len(modelwise_pairs) == 1:
            spec = IndexSpec("o2o-shared", spec.nonlinear, spec.context, spec.enc_norm, spec.dec_norm)
        canonical[name] = str(spec)
    return canonical


def configuration_key(choices: Mapping[str, IndexSpec | str], pairs: Sequence[Mapping[str, Any]]) -> str:
    """One string per distinct model: the canonical choices as sorted JSON (stored with every trial)."""
    return json.dumps(canonical_choices(choices, pairs), sort_keys=True)
