"""``report.md``: what was run, the warnings, the headline and every table in markdown."""

from __future__ import annotations

from typing import Any

from loes.pipeline.report.change_text import CHANGE_TITLE, change_sentence, change_table
from loes.pipeline.report.table import Table
from loes.pipeline.report.tables import UNDEFINED_NOTE, headline, notices, tables, what_was_run

__all__ = ["render_markdown"]


def render_markdown(report: dict[str, Any]) -> str:
    """The text of ``report.md``: what was run, the warnings, the headline, every table, then
    the change between sessions (its verdict and table; the plot is on the HTML page only).

    ``report`` is the dict written to ``report.json``. Warnings (a partial run, a smoke run,
    flags on the network) are block quotes starting with **Warning**. Numbers have two decimals
    (MAEs in Loes points); undefined values are ``–``. The first column is left-aligned, the
    others right.
    """
    text, counts = headline(report)
    lines = ["# Cross-validation report", ""]
    lines += [f"- **{label}**: {value}" for label, value in what_was_run(report)]
    lines.append("")
    for notice in notices(report):
        lines += [f"> **Warning**: {notice}", ""]
    lines += [f"**{text}**", "", ", ".join(counts) + ".", ""]
    if report.get("created"):
        lines += [f"Created {report['created']} by loes {report.get('loes_version', '')}.", ""]
    for table in tables(report):
        lines += [f"## {table.title}", "", table.note, ""]
        lines += _table_lines(table)
    lines += [f"## {CHANGE_TITLE}", "", f"**{change_sentence(report.get('change'))}**", ""]
    change = change_table(report.get("change"))
    if change is not None:
        lines += [change.note, "", *_table_lines(change)]
    lines += [UNDEFINED_NOTE, ""]
    return "\n".join(lines)


def _table_lines(table: Table) -> list[str]:
    lines = ["| " + " | ".join(table.header) + " |"]
    lines.append("|" + "|".join(["---", *["---:"] * (len(table.header) - 1)]) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in table.rows]
    return [*lines, ""]
