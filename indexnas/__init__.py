"""indexnas: learned index-guided down/upsampling (Index Networks) for any PyTorch model.

The Python ways in (`search`, `suggest`, `load`, `apply`) are imported on first use, so that
`import indexnas` (and `indexnas --help`) stays light. Like the command line, this package's own
module is the top of the import graph: the pipeline's modules read the version from `indexnas.version`.
"""

from typing import Any

from indexnas.version import __version__

_API = ("Budget", "SearchSpace", "apply", "load", "suggest")  # from indexnas.api, on first use
__all__ = ["__version__", "search", *_API]


def __getattr__(name: str) -> Any:
    if name == "search":  # the package indexnas.search, which calls indexnas.api.search when called
        import importlib

        return importlib.import_module("indexnas.search")
    if name in _API:
        from indexnas import api

        return getattr(api, name)
    raise AttributeError(f"module 'indexnas' has no attribute {name!r}")
