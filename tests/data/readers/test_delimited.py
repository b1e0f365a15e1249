"""Text tables read as text, and their cells read as missing, yes/no or text."""

from __future__ import annotations

import math

import numpy as np
import pytest

from loes.data.readers import TableReading
from loes.data.readers.delimited import (
    MISSING,
    is_missing,
    parse_flag,
    parse_number,
    read_delimited,
    require_columns,
)
from loes.errors import LoesError
from tests.data.readers._helpers import errors_of

# (the file's bytes, what the message says it is, how to fix it)
UNREADABLE = [
    (b"\xff\xfe\x00binary\x00", "it is UTF-16 text", 'save it again as "CSV UTF-8"'),
    (b"PK\x03\x04\x14\x00\x06\x00", "it is a spreadsheet workbook", 'as "CSV UTF-8"'),
    ("subject,site\n1,Hôpital\n".encode("latin-1"), "not UTF-8 text (byte 0xf4 on line 2",
     'save it again as "CSV UTF-8"'),
    (b"subject,site\n1,a\x00b\n", "it holds binary data (a NUL byte on line 2)",
     "give the table as a CSV or TSV file"),
    (b"", "is empty", "a table needs a header row"),
    (b"\n  \r\n,,\n", "is empty", "a table needs a header row"),
    (b'subject,site\n1,"Paris\n2,Lyon\n', 'a quote (") opened in row 2 is never closed',
     "close or remove it"),
    (b'subject,site\n1,"Paris" France\n', "row 2 has text after a closing quote",
     'double the quotes inside it ("a ""b"" c")'),
    (b"subject,site\n1,Paris, France\n2,Lyon\n",
     "some rows have more values than the header (row 1) has columns (2, separated by commas): "
     "row 2 has 3.", 'A value holding commas must be in quotes (a decimal comma too: write 7.5'),
    (b"subject;site;site\n1;a;b\n", "the column 'site' is in the header twice (columns 2 and 3)",
     "rename or delete one"),
]  # fmt: skip


@pytest.mark.parametrize(("data", "what", "fix"), UNREADABLE)
def test_unreadable_tables_say_what_the_file_is_and_how_to_fix_it(tmp_path, data, what, fix):
    path = tmp_path / "m.csv"
    path.write_bytes(data)
    with pytest.raises(LoesError) as error:
        read_delimited(path)
    assert what in str(error.value)
    assert fix in str(error.value)
    assert errors_of(path, format="manifest") == [f"{path}: {error.value}"]


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("subject;session;loes_score;age\n004;01;7,5;6,25\n005;01;3;7\n", "m.csv"),
        ("subject\tsession\tloes_score\tage\n004\t01\t7,5\t6,25\n005\t01\t3\t7\n", "m.csv"),
        ("subject|session|loes_score|age\r\n004|01|7,5|6,25\r\n005|01|3|7\r\n", "m.txt"),
        ('subject,session,loes_score,age\r004,01,7.5,6.25\r005,"01",3,7\r', "m.tsv"),
    ],
    ids=["semicolons", "tabs", "bars-crlf", "commas-cr"],
)
def test_separator_and_decimal_commas_are_told_from_the_file(tmp_path, text, name):
    """A European spreadsheet (``;``, ``7,5``) reads like the same table saved with commas."""
    path = tmp_path / name
    path.write_text(text, newline="")
    table = read_delimited(path)
    assert list(table.columns) == ["subject", "session", "loes_score", "age"]
    assert table["subject"].tolist() == ["004", "005"]
    assert table["session"].tolist() == ["01", "01"]
    assert table["loes_score"].tolist() == ["7.5", "3"]
    assert table["age"].tolist() == ["6.25", "7"]


def test_decimal_commas_are_read_only_in_columns_of_numbers(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("id;score;note;mixed\n1,2;7,5;a,b;7,5\nx;3;4,5;7.5\n")
    table = read_delimited(path)
    assert table["score"].tolist() == ["7.5", "3"]
    # an id that is not a number, text, and a column mixing both decimal marks stay as written
    assert table["id"].tolist() == ["1,2", "x"]
    assert table["note"].tolist() == ["a,b", "4,5"]
    assert table["mixed"].tolist() == ["7,5", "7.5"]


def test_rows_are_numbered_as_a_spreadsheet_shows_them(tmp_path):
    """Blank rows count, rows of empty cells and unnamed empty columns are left out."""
    path = tmp_path / "m.csv"
    path.write_text('\nsubject,note,,\n\n004,"two\nlines",,\n,,,\n005,,,\n')
    table = read_delimited(path)
    assert list(table.columns) == ["subject", "note"]
    assert table.index.tolist() == [4, 6]  # a spreadsheet row may hold several lines
    assert table["note"].tolist() == ["two\nlines", ""]


def test_a_saved_index_column_without_a_name_is_left_out(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(",subject,score\n0,004,1\n1,005,2\n")  # pandas' to_csv with its index
    assert read_delimited(path).to_dict("list") == {"subject": ["004", "005"], "score": ["1", "2"]}


def test_one_column_found_says_how_to_separate_them(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("subject session image loes_score\n004 1 a.nii.gz 3\n")
    message = errors_of(path)[0]
    assert "cannot tell the format from the columns" in message
    assert message.endswith(
        "Only one column was found: separate the columns with commas, semicolons or tabs."
    )
    assert errors_of(path, format="manifest")[0].endswith("commas, semicolons or tabs.")


@pytest.mark.parametrize(
    ("text", "number"),
    [("7", 7.0), (" -0.5 ", -0.5), ("1e1", 10.0), (".5", 0.5), ("3.", 3.0), ("+2", 2.0)],
)
def test_parse_number_reads_plain_decimal_notation(text, number):
    assert parse_number(text) == number


@pytest.mark.parametrize("text", ["1_0", "７", "7,5", "", "1.2.3", "e3", "0x10", "seven"])
def test_parse_number_refuses_what_float_would_take_or_a_typo(text):
    assert parse_number(text) is None


def test_parse_number_reads_nan_and_inf_for_the_checks_to_refuse():
    assert math.isnan(parse_number("NaN"))
    assert parse_number("-inf") == -math.inf


def test_read_delimited_keeps_text_strips_cells_and_finds_tabs(tmp_path):
    path = tmp_path / "t.csv"  # a TSV despite its name: the tab in the header tells
    path.write_text("\ufeff subject \tscore\tnote\n007\t 3 \t\n", encoding="utf-8")
    table = read_delimited(path)
    assert list(table.columns) == ["subject", "score", "note"]
    assert table.iloc[0].tolist() == ["007", "3", ""]


def test_cells(tmp_path):
    assert all(is_missing(v) for v in [None, math.nan, "", " n/a ", "NA", *MISSING])
    assert not any(is_missing(v) for v in ["0", 0, "none", False])
    assert [parse_flag(v) for v in ["1", "yes", " Y ", "true", "1.0", np.True_]] == [True] * 6
    assert [parse_flag(v) for v in ["0", "no", "n/a", "", None, "0.0", False]] == [False] * 7
    assert parse_flag("Maybe") == "Maybe"


def test_require_columns_names_the_missing_ones(tmp_path):
    (tmp_path / "t.csv").write_text("a,b\n1,2\n")
    table = read_delimited(tmp_path / "t.csv")
    reading = TableReading("t.csv", "manifest")
    assert require_columns(tmp_path / "t.csv", table, ["a"], "it", reading)
    assert not require_columns(
        tmp_path / "t.csv", table, ["a", "c"], "it", reading, ["a", "c", "d"]
    )
    assert [str(p) for p in reading.problems] == [
        "error: t.csv: missing column c (found a, b); it needs a, c, d."
    ]
