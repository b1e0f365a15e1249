"""The scans a run read but did not use, and why: ``set_aside.csv`` in the run folder.

:func:`loes.pipeline.run.data.load_table` keeps the rows the readers set aside (post-contrast
scans without ``data.include_gd``; :attr:`loes.data.readers.TableReading.set_aside`) in the
table's ``attrs``; :func:`write_set_aside` writes them beside ``scans.csv`` (the rows kept), so
that rows read = ``scans.csv`` + ``set_aside.csv``, and the report says what was left out.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from loes.data.readers import SET_ASIDE_COLUMNS
from loes.errors import LoesError
from loes.io import csv_text, read_csv, write_text

__all__ = ["SET_ASIDE_ATTR", "SET_ASIDE_FILE", "read_set_aside", "set_aside_of", "write_set_aside"]

#: the run folder's file of the scans set aside
SET_ASIDE_FILE = "set_aside.csv"
#: the key of ``table.attrs`` holding them (records, one dict per scan)
SET_ASIDE_ATTR = "set_aside"


def set_aside_of(table: pd.DataFrame) -> pd.DataFrame:
    """The scans set aside when ``table`` was read (``table.attrs["set_aside"]``), as a
    DataFrame with :data:`~loes.data.readers.SET_ASIDE_COLUMNS` (empty when none were, or when
    the table carries no record of them)."""
    records = table.attrs.get(SET_ASIDE_ATTR) or []
    return pd.DataFrame(records, columns=list(SET_ASIDE_COLUMNS))


def write_set_aside(run_dir: str | os.PathLike, table: pd.DataFrame) -> Path:
    """Write :func:`set_aside_of` ``table`` to ``run_dir/set_aside.csv`` atomically (a header
    alone when nothing was set aside, so that its absence means an older run). Returns the
    path."""
    path = Path(run_dir) / SET_ASIDE_FILE
    write_text(path, csv_text(set_aside_of(table)))
    return path


def read_set_aside(run_dir: str | os.PathLike) -> pd.DataFrame | None:
    """``run_dir/set_aside.csv`` (columns :data:`~loes.data.readers.SET_ASIDE_COLUMNS`), or
    ``None`` when the run has none (a run made before loes recorded them).

    Raises:
        LoesError: naming the file when it cannot be read or lacks a column.
    """
    path = Path(run_dir) / SET_ASIDE_FILE
    if not path.is_file():
        return None
    try:
        frame = read_csv(path, dtype={"image": str, "subject": str, "session": str, "reason": str})
    except (OSError, ValueError) as error:
        raise LoesError(f"cannot read {path}: {error}; delete it or run loes cv again.") from None
    missing = [c for c in SET_ASIDE_COLUMNS if c not in frame]
    if missing:
        raise LoesError(
            f"{path} lacks the column(s) {', '.join(missing)}; delete it or run loes cv again."
        )
    return frame[list(SET_ASIDE_COLUMNS)].fillna({"session": "", "reason": ""})
