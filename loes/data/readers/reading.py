"""What passes between a reader and the shared checks: the rows read, and the problems met.

A reader (``manifest``, ``lab``, ``bids``) turns one source into a ``RawTable``; the shared
checks turn that into the final table. Both record problems in the same ``TableReading`` and
keep going, so that ``loes validate`` can list every problem at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from loes.data.problems import Problem

__all__ = ["NO_SESSION", "SET_ASIDE_COLUMNS", "RawTable", "TableReading", "scan_label"]

#: the session of a scan whose source names none (a BIDS subject without ``ses-*`` folders);
#: a placeholder in the table, never shown in a message (see ``scan_label``)
NO_SESSION = "ses-none"

#: the columns of :attr:`TableReading.set_aside`: the rows read but not kept, and why
SET_ASIDE_COLUMNS = ("image", "subject", "session", "loes_score", "reason")


def scan_label(subject: str, session: str) -> str:
    """A scan as messages name it: ``"sub-01 ses-02"``, or ``"sub-01"`` without a session.

    Examples::

        >>> scan_label("sub-01", "ses-02"), scan_label("sub-01", NO_SESSION)
        ('sub-01 ses-02', 'sub-01')
    """
    return subject if session in (NO_SESSION, "") else f"{subject} {session}"


@dataclass(frozen=True, eq=False)
class RawTable:
    """One source's rows as its reader read them, before the checks shared by every format.

    Attributes:
        table: one row per scan: ``subject``, ``session``, ``image`` (absolute path, ``""``
            when the cell is empty), ``loes_score`` (the cell as read, text), ``gd`` when the
            source says which scans are post-contrast (a bool, or the text of an unreadable
            flag), then the source's optional columns.
        where: each row's place, for messages, e.g. ``"manifest.csv row 2 (sub-01 ses-01)"``
            or a BIDS image path.
        image_hint: how image paths were found, for "image file not found" messages, e.g.
            ``"images are found under /data/bids"``.
        score_column: the score's column as the source names it (the lab's ``loes-score``),
            for score messages.
        score_where: where each row's score came from (in BIDS, a row of a TSV);
            ``None`` means ``where``.
        unscored: rows whose missing score the reader already reported, so that the checks
            do not report it again; ``None`` means none.
        guessed_images_dir: the folder the images were looked for in when the user gave none
            (the lab's CSV without ``--images-dir``); when none of the images is there, the
            checks give one error asking for ``--images-dir`` instead of one per row.

    Raises:
        ValueError: when ``where``, ``score_where`` or ``unscored`` do not have one entry per
            row of ``table``.
    """

    table: pd.DataFrame
    where: tuple[str, ...]
    image_hint: str
    score_column: str = "loes_score"
    score_where: tuple[str, ...] | None = None
    unscored: tuple[bool, ...] | None = None
    guessed_images_dir: str | None = None

    def __post_init__(self) -> None:
        for name in ("where", "score_where", "unscored"):
            values = getattr(self, name)
            if values is not None and len(values) != len(self.table):
                raise ValueError(
                    f"RawTable.{name} has {len(values)} entries for {len(self.table)} rows."
                )


@dataclass
class TableReading:
    """A table as read and checked, with every problem met on the way.

    Attributes:
        source: the source as given (a path), for messages.
        format: ``"manifest"``, ``"lab"`` or ``"bids"``; ``None`` when it could not be told.
        table: the checked table (see ``load_dataset`` for its columns), or ``None`` when the
            source could not be read at all.
        where: each row of ``table``'s place in the source, for messages.
        problems: errors and warnings, in the order they were met.
        set_aside: the rows read but left out of ``table`` on purpose (post-contrast scans
            without ``include_gd``), one per row with :data:`SET_ASIDE_COLUMNS`
            (``loes_score`` a float, NaN when unreadable; ``reason`` in plain words), so that
            rows read = rows kept + rows set aside.
    """

    source: str
    format: str | None
    table: pd.DataFrame | None = None
    where: tuple[str, ...] = ()
    problems: list[Problem] = field(default_factory=list)
    set_aside: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=list(SET_ASIDE_COLUMNS))
    )

    def error(self, where: str, message: str) -> None:
        """Record an error at ``where`` (a file or a row)."""
        self.problems.append(Problem("error", where, message))

    def warning(self, where: str, message: str) -> None:
        """Record a warning at ``where`` (a file or a row)."""
        self.problems.append(Problem("warning", where, message))

    @property
    def errors(self) -> list[Problem]:
        """The errors among ``problems``."""
        return [p for p in self.problems if p.severity == "error"]
