"""The search: studies over per-pair IndexNet choices (study, suggest, problem, storage, ...).

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
