"""The search: Optuna studies over per-pair IndexNet choices, on whatever `Problem` it is handed.

Three rooms: running a study (run, context, schedule, trial, study, checkpoints, workers, summary, retrain),
its settings and storage (settings, setting_checks, demo, preflight, problem, storage_urls, storage, locks,
heartbeat, journal, optuna_private) and the strategies (samplers, frontier, halving, oneshot, space, pair_space,
canonical, cache, objectives, scoring). It imports nothing from `indexnas.tasks`: the CLI hands it `TaskProblem`.

``indexnas.search`` is this package and also `indexnas.api.search`: calling the package,
``indexnas.search(model, example_input, train=..., evaluate=..., directions=...)``, runs a search
over your model (the package name and the function name are the same word, so the package is callable).
"""

import sys
import types
from typing import Any


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from indexnas.api import search

        return search(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
