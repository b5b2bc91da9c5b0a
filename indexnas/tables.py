"""One table writer: a grid of cells with block titles, as aligned text, Markdown, LaTeX or HTML.

`indexnas table` (surgery.cost_table) and the study reports (reports.table) build a `Grid` and render
it here, so every format is written, and escaped, one way. CSV is pandas' own (raw numbers, every column).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field

from indexnas.errors import UserError

FORMATS = ("text", "markdown", "latex", "html")
# Characters LaTeX reads as commands, and the symbols our tables print, mapped one character at a time
# (so the braces a replacement brings are never escaped again).
LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "✓": r"\checkmark", "Δ": r"$\Delta$", "–": "--"}


@dataclass(frozen=True)
class Cell:
    """One printed cell; ``bold`` marks a best value."""

    text: str
    bold: bool = False


@dataclass
class Grid:
    """Headers and rows; a row is a list of cells, or a block title (a string) opening a section."""

    headers: list[str]
    rows: list[list[Cell] | str] = field(default_factory=list)


def escape_markdown(text: str) -> str:
    """A Markdown table cell: ``|`` would end the cell, so it is written ``\\|``."""
    return text.replace("|", "\\|")


def escape_latex(text: str) -> str:
    """A LaTeX cell: special characters escaped, ✓ and Δ as math symbols (needs amssymb for ✓)."""
    return "".join(LATEX_SPECIALS.get(ch, ch) for ch in text)


def _text(grid: Grid) -> str:
    cells = [row for row in grid.rows if not isinstance(row, str)]
    widths = [max([len(h), *(len(r[i].text) for r in cells)]) for i, h in enumerate(grid.headers)]

    def line(texts: list[str]) -> str:
        return "  ".join(t.ljust(w) for t, w in zip(texts, widths)).rstrip()

    lines = [line(grid.headers), line(["-" * w for w in widths])]
    lines += [row if isinstance(row, str) else line([c.text for c in row]) for row in grid.rows]
    return "\n".join(lines)


def _markdown(grid: Grid) -> str:
    def cell(c: Cell) -> str:
        text = escape_markdown(c.text)
        return f"**{text}**" if c.bold and text else text

    def line(texts: list[str]) -> str:
        return "| " + " | ".join(texts) + " |"

    lines = [line([escape_markdown(h) for h in grid.headers]), "|" + "|".join("---" for _ in grid.headers) + "|"]
    for row in grid.rows:
        if isinstance(row, str):
            lines.append(line([f"*{escape_markdown(row)}*", *[""] * (len(grid.headers) - 1)]))
        else:
            lines.append(line([cell(c) for c in row]))
    return "\n".join(lines)


def _latex(grid: Grid) -> str:
    def cell(c: Cell) -> str:
        text = escape_latex(c.text)
        return rf"\textbf{{{text}}}" if c.bold and text else text

    width = len(grid.headers)
    lines = [
        "% needs \\usepackage{amssymb} (\\checkmark)",
        r"\begin{tabular}{" + ("l" + "c" * 2 + "r" * (width - 3) if width > 3 else "l" * width) + "}",
        r"\hline",
        " & ".join(escape_latex(h) for h in grid.headers) + r" \\",
        r"\hline",
    ]
    for row in grid.rows:
        if isinstance(row, str):
            lines.append(rf"\multicolumn{{{width}}}{{c}}{{{escape_latex(row)}}} \\")
        else:
            lines.append(" & ".join(cell(c) for c in row) + r" \\")
    lines += [r"\hline", r"\end{tabular}"]
    return "\n".join(lines)


def _html(grid: Grid) -> str:
    def cell(c: Cell) -> str:
        text = html.escape(c.text)
        return f"<td><b>{text}</b></td>" if c.bold and text else f"<td>{text}</td>"

    head = "".join(f"<th>{html.escape(h)}</th>" for h in grid.headers)
    lines = ['<table class="paper">', f"<thead><tr>{head}</tr></thead>", "<tbody>"]
    for row in grid.rows:
        if isinstance(row, str):
            lines.append(f'<tr class="block"><td colspan="{len(grid.headers)}">{html.escape(row)}</td></tr>')
        else:
            lines.append("<tr>" + "".join(cell(c) for c in row) + "</tr>")
    lines += ["</tbody>", "</table>"]
    return "\n".join(lines)


_WRITERS: dict[str, Callable[[Grid], str]] = {"text": _text, "markdown": _markdown, "latex": _latex, "html": _html}


def render_grid(grid: Grid, fmt: str, formats: tuple[str, ...] = FORMATS) -> str:
    """``grid`` in ``fmt``, one of ``formats`` (the formats the calling command offers)."""
    if fmt not in formats or fmt not in _WRITERS:
        raise UserError(f"unknown table format {fmt!r}", f"use one of: {', '.join(formats)}")
    return _WRITERS[fmt](grid)
