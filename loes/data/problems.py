"""What is wrong with a dataset, where, and how to fix it: the common currency of validation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

from loes.errors import LoesError

__all__ = ["Problem", "Severity", "ValidationReport", "errors_message"]

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One problem: ``where`` names the file or row, ``message`` says what is wrong and the fix.

    Examples::

        >>> print(Problem("error", "manifest.csv row 7 (sub-003 ses-02)", "loes_score is missing"))
        error: manifest.csv row 7 (sub-003 ses-02): loes_score is missing
    """

    severity: Severity
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.where}: {self.message}"


@dataclass
class ValidationReport:
    """Every problem found in one dataset, errors first in reading order, then warnings.

    ``table`` is the table as read (``None`` when it could not be read at all); ``ok`` is true
    when there are no errors (warnings allowed).
    """

    source: str
    format: str | None
    problems: list[Problem] = field(default_factory=list)
    table: pd.DataFrame | None = None
    deep: bool = False

    @property
    def errors(self) -> list[Problem]:
        """The problems that stop a run."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        """The problems worth a look that do not stop a run."""
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when there is no error."""
        return not self.errors

    def summary(self) -> str:
        """One line: how many scans and subjects, errors and warnings."""
        if self.table is not None and len(self.table):
            size = (
                f"{len(self.table)} scans of {self.table['subject'].nunique()} subjects, "
                f"{'every voxel read' if self.deep else 'headers checked'}"
            )
        else:
            size = "no scans read"
        found = f"{_plural(len(self.errors), 'error')}, {_plural(len(self.warnings), 'warning')}"
        return f"{self.source} ({self.format or 'unknown format'}, {size}): {found}"

    def text(self) -> str:
        """The whole report as text: the summary, then one line per problem."""
        lines = [self.summary()]
        lines += [f"  {problem}" for problem in self.errors + self.warnings]
        if self.errors:
            lines.append("Fix the errors, then run `loes validate` again.")
        elif self.warnings:
            lines.append("Only warnings: the data can be used; check them anyway.")
        else:
            lines.append("No problems found.")
        return "\n".join(lines)

    __str__ = text

    def raise_for_errors(self, limit: int = 10) -> pd.DataFrame:
        """Return the table when there are no errors, else raise ``LoesError`` listing them."""
        if self.ok and self.table is not None:
            return self.table
        raise LoesError(errors_message(self.source, self.errors, limit))


def errors_message(source: str, errors: list[Problem], limit: int = 10) -> str:
    """A ``LoesError`` message listing the first ``limit`` errors and where to see the rest."""
    lines = [f"{source}: {_plural(len(errors), 'error')} in the data:"]
    lines += [f"  {p.where}: {p.message}" for p in errors[:limit]]
    if len(errors) > limit:
        lines.append(f"  ... and {len(errors) - limit} more.")
    lines.append(f"Run `loes validate {source}` to see every problem at once.")
    return "\n".join(lines)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"
