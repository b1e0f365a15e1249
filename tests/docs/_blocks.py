"""The fenced code blocks of README.md and docs/*.md, and which of them the documentation test
runs.

A block runs when its language (the first word after the fence) is ``python`` or ``bash``,
unless the line right above the fence is a marker saying why not::

    <!-- not run: needs a SLURM cluster (sbatch); tests/cli/test_slurm.py submits to one -->

Blocks in any other language (``text``, ``yaml``, ...) show output or file contents and are
never run; a block without a language is refused, so that none escapes by accident.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: the languages whose blocks run
RUN = ("python", "bash")
#: the languages of blocks that show output or files
SHOWN = ("text", "yaml", "json", "csv", "console")
_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<info>.*)$")
_MARKER = re.compile(r"^\s*<!--\s*not run:\s*(?P<reason>.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced block: the file, the line of its opening fence (1-based), its language, its
    code (indentation of the fence removed) and, when marked, why it is not run."""

    path: Path
    line: int
    language: str
    code: str
    not_run: str | None

    @property
    def runs(self) -> bool:
        return self.language in RUN and self.not_run is None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def pages() -> list[Path]:
    """README.md, then every page of docs/ in name order."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of the markdown file at ``path``, in order."""
    lines = path.read_text().splitlines()
    found, i = [], 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        body, j = [], i + 1
        while j < len(lines) and lines[j].strip() != fence:
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j])
            j += 1
        marker = _MARKER.match(lines[i - 1]) if i > 0 else None
        language = (opening["info"].split() or [""])[0]
        found.append(
            Block(path, i + 1, language, "\n".join(body) + "\n", marker and marker["reason"])
        )
        i = j + 1
    return found


def all_blocks() -> list[Block]:
    return [block for path in pages() for block in blocks(path)]
