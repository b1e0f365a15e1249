"""``Table``: one table of the report as text, what markdown, HTML and the terminal show."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Table"]


class Table(NamedTuple):
    """One table of the report: a title, a note under it, a header and rows of text cells."""

    title: str
    note: str
    header: list[str]
    rows: list[list[str]]
