"""Property tests of the table readers: whatever the bytes, dialect or columns, a reading is a
correct table or problems that each name the file or row, never a traceback."""

from __future__ import annotations

import csv
import io
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loes.data import load_dataset
from loes.data.readers import read_table
from loes.data.readers.delimited import read_delimited
from loes.errors import LoesError

pytestmark = pytest.mark.filterwarnings("error")  # a warning would be a traceback in disguise

PROPERTIES = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
REQUIRED = ["subject", "session", "image", "loes_score"]
#: pieces of tables and of what is not a table, so that random files are often nearly tables
FRAGMENTS = [
    b"subject", b"session", b"image", b"loes_score", b"anonymized_subject_id", b"loes-score",
    b"gd", b",", b";", b"\t", b"|", b'"', b"'", b"\n", b"\r\n", b"\r", b" ", b"004", b"7,5",
    b"7.5", b"-1", b"nan", b"1_0", b"a.nii.gz", b"/", b"..", b"\xef\xbb\xbf", b"\xff\xfe",
    b"\x00", b"\xe9", b"PK\x03\x04", b"",
]  # fmt: skip


def read_everything(path: Path) -> None:
    """``read_table`` and ``load_dataset`` of ``path``: problems located, never a traceback."""
    reading = read_table(path)
    for problem in reading.problems:
        assert problem.severity in ("error", "warning")
        assert problem.where.startswith((str(path), path.name)), problem
        assert problem.message.strip(), problem
    if reading.table is not None:
        assert list(reading.table.columns[:5]) == [*REQUIRED, "gd"]
        assert len(reading.where) == len(reading.table)
    message = raised(load_dataset, path)
    assert message is None or message.startswith(f"{path}: ")


def raised(function, *args) -> str | None:
    """The message of the ``LoesError`` that ``function(*args)`` raises; ``None`` if none."""
    try:
        function(*args)
    except LoesError as error:
        return str(error)
    return None


@PROPERTIES
@given(data=st.binary(max_size=200) | st.lists(st.sampled_from(FRAGMENTS)).map(b"".join))
def test_any_bytes_give_located_problems_or_a_table(tmp_path, data):
    path = tmp_path / "m.csv"
    path.write_bytes(data)
    read_everything(path)
    message = raised(read_delimited, path)
    assert message is None or message.strip()
    if message is None:
        table = read_delimited(path)
        assert all(isinstance(name, str) and name for name in table.columns)
        assert all(isinstance(cell, str) for column in table for cell in table[column])


# --- tables written in random dialects read back as written ---------------------------------

EXTRA_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,7}", fullmatch=True).filter(
    lambda name: name not in (*REQUIRED, "gd", "scan")
)
#: free text: never a number, with the characters a dialect must quote
TEXT = st.builds(
    str.__add__,
    st.sampled_from(string.ascii_letters),
    st.text(alphabet=string.ascii_letters + string.digits + " ,;|\t\"'\n-.é", max_size=8),
)
IDS = st.from_regex(r"(sub-)?[0-9A-Za-z]{1,4}", fullmatch=True)


@st.composite
def tables(draw):
    """(names in file order, rows of cells as written, the cells as they must read back,
    how to write them)."""
    sep = draw(st.sampled_from([",", ";", "\t", "|"]))
    decimal = draw(st.sampled_from([".", ","])) if sep != "," else "."
    extras = draw(st.lists(EXTRA_NAMES, max_size=3, unique=True))
    kinds = {name: draw(st.sampled_from(["text", "number", "empty"])) for name in extras}
    names = draw(st.permutations(REQUIRED + extras))
    written, expected = [], []
    for i in range(draw(st.integers(0, 4))):
        cells = {
            "subject": draw(IDS),
            "session": draw(IDS),
            "image": f"img/scan {i}.nii.gz",
            "loes_score": f"{draw(st.integers(0, 68)) / 2:g}",
        }
        for name, kind in kinds.items():
            if kind == "text":
                cells[name] = draw(TEXT)
            elif kind == "number":
                cells[name] = f"{draw(st.integers(-999, 999)) / 4:g}"
            else:
                cells[name] = draw(st.sampled_from(["", "n/a", " "]))
        expected.append([cells[name].strip() for name in names])
        numbers = {"loes_score", *(n for n, k in kinds.items() if k == "number")}
        written.append(
            [cells[n].replace(".", decimal) if n in numbers else cells[n] for n in names]
        )
    ending = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    # csv.writer quotes only the line ending's own characters: with "\r" it leaves a "\n" in a
    # cell bare, which no reader (nor a spreadsheet) can tell from a new row
    quotings = [csv.QUOTE_ALL] if ending == "\r" else [csv.QUOTE_MINIMAL, csv.QUOTE_ALL]
    dialect = {
        "delimiter": sep,
        "quoting": draw(st.sampled_from(quotings)),
        "lineterminator": ending,
    }
    return names, written, expected, dialect, draw(st.booleans())


@PROPERTIES
@given(table=tables(), name=st.sampled_from(["m.csv", "m.tsv", "m.txt"]))
def test_tables_in_any_dialect_read_back_as_written(tmp_path, table, name):
    names, written, expected, dialect, bom = table
    text = io.StringIO()
    writer = csv.writer(text, **dialect)
    writer.writerow(names)
    writer.writerows(written)
    path = tmp_path / name
    path.write_bytes(("\ufeff" if bom else "").encode() + text.getvalue().encode())

    read = read_delimited(path)
    assert list(read.columns) == names
    assert read.values.tolist() == expected
    assert read.index.tolist() == list(range(2, len(expected) + 2))

    reading = read_table(path)
    assert reading.format == "manifest"
    assert reading.table is not None
    by_name = [dict(zip(names, row, strict=True)) for row in expected]
    assert reading.table["subject"].tolist() == [row["subject"] for row in by_name]
    assert reading.table["session"].tolist() == [row["session"] for row in by_name]
    assert reading.table["loes_score"].tolist() == [float(row["loes_score"]) for row in by_name]
    assert reading.where == tuple(
        f"{name} row {i + 2} ({row['subject']} {row['session']})" for i, row in enumerate(by_name)
    )
    # the images do not exist and ids may repeat: nothing else is wrong
    for problem in reading.errors:
        assert problem.where.startswith(f"{name} row ")
        assert problem.message.startswith(("image file not found", "image ")) or (
            " is listed again (first at " in problem.message
        ), problem
    read_everything(path)
