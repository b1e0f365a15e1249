"""Follow-up: the sessions of each subject in time order, and their consecutive pairs.

Change in the Loes score is read between consecutive sessions of one subject (Liberato et al.,
Neurology 2019: a rise of 0.5 points or more is radiological progression). Sessions are put in
order by the age at the scan (years) when every row has one, else by the session id in
natural order (``ses-2`` before ``ses-10``); ties in age are broken by session id, so the order
never depends on the order of the rows.

Examples::

    >>> import pandas as pd
    >>> table = pd.DataFrame({"subject": ["s1"] * 3, "session": ["ses-10", "ses-2", "ses-1"],
    ...                       "loes_score": [4.0, 1.5, 1.0]})
    >>> pairs, basis = consecutive_pairs(table, values=["loes_score"])
    >>> basis, pairs[["from_session", "to_session", "loes_score_change"]].values.tolist()
    ('session id', [['ses-1', 'ses-2', 0.5], ['ses-2', 'ses-10', 2.5]])
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import pairwise

import numpy as np
import pandas as pd

from loes.errors import LoesError

__all__ = [
    "PROGRESSION",
    "consecutive_pairs",
    "has_ages",
    "in_time_order",
    "order_basis",
    "session_key",
]

#: a rise of at least this many Loes points between two sessions is radiological progression
#: (Liberato et al., Neurology 2019;92:e1698)
PROGRESSION = 0.5


def session_key(session: object) -> tuple:
    """Natural sort key of a session id: ``ses-2`` before ``ses-10``."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", str(session))
    )


def has_ages(table: pd.DataFrame) -> bool:
    """Whether ``table`` holds a numeric ``age`` (years at the scan) on every row."""
    return "age" in table.columns and bool(
        pd.to_numeric(table["age"], errors="coerce").notna().all()
    )


def order_basis(table: pd.DataFrame) -> str:
    """What orders the sessions of ``table``: ``"age"`` or ``"session id"``."""
    return "age" if has_ages(table) else "session id"


def in_time_order(table: pd.DataFrame, groups: Sequence[str] = ("subject",)) -> pd.DataFrame:
    """The rows of ``table`` grouped by ``groups`` (natural order) and, within a group, by age
    when every row has one (:func:`has_ages`), then by session id (:func:`session_key`); the
    index is kept as it is (duplicates too)."""
    ages = pd.to_numeric(table["age"]).to_numpy(float) if has_ages(table) else np.zeros(len(table))
    keys = [
        (*(session_key(g) for g in group), age, session_key(session))
        for *group, age, session in zip(
            *(table[g] for g in groups), ages, table["session"], strict=True
        )
    ]
    return table.iloc[sorted(range(len(table)), key=keys.__getitem__)]


def consecutive_pairs(
    table: pd.DataFrame, values: Sequence[str] = (), groups: Sequence[str] = ("subject",)
) -> tuple[pd.DataFrame, str]:
    """Every pair of consecutive sessions of each subject, with the change of ``values``.

    Args:
        table: one row per scan with ``subject`` and ``session`` (and ``age`` in years, used
            when every row has one); further columns are ignored but for ``values``.
        values: numeric columns whose change (later minus earlier) is wanted, e.g.
            ``["loes_score", "predicted"]``.
        groups: the columns that make one subject's series (``("repeat", "subject")`` for a
            repeated cross-validation's predictions).

    Returns:
        ``(pairs, basis)``: ``pairs`` has one row per consecutive pair with the ``groups``
        columns, ``from_session``, ``to_session``, ``years`` (age difference; NaN without
        ages), and ``<value>_from``, ``<value>_to``, ``<value>_change`` per value; a subject
        with one session gives no row. ``basis`` is ``"age"`` or ``"session id"``.

    Raises:
        LoesError: a missing column, or one session of one subject on several rows.
    """
    groups, values = list(groups), list(values)
    missing = [c for c in [*groups, "session", *values] if c not in table.columns]
    if missing:
        raise LoesError(f"the table lacks the column(s) {', '.join(missing)} for follow-up pairs.")
    twice = table.duplicated([*groups, "session"], keep=False)
    if twice.any():
        row = table[twice].iloc[0]
        raise LoesError(
            f"session {row['session']} of {row[groups[-1]]} appears on {int(twice.sum())} rows; "
            "each session of a subject must appear once to pair it with the next."
        )
    by_age = has_ages(table)
    ordered = in_time_order(table, groups)
    columns = [
        *groups,
        "from_session",
        "to_session",
        "years",
        *(f"{v}_{end}" for v in values for end in ("from", "to", "change")),
    ]
    rows = []
    for key, series in ordered.groupby(groups, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        for (_, earlier), (_, later) in pairwise(series.iterrows()):
            row = [*key, earlier["session"], later["session"]]
            row.append(float(later["age"]) - float(earlier["age"]) if by_age else np.nan)
            for v in values:
                start, end = float(earlier[v]), float(later[v])
                row += [start, end, end - start]
            rows.append(row)
    return pd.DataFrame(rows, columns=columns), "age" if by_age else "session id"
