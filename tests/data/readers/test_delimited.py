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
    read_delimited,
    require_columns,
)
from loes.errors import LoesError
from tests.data.readers._helpers import errors_of


def test_unreadable_table(tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes(b"\xff\xfe\x00binary\x00")
    assert "cannot be read as a CSV/TSV table" in errors_of(path, format="manifest")[0]
    with pytest.raises(LoesError, match="check that it is a text table with a header row"):
        read_delimited(path)


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
