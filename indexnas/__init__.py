"""indexnas: learned index-guided down/upsampling (Index Networks) for any PyTorch model."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("indexnas")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
