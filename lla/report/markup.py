"""Rendering shared by the report commands: a DataFrame as a markdown or HTML table, and
markdown prose as HTML.

Tables go through pandas (``DataFrame.to_markdown``, which uses tabulate, and
``DataFrame.to_html``); prose through markdown-it-py (CommonMark with GFM tables). The
frames given here are display frames: every cell already the text to show.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import pandas as pd


def markdown_table(frame: pd.DataFrame, numeric: Sequence[str] | None = None) -> str:
    """A pipe table, cells exactly as in the frame (no number parsing): the ``numeric``
    columns right-aligned (default: every column but the first), the others left-aligned."""
    numeric = list(frame.columns[1:]) if numeric is None else numeric
    return frame.to_markdown(index=False, tablefmt="pipe", disable_numparse=True,
                             colalign=["right" if c in numeric else "left" for c in frame.columns])


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
