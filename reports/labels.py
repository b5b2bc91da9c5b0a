"""Point labels that never overlap: each label takes the nearest free spot around its point.

Greedy and deterministic: labels are placed in the order given (most important first); for each, candidate
offsets on rings of growing radius around the point are tried, and the first whose text box stays inside the
axes and clear of every label placed so far and of the plotted markers is taken (a thin leader line joins a
label set away from its point). A label with no free spot within the largest ring is left out and returned,
so that the caller can say so; the figure's layout must be final (``tight_layout`` done) before placing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text
from matplotlib.transforms import Bbox, IdentityTransform

RINGS_PT = (4, 9, 15, 22, 30, 40, 52, 66, 82, 100, 120)  # label offsets from the point, in points
DIRECTIONS = 16  # candidate angles per ring
LEADER_FROM_PT = 12  # a label this far from its point gets a leader line
MARKER_PX = 4.0  # half-size of the box kept clear around each labelled marker
PAD_PX = 1.5  # gap kept between two labels


def _offsets() -> list[tuple[float, float]]:
    """Candidate (dx, dy) offsets in points: the right and above first, then around each ring."""
    angles = [2 * math.pi * k / DIRECTIONS for k in range(DIRECTIONS)]
    angles.sort(key=lambda a: (abs(math.atan2(math.sin(a - math.pi / 4), math.cos(a - math.pi / 4))), a))
    return [(r * math.cos(a), r * math.sin(a)) for r in RINGS_PT for a in angles]


def _anchor(dx: float, dy: float) -> tuple[str, str]:
    """Alignment that keeps the text on the far side of its point."""
    horizontal = "left" if dx > 1e-9 else "right" if dx < -1e-9 else "center"
    vertical = "bottom" if dy > 1e-9 else "top" if dy < -1e-9 else "center"
    return horizontal, vertical


def place_labels(axes: Axes, points: Sequence[tuple[float, float]], labels: Sequence[str],
                 obstacles: Sequence[tuple[float, float]] = (), fontsize: float = 7.0) -> list[str]:
    """Annotate each data point with its label without overlaps; returns the labels that found no room.

    ``obstacles``: other plotted points (data coordinates) that labels should not cover either.
    """
    figure = axes.figure
    canvas = figure.canvas if isinstance(figure.canvas, FigureCanvasAgg) else FigureCanvasAgg(figure)
    renderer = canvas.get_renderer()
    frame = axes.get_window_extent(renderer)
    centres = [axes.transData.transform(point) for point in points]
    around = [*centres, *(axes.transData.transform(point) for point in obstacles)]
    markers = [Bbox.from_extents(x - MARKER_PX, y - MARKER_PX, x + MARKER_PX, y + MARKER_PX) for x, y in around]
    placed: list[Bbox] = []
    unplaced: list[str] = []
    offsets = _offsets()
    for index, (point, label) in enumerate(zip(points, labels, strict=True)):
        probe = Text(0, 0, label, fontsize=fontsize, figure=figure)
        here = centres[index]
        others = [box for box in markers if not box.contains(*here)]
        for dx, dy in offsets:
            horizontal, vertical = _anchor(dx, dy)
            x, y = here[0] + dx * figure.dpi / 72, here[1] + dy * figure.dpi / 72
            probe.set(x=x, y=y, ha=horizontal, va=vertical, transform=IdentityTransform())
            box = probe.get_window_extent(renderer)
            inside = box.x0 >= frame.x0 and box.x1 <= frame.x1 and box.y0 >= frame.y0 and box.y1 <= frame.y1
            padded = box.padded(PAD_PX)
            if inside and not any(padded.overlaps(b) for b in placed) and not any(box.overlaps(m) for m in others):
                placed.append(box)
                leader = {"arrowstyle": "-", "color": "0.55", "lw": 0.5, "shrinkA": 0, "shrinkB": 3}
                axes.annotate(label, point, xytext=(dx, dy), textcoords="offset points", fontsize=fontsize,
                              ha=horizontal, va=vertical, zorder=6,
                              arrowprops=leader if math.hypot(dx, dy) >= LEADER_FROM_PT else None)
                break
        else:
            unplaced.append(label)
    return unplaced
