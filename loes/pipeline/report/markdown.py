"""``report.md``: the report's headline and tables in markdown."""

from __future__ import annotations

from typing import Any

from loes.pipeline.report.tables import UNDEFINED_NOTE, headline, tables

__all__ = ["render_markdown"]


def render_markdown(report: dict[str, Any]) -> str:
    """The text of ``report.md``: the headline, the run's counts and every table.

    ``report`` is the dict written to ``report.json``. Numbers have two decimals (MAEs in Loes
    points); undefined values are ``–``. The first column is left-aligned, the others right.
    """
    text, counts = headline(report)
    lines = ["# Cross-validation report", "", f"**{text}**", "", ", ".join(counts) + ".", ""]
    if report.get("created"):
        lines += [f"Created {report['created']} by loes {report.get('loes_version', '')}.", ""]
    for table in tables(report):
        lines += [f"## {table.title}", "", table.note, ""]
        lines.append("| " + " | ".join(table.header) + " |")
        lines.append("|" + "|".join(["---", *["---:"] * (len(table.header) - 1)]) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in table.rows]
        lines.append("")
    lines += [UNDEFINED_NOTE, ""]
    return "\n".join(lines)
