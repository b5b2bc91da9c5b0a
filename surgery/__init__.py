"""Model surgery: find coupled down/up pairs in any model (torch.fx) and insert IndexNet there.

``analyze`` traces, checks the graph against eager, propagates shapes and pairs ups with downs;
``find_pairs`` returns just the pairs; ``insert_indexnet`` (surgery/rewrite.py) is imported on
first use, so that fvcore loads only when needed.
"""

from typing import TYPE_CHECKING

from indexnas.lazy import lazy_exports
from indexnas.surgery.analysis import analyze, find_pairs
from indexnas.surgery.pairs import Down, Pair, PairReport, Transition, Unpaired, Up

if TYPE_CHECKING:
    from indexnas.surgery.rewrite import insert_indexnet

__all__ = ["Down", "Pair", "PairReport", "Transition", "Unpaired", "Up", "analyze", "find_pairs", "insert_indexnet"]
__getattr__ = lazy_exports(__name__, {"insert_indexnet": "indexnas.surgery.rewrite"})
