"""The records passed along a reading: a reader's RawTable and the TableReading."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from loes.data.readers import RawTable, TableReading


def test_raw_table_defaults_and_is_frozen():
    raw = RawTable(pd.DataFrame({"subject": ["s"]}), ("row 2",), image_hint="hint")
    assert raw.score_column == "loes_score"
    assert (raw.score_where, raw.unscored, raw.guessed_images_dir) == (None, None, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        raw.image_hint = "other"  # type: ignore[misc]


@pytest.mark.parametrize("name", ["where", "score_where", "unscored"])
def test_raw_table_needs_one_entry_per_row(name):
    fields = {"where": ("row 2", "row 3"), name: ("only one",)}
    with pytest.raises(ValueError, match=f"RawTable.{name} has 1 entries for 2 rows"):
        RawTable(pd.DataFrame({"subject": ["s", "t"]}), image_hint="hint", **fields)


def test_table_reading_collects_problems_in_order():
    reading = TableReading("m.csv", "manifest")
    reading.warning("row 2", "odd")
    reading.error("row 3", "bad")
    assert [str(p) for p in reading.problems] == ["warning: row 2: odd", "error: row 3: bad"]
    assert [str(p) for p in reading.errors] == ["error: row 3: bad"]
    assert (reading.table, reading.where) == (None, ())
