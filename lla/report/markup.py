"""Rendering shared by the report commands: a DataFrame as a markdown or HTML table, and
markdown prose as HTML.

Tables go through pandas (``DataFrame.to_markdown``, which uses tabulate, and
``DataFrame.to_html``); prose through markdown-it-py (CommonMark with GFM tables). The
frames given here are display frames: every cell already the text to show.
"""

from __future__ import annotations

from functools import lru_cache

import pandas as pd


def markdown_table(frame: pd.DataFrame, left_columns: int = 1) -> str:
    """A pipe table: the first ``left_columns`` columns left-aligned, the others (numbers)
    right-aligned; cells exactly as in the frame (no number parsing)."""
    align = ["left"] * left_columns + ["right"] * (len(frame.columns) - left_columns)
    return frame.to_markdown(index=False, tablefmt="pipe", disable_numparse=True,
                             colalign=align[:len(frame.columns)])


def html_table(frame: pd.DataFrame) -> str:
    """The frame as an HTML table, cells escaped (the report's style sheet right-aligns
    every column but the first)."""
    return frame.to_html(index=False, border=0, escape=True, na_rep="")


@lru_cache(maxsize=1)
def _markdown_it():
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table")


def markdown_to_html(text: str) -> str:
    """CommonMark (+ tables) to HTML; raw HTML in ``text`` is escaped, not passed through."""
    return _markdown_it().render(text)
