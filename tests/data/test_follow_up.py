import numpy as np
import pandas as pd
import pytest

from loes.data.follow_up import consecutive_pairs, in_time_order, order_basis, session_key
from loes.errors import LoesError


def _table(**columns):
    return pd.DataFrame(columns)


def test_sessions_are_paired_in_age_order_whatever_the_row_order():
    table = _table(
        subject=["a", "a", "a", "b"],
        session=["ses-3", "ses-1", "ses-2", "ses-1"],
        age=[9.0, 7.5, 8.0, 6.0],
        loes_score=[6.0, 1.0, 2.5, 4.0],
    )
    pairs, basis = consecutive_pairs(table.sample(frac=1, random_state=3), ["loes_score"])
    assert basis == "age"
    assert pairs[["subject", "from_session", "to_session"]].values.tolist() == [
        ["a", "ses-1", "ses-2"],
        ["a", "ses-2", "ses-3"],
    ]
    np.testing.assert_allclose(pairs["years"], [0.5, 1.0])
    np.testing.assert_allclose(pairs["loes_score_change"], [1.5, 3.5])
    np.testing.assert_allclose(pairs["loes_score_from"], [1.0, 2.5])


def test_age_wins_over_the_session_id_and_a_single_session_gives_no_pair():
    table = _table(subject=["a", "a", "c"], session=["ses-1", "ses-2", "ses-1"], age=[9.0, 7.0, 5])
    pairs, _ = consecutive_pairs(table)
    assert pairs[["from_session", "to_session"]].values.tolist() == [["ses-2", "ses-1"]]
    assert "c" not in set(pairs["subject"])


def test_without_every_age_sessions_go_in_natural_id_order():
    table = _table(
        subject=["a"] * 3, session=["ses-10", "ses-2", "ses-1"], age=[None, 8.0, 7.0], x=[3, 2, 1]
    )
    assert order_basis(table) == "session id"
    pairs, basis = consecutive_pairs(table, ["x"])
    assert basis == "session id"
    assert pairs["to_session"].tolist() == ["ses-2", "ses-10"]
    assert pairs["years"].isna().all()
    assert session_key("ses-2") < session_key("ses-10")


def test_ties_in_age_are_broken_by_session_id():
    table = _table(subject=["a"] * 3, session=["ses-2", "ses-1", "ses-3"], age=[8.0, 8.0, 9.0])
    assert in_time_order(table)["session"].tolist() == ["ses-1", "ses-2", "ses-3"]
    pairs, _ = consecutive_pairs(table)
    assert pairs["years"].tolist() == [0.0, 1.0]


def test_repeats_pair_within_themselves():
    table = _table(repeat=[0, 0, 1, 1], subject=["a"] * 4, session=["ses-1", "ses-2"] * 2)
    pairs, _ = consecutive_pairs(table, groups=("repeat", "subject"))
    assert pairs["repeat"].tolist() == [0, 1]


def test_a_session_twice_or_a_missing_column_is_named():
    with pytest.raises(LoesError, match="session ses-1 of a appears on 2 rows"):
        consecutive_pairs(_table(subject=["a", "a"], session=["ses-1", "ses-1"]))
    with pytest.raises(LoesError, match=r"lacks the column.*loes_score"):
        consecutive_pairs(_table(subject=["a"], session=["ses-1"]), ["loes_score"])


def test_a_table_with_a_repeated_index_pairs_as_a_fresh_one():
    table = _table(
        subject=["a", "a", "b", "b"], session=["ses-2", "ses-1", "ses-1", "ses-2"], x=[3, 1, 5, 6]
    )
    glued = pd.concat([table.iloc[:2], table.iloc[2:]]).set_axis([0, 1, 0, 1])  # no ignore_index
    pairs, _ = consecutive_pairs(glued, ["x"])
    expected, _ = consecutive_pairs(table, ["x"])
    pd.testing.assert_frame_equal(pairs, expected)
    assert pairs["x_change"].tolist() == [2.0, 1.0]
