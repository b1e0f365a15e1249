import numpy as np
import pytest

from loes.pipeline.predict.table import FLAG_SEPARATOR, join_flags, split_flags


def test_flags_joined_come_back_whole_even_with_a_separator_inside_one():
    flags = ["image: qform and sform differ; sform used.", "run: Smoke run", "run: Smoke run"]
    cell = join_flags(flags)
    assert cell == f"image: qform and sform differ, sform used{FLAG_SEPARATOR}run: Smoke run"
    assert split_flags(cell) == ["image: qform and sform differ, sform used", "run: Smoke run"]


@pytest.mark.parametrize("cell", ["", None, np.nan])
def test_an_empty_flags_cell_holds_no_flag(cell):
    assert split_flags(cell) == []
    assert join_flags([]) == ""
