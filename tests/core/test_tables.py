"""The one table writer (indexnas.tables): every format escapes what its syntax reads, and both tables use it."""

from __future__ import annotations

import pandas as pd
import pytest

from indexnas.errors import UserError
from indexnas.surgery.cost_table import COLUMNS, render
from indexnas.tables import Cell, Grid, escape_latex, escape_markdown, render_grid


def test_latex_escapes_a_backslash_without_escaping_the_braces_it_brings():
    assert escape_latex(r"a\b") == r"a\textbackslash{}b"
    assert escape_latex("50% of a_b & {c} #1 $2 ~^") == (
        r"50\% of a\_b \& \{c\} \#1 \$2 \textasciitilde{}\textasciicircum{}")
    assert escape_latex("✓ Δ –") == r"\checkmark $\Delta$ --"


def test_markdown_escapes_the_cell_separator():
    assert escape_markdown("m2o-nl | keep") == r"m2o-nl \| keep"
    out = render_grid(Grid(["a|b", "c"], ["block | title", [Cell("x|y"), Cell("z", bold=True)]]), "markdown")
    assert out.splitlines() == [r"| a\|b | c |", "|---|---|", r"| *block \| title* |  |", r"| x\|y | **z** |"]
    assert all(line.count("|") - line.count(r"\|") == 3 for line in out.splitlines() if line != "|---|---|")


def test_html_escapes_markup():
    out = render_grid(Grid(["<h>"], [[Cell("a<b>&c")]]), "html")
    assert "<th>&lt;h&gt;</th>" in out and "<td>a&lt;b&gt;&amp;c</td>" in out


def test_text_aligns_columns_and_puts_block_titles_on_their_own_line():
    out = render_grid(Grid(["name", "n"], ["Block", [Cell("long name"), Cell("1")], [Cell("x"), Cell("22")]]), "text")
    assert out.splitlines() == ["name       n", "---------  --", "Block", "long name  1", "x          22"]


def test_an_unknown_format_is_a_user_error_naming_the_offered_ones():
    with pytest.raises(UserError, match="use one of: text, csv"):
        render_grid(Grid(["a"]), "xlsx", ("text", "csv"))


def test_the_cost_table_escapes_through_the_shared_writer():
    row = dict.fromkeys(COLUMNS, "")
    row.update({"block": "HINs", "method": r"my\model|v2_a", "GFLOPs": 1.234, "Delta exact": 0})
    frame = pd.DataFrame([row], columns=list(COLUMNS))
    assert r"my\textbackslash{}model|v2\_a" in render(frame, "latex")
    assert r"my\model\|v2_a" in render(frame, "markdown")
    assert "| *HINs* |" in render(frame, "markdown")
