"""Pair every upsampling with the downsampling transitions it inverts.

Resolutions are compared as *levels* (rounded log2 of input size / feature size, per axis), so
odd sizes and "same" padding (15 -> 30 padded to 31) still match. For an up from level a to
level b the partner is searched only inside its *bracket*: the ancestors of the up's input
reached through tensors below resolution b. Downs entering the bracket from resolution b are
the candidates (this drops squeeze-and-excitation pools and earlier hourglasses); a x4 up is
followed down a chain of transitions (compound pair); ups that each undo part of one larger
transition (two x2 ups after a x4 stem) pair with it one by one (see ``_pair_one``). Parallel downs between the same two
levels whose outputs merge (main path and shortcut) form one transition. Ties are broken by
the skip connection (unpool indices, ``size=skip.shape``, the tensor the up is concatenated
with); what stays ambiguous or has no partner is reported with the reason.
"""

from __future__ import annotations

import math
import operator
from collections import Counter, deque
from collections.abc import Iterable

from torch import fx

from indexnas.surgery import registry
from indexnas.surgery.detect import Detection, Shapes, is_tensor
from indexnas.surgery.pairs import Down, Pair, PairReport, Transition, Unpaired, Up
from indexnas.surgery.trace import READABLE

Level = tuple[int, int]

# Unpaired.code values: why an up has no pair.
NO_DOWN = "no-down"
GLOBAL_POOL = "global-pool"
PARTIAL = "partial"
AMBIGUOUS = "ambiguous"


def _below(level: Level | None, bound: Level) -> bool:
    """Whether a tensor at ``level`` has a lower resolution than ``bound`` (non-images pass through)."""
    if level is None:
        return True
    return all(a >= b for a, b in zip(level, bound)) and any(a > b for a, b in zip(level, bound))


class _Graph:
    """Graph facts the pairing needs: levels, which nodes are downs/ups, down ancestry."""

    def __init__(self, gm: fx.GraphModule, found: Detection) -> None:
        self.shapes: Shapes = found.shapes
        self.nodes = list(gm.graph.nodes)
        self.downs: dict[fx.Node, Down] = dict(found.downs)
        self.ups: dict[fx.Node, Up] = dict(found.ups)
        self.ignored_kinds = found.ignored_kinds
        self.source = found.sources
        bit = {node: 1 << index for index, node in enumerate(self.downs)}
        self.ancestor_downs: dict[fx.Node, int] = {}
        for node in self.nodes:  # topological order: inputs come first
            mask = 0
            for parent in node.all_input_nodes:
                mask |= self.ancestor_downs.get(parent, 0) | bit.get(parent, 0)
            self.ancestor_downs[node] = mask
        self.bit = bit
        self.order = {node: index for index, node in enumerate(self.nodes)}

    def level(self, node: fx.Node) -> Level | None:
        return self.shapes.level(node)

    def is_ancestor_down(self, down: fx.Node, node: fx.Node) -> bool:
        return bool(self.ancestor_downs[node] & self.bit[down])

    def region(self, down: fx.Node) -> set[fx.Node]:
        """Nodes reached forward from a down before any other down or up."""
        seen: set[fx.Node] = set()
        queue = deque(down.users)
        while queue:
            node = queue.popleft()
            if node in seen:
                continue
            seen.add(node)
            if node not in self.downs and node not in self.ups:
                queue.extend(node.users)
        return seen


def build_transitions(graph: _Graph) -> dict[fx.Node, Transition]:
    """Group the downs into transitions; returns each down node's transition."""
    downs = list(graph.downs)
    levels = {d: (graph.level(graph.source[d]), graph.level(d)) for d in downs}
    regions = {d: graph.region(d) for d in downs}
    parent = {d: d for d in downs}

    def root(d: fx.Node) -> fx.Node:
        while parent[d] is not d:
            d = parent[d]
        return d

    for i, first in enumerate(downs):
        for second in downs[i + 1 :]:
            if levels[first] != levels[second] or not (regions[first] & regions[second]):
                continue
            if graph.is_ancestor_down(first, second) or graph.is_ancestor_down(second, first):
                continue
            if not _read_one_feature(graph, first, second, levels[first][0]):
                continue
            parent[root(second)] = root(first)
    groups: dict[fx.Node, list[fx.Node]] = {}
    for d in downs:
        groups.setdefault(root(d), []).append(d)
    result: dict[fx.Node, Transition] = {}
    for members in groups.values():
        ordered = _main_first(members, regions)
        main = graph.downs[ordered[0]]
        transition = Transition(
            name=main.target,
            downs=tuple(graph.downs[d] for d in ordered),
            in_size=main.in_size,
            out_size=main.out_size,
            channels=main.in_channels,
        )
        for d in members:
            result[d] = transition
    return result


def _read_one_feature(graph: _Graph, first: fx.Node, second: fx.Node, level: Level | None) -> bool:
    """Whether two downs read the same feature (one's input derives from the other's at the input
    level, as a bottleneck's strided conv and its shortcut do), not two sibling branches."""
    if level is None:
        return False
    a, b = graph.source[first], graph.source[second]
    if _view_root(a) is _view_root(b):  # slices of one tensor (MixNet's split into kernel groups)
        return True
    return a in _same_level_ancestors(graph, {b}, level) or b in _same_level_ancestors(graph, {a}, level)


_VIEWS = {"split", "chunk", "tensor_split", "narrow", "contiguous", "getitem"}


def _view_root(node: fx.Node) -> fx.Node:
    """The tensor a chain of slicing/splitting ops starts from."""
    while node.op in ("call_function", "call_method") and node.args and isinstance(node.args[0], fx.Node):
        name = node.target if node.op == "call_method" else getattr(node.target, "__name__", "")
        if name not in _VIEWS:
            break
        node = node.args[0]
    return node


def _main_first(members: list[fx.Node], regions: dict[fx.Node, set[fx.Node]]) -> list[fx.Node]:
    """Main path first: the down with the most ops of its own before the paths merge."""
    if len(members) == 1:
        return members

    def own_ops(d: fx.Node) -> int:
        others = set().union(*(regions[o] for o in members if o is not d))
        return len(regions[d] - others)

    order = {d: i for i, d in enumerate(members)}
    return sorted(members, key=lambda d: (-own_ops(d), order[d]))


def _bracket(graph: _Graph, start: fx.Node, bound: Level) -> set[fx.Node]:
    """Ancestors of ``start`` (inclusive) reached through tensors below resolution ``bound``."""
    seen: set[fx.Node] = set()
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node in seen or not is_tensor(node) or not _below(graph.level(node), bound):
            continue
        seen.add(node)
        queue.extend(node.all_input_nodes)
    return seen


def _entries(graph: _Graph, bracket: Iterable[fx.Node], bound: Level) -> list[fx.Node]:
    """Downs in a bracket whose input is at or above resolution ``bound``: where it was entered."""
    found = [n for n in bracket if n in graph.downs and not _below(graph.level(graph.source[n]), bound)]
    return sorted(found, key=graph.order.__getitem__)


def _hints(graph: _Graph, up: fx.Node, bound: Level) -> tuple[set[fx.Node], set[fx.Node]]:
    """Skip-connection evidence for an up: (pool nodes whose indices it uses, tensors at its output level)."""
    pools: set[fx.Node] = set()
    tensors: set[fx.Node] = set()
    for arg in up.all_input_nodes:
        if arg is graph.source[up]:
            continue
        pool = arg.args[0] if arg.op == "call_function" and arg.target is operator.getitem else None
        if pool in graph.downs:  # max_unpool's indices: getitem(max_pool_with_indices, 1)
            pools.add(pool)
        else:  # a size read from a tensor (size=skip.shape[-2:]): walk back to that tensor
            tensors.update(n for n in _tensor_roots(arg) if graph.level(n) == bound)
    for user in up.users:  # the tensor the up is concatenated with or added to
        tensors.update(n for n in user.all_input_nodes if n is not up and graph.level(n) == bound)
    return pools, tensors


def _tensor_roots(node: fx.Node) -> set[fx.Node]:
    roots: set[fx.Node] = set()
    queue = deque([node])
    while queue:
        current = queue.popleft()
        if is_tensor(current):
            roots.add(current)
        else:
            queue.extend(current.all_input_nodes)
    return roots


def _same_level_ancestors(graph: _Graph, tensors: set[fx.Node], level: Level) -> set[fx.Node]:
    """Tensors at ``level`` that ``tensors`` derive from, also through non-image (token) tensors."""
    seen: set[fx.Node] = set()
    queue = deque(tensors)
    while queue:
        node = queue.popleft()
        if node in seen or not is_tensor(node) or graph.level(node) not in (level, None):
            continue
        seen.add(node)
        queue.extend(node.all_input_nodes)
    return seen


def _choose(graph: _Graph, up: fx.Node, candidates: list[Transition], bound: Level,
            of: dict[fx.Node, Transition], nodes_of: dict[Transition, list[fx.Node]]) -> Transition | None:
    """The one candidate transition, or the one the skip connection points at; None if ambiguous."""
    if len(candidates) == 1:
        return candidates[0]
    pools, tensors = _hints(graph, up, bound)
    if pools:
        chosen = {of[p] for p in pools if of[p] in candidates}
        if len(chosen) == 1:
            return chosen.pop()
    if tensors:
        reach = _same_level_ancestors(graph, tensors, bound)
        chosen = [t for t in candidates if any(graph.source[d] in reach for d in nodes_of[t])]
        if len(chosen) == 1:
            return chosen[0]
    return None


def pair_ups(gm: fx.GraphModule, found: Detection) -> PairReport:
    """Pair every detected up with the transitions it inverts (see the module docstring)."""
    graph = _Graph(gm, found)
    of = build_transitions(graph)
    transitions = list(dict.fromkeys(of.values()))
    nodes_of: dict[Transition, list[fx.Node]] = {}
    for node, transition in of.items():
        nodes_of.setdefault(transition, []).append(node)
    report = PairReport(transitions=transitions, ignored=list(found.ignored), warnings=list(found.warnings))
    matched: list[tuple[Up, Matched]] = []
    for up_node, up in graph.ups.items():
        outcome = _pair_one(graph, up_node, up, of, nodes_of)
        if isinstance(outcome, Unpaired):
            report.unpaired.append(outcome)
        else:
            matched.append((up, outcome))
    report.pairs = _named(matched)
    return report


Matched = tuple[tuple[Transition, ...], tuple[int, int] | None]  # the transitions, and the part of one (Pair.part)


def _pair_one(graph: _Graph, up_node: fx.Node, up: Up, of: dict[fx.Node, Transition],
              nodes_of: dict[Transition, list[fx.Node]]) -> Matched | Unpaired:
    """The transitions an up inverts: a chain of whole ones, or part of one.

    A x4 down undone by two x2 ups (with convolutions between them) is *split*: each x2 up is its own pair
    with the one x4 transition and takes the part of its rate-4 decoder map at its own resolution (the
    upper up the map itself, the lower one the map coarsened; `ops.coarsen_map`). Split, not one compound
    up, because the two ups are separate ops with layers between them: no single IU can replace both, each
    keeps its place in the decoder, and the encoder side stays one rate-4 IndexNet (the down is one op),
    shared by the two pairs as by any ups that invert the same down. An up that undoes part of one
    transition and more (part of a x4 stem plus a further x2 down) is reported ``partial``.
    """
    low = graph.level(graph.source[up_node])
    high = graph.level(up_node)
    assert low is not None and high is not None
    chain: list[Transition] = []
    bound = high
    while True:
        bracket = _bracket(graph, graph.source[up_node], bound)
        entries = _entries(graph, bracket, bound)
        if chain:  # later links must come after the previous one
            entries = [d for d in entries if graph.is_ancestor_down(nodes_of[chain[-1]][0], d)]
        if not entries:
            return _no_partner(graph, up_node, up, chain)
        candidates = list(dict.fromkeys(of[d] for d in entries))
        aligned = [t for t in candidates if graph.level(graph.source[nodes_of[t][0]]) == bound]
        if not aligned:
            return _lower_part(graph, up, candidates, nodes_of, chain, low, high)
        chosen = _choose(graph, up_node, aligned, bound, of, nodes_of)
        if chosen is None:
            names = tuple(t.name for t in aligned)
            return Unpaired(up, f"{len(names)} transitions from the up's output resolution feed it and the skip "
                                "connection does not single one out", names, code=AMBIGUOUS)
        chain.append(chosen)
        reached = graph.level(nodes_of[chosen][0])
        if reached == low:
            return tuple(chain), None
        if not _below(low, reached):  # the transition overshoots the up's input resolution
            if len(chain) == 1 and _square(high, low):  # the up undoes its upper part: the map as it is
                return (chosen,), (1, _factor(up))
            return Unpaired(up, f"the x{_factor(up)} up undoes part of the down {chosen.name} after whole ones: an "
                                "IndexNet pair needs whole transitions or part of one", tuple(t.name for t in chain),
                            code=PARTIAL)
        bound = reached


def _square(upper: Level, lower: Level) -> bool:
    """Whether the steps from one level to the other are the same on both axes (square regions)."""
    return lower[0] - upper[0] == lower[1] - upper[1]


def _lower_part(graph: _Graph, up: Up, candidates: list[Transition], nodes_of: dict[Transition, list[fx.Node]],
                chain: list[Transition], low: Level, high: Level) -> Matched | Unpaired:
    """An up inside one larger transition, below its input resolution (the first of two x2 ups after a x4
    stem): part of it, with the map coarsened to the up's output resolution; else why not."""
    names = tuple(t.name for t in candidates)
    covering = [t for t in candidates if not chain and not _below(low, graph.level(nodes_of[t][0]))]
    if len(covering) == 1:
        start = graph.level(graph.source[nodes_of[covering[0]][0]])
        if start is not None and _square(start, high) and _square(high, low):
            return (covering[0],), (2 ** (high[0] - start[0]), _factor(up))
    if len(covering) > 1:
        return Unpaired(up, f"the x{_factor(up)} up lies inside {len(covering)} larger transitions and the skip "
                            "connection does not single one out", tuple(t.name for t in covering), code=AMBIGUOUS)
    return Unpaired(up, f"the x{_factor(up)} up undoes part of the larger down {names[0]} and more: an IndexNet pair "
                        "needs whole transitions or part of one", names, code=PARTIAL)


def _no_partner(graph: _Graph, up_node: fx.Node, up: Up, chain: list[Transition]) -> Unpaired:
    pools = _pools_feeding(graph, up_node)
    if pools and not chain:
        names = tuple(p.meta.get(READABLE, p.name) for p in pools)
        return Unpaired(up, "it upsamples the output of a global or pyramid pool (PSP/ASPP image pooling): "
                            "there is no resolution transition to invert", names, code=GLOBAL_POOL)
    if chain:
        return Unpaired(up, f"after {', '.join(t.name for t in chain)} no further down leads to the up's input "
                            "resolution", tuple(t.name for t in chain), code=PARTIAL)
    return Unpaired(up, "no down feeds it from its output resolution: nothing to invert (it enlarges a feature "
                        "that was never downsampled as an NCHW image: the input itself, a leaf module's output, or "
                        "tokens downsampled in token layout such as Swin's patch merging)", code=NO_DOWN)


def _pools_feeding(graph: _Graph, up_node: fx.Node) -> list[fx.Node]:
    """Global/pyramid pools reached back from an up's input through tensors smaller than its output."""
    limit = math.prod(graph.shapes.size(up_node) or (0, 0))
    pools: list[fx.Node] = []
    seen: set[fx.Node] = set()
    queue = deque([graph.source[up_node]])
    while queue:
        node = queue.popleft()
        size = graph.shapes.size(node)
        if node in seen or not is_tensor(node) or (size is not None and math.prod(size) >= limit):
            continue
        seen.add(node)
        if graph.ignored_kinds.get(node) in (registry.GLOBAL_POOL, registry.PYRAMID_POOL):
            pools.append(node)
            continue
        queue.extend(node.all_input_nodes)
    return sorted(pools, key=graph.order.__getitem__)


def _factor(up: Up) -> int:
    return round(up.out_size[0] / max(up.in_size[0], 1))


def _named(matched: list[tuple[Up, Matched]]) -> list[Pair]:
    """Name each pair after its transitions, adding the up's name where several ups share them."""
    keys = ["+".join(t.name for t in chain) for _, (chain, _) in matched]
    shared = Counter(keys)
    return [
        Pair(key if shared[key] == 1 else f"{key}@{up.target}", up, chain, part)
        for key, (up, (chain, part)) in zip(keys, matched)
    ]
