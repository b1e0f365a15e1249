"""What is wrong with a dataset, where, and how to fix it: the common currency of validation.

The same problem met at many places (46 scans without a score) is shown once, with a count
and the first places (``summarise``); ``ValidationReport.text(verbose=True)`` lists each.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

from loes.errors import LoesError

__all__ = [
    "SUMMARY_MIN_COUNT",
    "Problem",
    "ProblemGroup",
    "Severity",
    "ValidationReport",
    "errors_message",
    "plural",
    "summarise",
]

Severity = Literal["error", "warning"]

SUMMARY_MIN_COUNT = 3
"""A problem met at this many places or more is shown once, with a count."""
_SHOWN_PLACES = 3
# words, numbers, ids (sub-01, 0.5, T1w.nii.gz) or one other character
_TOKEN = re.compile(r"[A-Za-z0-9.+-]+|\s+|.")


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


@dataclass(frozen=True)
class ProblemGroup:
    """The same problem at several places: ``message`` keeps what the messages share and
    writes what differs as ``sub-*``, ``ses-*`` or ``*``.

    Examples::

        >>> problems = [
        ...     Problem("error", f"{n}.nii", f"no Loes score for sub-0{i}")
        ...     for i, n in enumerate("abcd", start=1)
        ... ]
        >>> print(summarise(problems)[0])
        error (4 times): no Loes score for sub-* (first at a.nii; b.nii; c.nii; ...)
    """

    severity: Severity
    message: str
    problems: tuple[Problem, ...]

    def __str__(self) -> str:
        places = [p.where for p in self.problems[:_SHOWN_PLACES]]
        more = "; ..." if len(self.problems) > _SHOWN_PLACES else ""
        return (
            f"{self.severity} ({len(self.problems)} times): {self.message} "
            f"(first at {'; '.join(places)}{more})"
        )


def summarise(
    problems: Iterable[Problem], min_count: int = SUMMARY_MIN_COUNT
) -> list[Problem | ProblemGroup]:
    """``problems`` in their order, those of one kind met ``min_count`` times or more
    replaced, where the first of them was, by one ``ProblemGroup``.

    Two problems are of one kind when they have the same severity and their messages differ
    only in ids (``sub-*``, ``ses-*``) and numbers, e.g. "no Loes score for sub-01 ses-01"
    and "no Loes score for sub-02 ses-03".
    """
    problems = list(problems)
    kinds: dict[tuple, list[Problem]] = {}
    for problem in problems:
        kinds.setdefault(_kind(problem), []).append(problem)
    shown: list[Problem | ProblemGroup] = []
    for problem in problems:
        members = kinds[_kind(problem)]
        if len(members) < min_count:
            shown.append(problem)
        elif problem is members[0]:
            message = _common_message([p.message for p in members])
            shown.append(ProblemGroup(problem.severity, message, tuple(members)))
    return shown


def _kind(problem: Problem) -> tuple:
    return (problem.severity, *(_mask(t) for t in _TOKEN.findall(problem.message)))


def _mask(token: str) -> str:
    if token.startswith(("sub-", "ses-")):
        return token[:4] + "*"
    return "*" if any(c.isdigit() for c in token) else token


def _common_message(messages: list[str]) -> str:
    """The messages' shared text, each token that differs written as its mask."""
    columns = zip(*(_TOKEN.findall(m) for m in messages), strict=True)
    return "".join(c[0] if len(set(c)) == 1 else _mask(c[0]) for c in columns)


@dataclass
class ValidationReport:
    """Every problem found in one dataset, errors first in reading order, then warnings.

    ``table`` is the table as read (``None`` when it could not be read at all); ``set_aside``
    the rows read but left out of it on purpose, with the reason (post-contrast scans without
    ``include_gd``; see :attr:`loes.data.readers.TableReading.set_aside`); ``ok`` is true when
    there are no errors (warnings allowed).
    """

    source: str
    format: str | None
    problems: list[Problem] = field(default_factory=list)
    table: pd.DataFrame | None = None
    deep: bool = False
    set_aside: pd.DataFrame | None = None

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
        """One line: how many scans and subjects (with rows set aside: how many rows were read,
        how many kept, how many set aside and why), errors and warnings."""
        aside = ""
        if self.set_aside is not None and len(self.set_aside):
            why = sorted({str(r).split(";")[0] for r in self.set_aside["reason"]})
            aside = f"{plural(len(self.set_aside), 'scan')} set aside ({', '.join(why)}), "
        if self.table is not None and len(self.table):
            read = f"{plural(len(self.table) + len(self.set_aside), 'row')} read: " if aside else ""
            size = (
                f"{read}{plural(len(self.table), 'scan')} of "
                f"{plural(self.table['subject'].nunique(), 'subject')}{' kept' * bool(aside)}, "
                f"{aside}{'every voxel read' if self.deep else 'headers checked'}"
            )
        else:
            size = f"no scans kept, {aside[:-2]}" if aside else "no scans read"
        found = f"{plural(len(self.errors), 'error')}, {plural(len(self.warnings), 'warning')}"
        return f"{self.source} ({self.format or 'unknown format'}, {size}): {found}"

    def text(self, verbose: bool = False) -> str:
        """The whole report as text: the summary, then the problems, one line per kind of
        problem (``summarise``), or with ``verbose`` one line per problem."""
        lines = [self.summary()]
        problems = self.errors + self.warnings
        shown = problems if verbose else summarise(problems)
        lines += [f"  {problem}" for problem in shown]
        if len(shown) < len(problems):
            lines.append(
                "Problems met at several places are shown once; `loes validate --verbose` "
                "lists each."
            )
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
    """A ``LoesError`` message listing the errors, one line per kind (``summarise``), the
    first ``limit`` lines, and where to see the rest."""
    shown = summarise(errors)
    lines = [f"{source}: {plural(len(errors), 'error')} in the data:"]
    lines += [
        f"  {p.where}: {p.message}" if isinstance(p, Problem) else f"  {p}" for p in shown[:limit]
    ]
    if len(shown) > limit:
        rest = sum(1 if isinstance(p, Problem) else len(p.problems) for p in shown[limit:])
        lines.append(f"  ... and {rest} more.")
    verbose = "--verbose " if len(shown) < len(errors) else ""
    lines.append(f"Run `loes validate {verbose}{source}` to see every problem at once.")
    return "\n".join(lines)


def plural(count: int, word: str, many: str | None = None) -> str:
    """``count`` and ``word``, made plural (``many``, default ``word + "s"``) unless the count
    is 1, for messages.

    Examples::

        >>> plural(1, "scan"), plural(3, "scan"), plural(0, "analysis", "analyses")
        ('1 scan', '3 scans', '0 analyses')
    """
    return f"{count} {word if count == 1 else many or word + 's'}"
