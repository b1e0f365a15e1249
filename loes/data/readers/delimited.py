"""Text tables (CSV/TSV) and their cells, as every format writes them: read as text, then parsed.

Cells stay text until a check parses them, so that ids like ``007`` keep their zeros and a bad
cell can be quoted as written.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from loes.data.readers.reading import TableReading
from loes.errors import LoesError

__all__ = ["MISSING", "is_missing", "parse_flag", "read_delimited", "require_columns"]

#: cell texts that mean "no value"
MISSING = frozenset({"", "n/a", "na", "N/A", "NA"})
_TRUE = {"1", "1.0", "true", "yes", "y"}
_FALSE = {"0", "0.0", "false", "no", "n"}


def read_delimited(path: Path) -> pd.DataFrame:
    """Read a CSV or TSV as strings (ids like ``007`` stay strings), cells stripped.

    A ``.tsv``/``.tab`` file, or one whose first line holds a tab, is read as TSV; any other as
    CSV. A UTF-8 byte-order mark is dropped; missing cells are ``""``.

    Raises:
        LoesError: when the file cannot be read or parsed as a table with a header row.
    """
    try:
        with open(path, encoding="utf-8-sig") as handle:
            first = handle.readline()
        sep = "\t" if path.suffix.lower() in (".tsv", ".tab") or "\t" in first else ","
        table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise LoesError(
            f"cannot be read as a CSV/TSV table ({type(error).__name__}: {error}); check that "
            "it is a text table with a header row."
        ) from None
    table.columns = [str(c).strip() for c in table.columns]
    return table.apply(lambda column: column.str.strip())


def require_columns(
    path: Path,
    table: pd.DataFrame,
    required: Iterable[str],
    what: str,
    reading: TableReading,
    expected: Iterable[str] | None = None,
) -> bool:
    """True when ``table`` has every ``required`` column; otherwise record one error naming
    the missing ones, the columns found and the ``expected`` ones (default: ``required``)."""
    required = list(required)
    missing = [c for c in required if c not in table.columns]
    if missing:
        reading.error(
            path.name,
            f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} (found "
            f"{', '.join(map(str, table.columns))}); {what} needs "
            f"{', '.join(expected if expected is not None else required)}.",
        )
    return not missing


def is_missing(value: object) -> bool:
    """True for ``None``, NaN and the texts of ``MISSING`` (surrounding blanks ignored)."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() in MISSING


def parse_flag(raw: object) -> bool | str:
    """True/False for a yes/no cell (1/0, true/false, yes/no, y/n; missing means no); the raw
    text when unreadable, so that the checks can quote it."""
    if isinstance(raw, bool | np.bool_):
        return bool(raw)
    if is_missing(raw):
        return False
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return str(raw)
