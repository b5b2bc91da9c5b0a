"""The installed version of indexnas (a core module: every layer may read it)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("indexnas")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
