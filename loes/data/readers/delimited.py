"""Text tables (CSV/TSV) and their cells, as every format writes them: read as text, then parsed.

Cells stay text until a check parses them, so that ids like ``007`` keep their zeros and a bad
cell can be quoted as written. The separator (comma, semicolon, tab or bar) is told from the
header row, so that a table saved by a spreadsheet in any locale reads the same; in a table not
separated by commas, numbers written with a decimal comma (``7,5``) are read as ``7.5``.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from loes.data.readers.files import os_error_text
from loes.data.readers.reading import TableReading
from loes.errors import LoesError

__all__ = [
    "MISSING",
    "is_missing",
    "parse_flag",
    "parse_number",
    "read_delimited",
    "require_columns",
]

#: cell texts that mean "no value"
MISSING = frozenset({"", "n/a", "na", "N/A", "NA"})
_TRUE = {"1", "1.0", "true", "yes", "y"}
_FALSE = {"0", "0.0", "false", "no", "n"}
#: the separators told apart, the usual one first, with their names for messages
_SEPARATORS = {",": "commas", "\t": "tabs", ";": "semicolons", "|": "bars"}
_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_DECIMAL_COMMA = re.compile(r"[+-]?[0-9]*,[0-9]+")
_WHOLE = re.compile(r"[+-]?[0-9]+")
_COMMA_EXAMPLE = ' (a decimal comma too: write 7.5, or "7,5")'
_SAVE_AS = 'save it again as "CSV UTF-8" (Excel: File > Save As; LibreOffice: Text CSV, UTF-8)'


def read_delimited(path: Path) -> pd.DataFrame:
    """Read a CSV or TSV as strings (ids like ``007`` stay strings), cells stripped.

    The separator is the one of ``,``, tab, ``;`` and ``|`` that splits the header row into
    the most columns (a tab first for ``.tsv``/``.tab`` files, a comma otherwise). Without a
    comma separator, a column whose numbers use decimal commas (``7,5``) is read with decimal
    points (``7.5``). A UTF-8 byte-order mark is dropped; missing cells are ``""``; blank rows
    and unnamed columns (a spreadsheet's trailing separators, a saved index) are left out.
    The index is each row's number as a spreadsheet shows it (the header is row 1, blank rows
    count), for messages.

    Raises:
        LoesError: when the file cannot be read, is not UTF-8 text (a workbook, UTF-16, binary),
            is empty, or is not a table: a quote left open, a row with more values than the
            header has columns, a column named twice. The message names the row and says how
            to fix or re-save the file; the caller adds the file's name.
    """
    text = _read_text(path)
    header = next((line for line in re.split(r"\r\n|\r|\n", text) if line.strip()), "")
    sep = _separator(header, path.suffix.lower())
    records = _records(text, sep)
    first = next((i for i, fields in enumerate(records) if any(f.strip() for f in fields)), None)
    if first is None:
        raise LoesError("is empty; a table needs a header row of column names, then its rows.")
    names = [name.strip() for name in records[first]]
    rows = {
        i + 1: [cell.strip() for cell in fields]
        for i, fields in enumerate(records)
        if i > first and any(cell.strip() for cell in fields)
    }
    names, cells = _columns(names, rows, first + 1, sep)
    table = pd.DataFrame(cells, columns=names, index=pd.Index(list(rows), name="row"), dtype=str)
    if sep != ",":
        for column in table.columns:
            table[column] = _decimal_points(table[column])
    return table


def parse_number(text: object) -> float | None:
    """The number written in ``text`` (plain decimal notation, e.g. ``7``, ``-0.5``, ``1e3``,
    or ``nan``/``inf``), else ``None``; unlike ``float`` it refuses ``1_0`` and non-ASCII
    digits, which are typos in a table."""
    value = str(text).strip()
    if _NUMBER.fullmatch(value) or value.lower().lstrip("+-") in ("nan", "inf", "infinity"):
        return float(value)
    return None


def _read_text(path: Path) -> str:
    """The file's text, or a ``LoesError`` naming what it is instead and how to re-save it."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise LoesError(os_error_text(path, error)) from None
    unreadable = "cannot be read as a CSV/TSV table"
    if data.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):
        raise LoesError(
            f"{unreadable}: it is a spreadsheet workbook (.xlsx, .xls or .ods), not text; "
            f"{_SAVE_AS}."
        )
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise LoesError(f'{unreadable}: it is UTF-16 text (Excel\'s "Unicode Text"); {_SAVE_AS}.')
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        byte = data[error.start : error.start + 1].hex()
        raise LoesError(
            f"{unreadable}: it is not UTF-8 text (byte 0x{byte} on line {line}, e.g. an accented "
            f"letter in another encoding); {_SAVE_AS}."
        ) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise LoesError(
            f"{unreadable}: it holds binary data (a NUL byte on line {line}), not text; give the "
            "table as a CSV or TSV file."
        )
    return text


def _separator(header: str, suffix: str) -> str:
    """The separator splitting the header row into the most columns; ties go to the usual
    one for the file's extension."""
    candidates = list(_SEPARATORS)
    if suffix in (".tsv", ".tab"):
        candidates.remove("\t")
        candidates.insert(0, "\t")

    def columns(sep: str) -> int:
        return len(next(csv.reader([header], delimiter=sep), []))

    return max(candidates, key=columns)


def _records(text: str, sep: str) -> list[list[str]]:
    """Every record of ``text`` (``[]`` for a blank line), quotes honoured."""
    records: list[list[str]] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True)
    try:
        records.extend(reader)
    except csv.Error as error:
        row = len(records) + 1
        if "end of data" in str(error):
            problem = f'a quote (") opened in row {row} is never closed; close or remove it'
        elif "expected after" in str(error):
            problem = (
                f'row {row} has text after a closing quote ("); quote the whole value and '
                'double the quotes inside it ("a ""b"" c"), or remove the quotes'
            )
        else:
            problem = f"row {row}: {error}; fix that row"
        raise LoesError(f"cannot be read as a CSV/TSV table: {problem}.") from None
    return records


def _columns(
    names: list[str], rows: dict[int, list[str]], header_row: int, sep: str
) -> tuple[list[str], list[list[str]]]:
    """The named columns and each row's cells under them: short rows padded with ``""``,
    unnamed columns (a spreadsheet's trailing separators, a saved index) dropped; a
    ``LoesError`` when a row is too long or a name is used twice."""
    width = len(names)
    long = [(row, cells) for row, cells in rows.items() if any(cells[width:])]
    if long:
        shown = ", ".join(f"row {row} has {len(cells)}" for row, cells in long[:3])
        more = f" (and {len(long) - 3} more rows)" if len(long) > 3 else ""
        raise LoesError(
            f"some rows have more values than the header (row {header_row}) has columns "
            f"({width}, separated by {_SEPARATORS[sep]}): {shown}{more}. A value holding "
            f"{_SEPARATORS[sep]} must be in quotes{_COMMA_EXAMPLE if sep == ',' else ''}; "
            "otherwise add the missing column names to the header."
        )
    cells = [row[:width] + [""] * (width - len(row)) for row in rows.values()]
    keep = [k for k, name in enumerate(names) if name]
    seen: dict[str, int] = {}
    for k in keep:
        if names[k] in seen:
            raise LoesError(
                f"the column {names[k]!r} is in the header twice (columns {seen[names[k]] + 1} "
                f"and {k + 1}); rename or delete one."
            )
        seen[names[k]] = k
    return [names[k] for k in keep], [[row[k] for k in keep] for row in cells]


def _decimal_points(column: pd.Series) -> pd.Series:
    """``column`` with decimal commas made points, when every filled cell is a number and at
    least one is written with a decimal comma; otherwise unchanged."""
    filled = [v for v in column if not is_missing(v)]
    commas = [bool(_DECIMAL_COMMA.fullmatch(v)) for v in filled]
    numbers = all(comma or _WHOLE.fullmatch(v) for v, comma in zip(filled, commas, strict=True))
    if not any(commas) or not numbers:
        return column
    return column.str.replace(",", ".", regex=False)


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
        one = (
            " Only one column was found: separate the columns with commas, semicolons or tabs."
            if len(table.columns) == 1
            else ""
        )
        reading.error(
            path.name,
            f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} (found "
            f"{', '.join(map(str, table.columns))}); {what} needs "
            f"{', '.join(expected if expected is not None else required)}.{one}",
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
