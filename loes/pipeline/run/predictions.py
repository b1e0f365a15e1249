"""A run's out-of-fold predictions: the long table every fold writes, and ``predictions.csv``.

The long table (:data:`PREDICTION_COLUMNS`: ``repeat, fold, subject,
session, loes_score, predicted, model``) has one row per scan per model per repeat; it is what
each fold writes and what :func:`~loes.pipeline.report.summary.summarize` reads. ``predictions.csv``
holds the same numbers with one row per scan per repeat and one ``predicted`` column per model:
``predicted`` for the network, ``predicted_<baseline>`` for each baseline. Scores are Loes
points (0 to 34). An ``age`` column (years at the scan), when the folds write one, is carried
through both layouts for the trajectory plot.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd

from loes.data.loes_items import MAX_LOES_SCORE
from loes.errors import LoesError
from loes.io import read_csv

__all__ = [
    "CHANGE_RANGE",
    "ID_COLUMNS",
    "NETWORK",
    "OOF_CHANGE_COLUMNS",
    "OPTIONAL_COLUMNS",
    "PREDICTED_PREFIX",
    "PREDICTION_COLUMNS",
    "check_predictions",
    "from_wide",
    "model_order",
    "read_predictions",
    "to_wide",
]

#: The model name of the trained network in a predictions table; every other name is a baseline.
NETWORK = "network"

#: Columns of the long out-of-fold predictions table (what the report's ``summarize`` reads).
PREDICTION_COLUMNS = ("repeat", "fold", "subject", "session", "loes_score", "predicted", "model")

#: Range of a change of the Loes score between two sessions, Loes points.
CHANGE_RANGE = (-MAX_LOES_SCORE, MAX_LOES_SCORE)

#: Columns of a fold's ``changes.csv``: the paired change model's out-of-fold change per
#: consecutive pair of test sessions (``loes_score_change`` true, ``predicted_change``
#: predicted; Loes points, later minus earlier).
OOF_CHANGE_COLUMNS = (
    "repeat",
    "fold",
    "subject",
    "from_session",
    "to_session",
    "loes_score_change",
    "predicted_change",
)


def model_order(models: Sequence[str]) -> list[str]:
    """The network first, then the baselines in alphabetical order."""
    unique = sorted(set(models))
    return [NETWORK, *[m for m in unique if m != NETWORK]] if NETWORK in unique else unique


def check_predictions(predictions: pd.DataFrame) -> pd.DataFrame:
    """The long table's :data:`PREDICTION_COLUMNS` with typed ids, rows without a prediction
    dropped; raises :class:`LoesError` for missing columns, no prediction, a scan without a true
    score, or a scan predicted twice by one model in one repeat."""
    missing = [c for c in PREDICTION_COLUMNS if c not in predictions.columns]
    if missing:
        raise LoesError(
            f"The predictions table lacks the column(s) {', '.join(missing)}; it needs "
            f"{', '.join(PREDICTION_COLUMNS)} (one row per scan per model per repeat)."
        )
    table = predictions.loc[:, list(PREDICTION_COLUMNS)].copy()
    table = table.dropna(subset=["predicted"])
    if table.empty:
        raise LoesError("The predictions table has no predictions to summarize.")
    if table["loes_score"].isna().any():
        raise LoesError("The predictions table has rows without a true loes_score.")
    table["model"] = table["model"].astype(str)
    table["subject"] = table["subject"].astype(str)
    table["session"] = table["session"].astype(str)
    table["repeat"] = table["repeat"].astype(int)
    table["fold"] = table["fold"].astype(int)
    duplicated = table.duplicated(["model", "repeat", "subject", "session"], keep=False)
    if duplicated.any():
        first = table[duplicated].iloc[0]
        raise LoesError(
            f"Scan {first['subject']}/{first['session']} has several predictions from model "
            f"{first['model']!r} in repeat {first['repeat']}; each scan must be predicted once "
            "per model per repeat (out of fold)."
        )
    return table


#: Prefix of a baseline's column in ``predictions.csv``: ``predicted_median`` is the median's.
PREDICTED_PREFIX = "predicted_"

#: The columns that identify one row of ``predictions.csv``, in file order.
ID_COLUMNS = ["repeat", "fold", "subject", "session"]

#: Columns describing a scan that are kept when present: ``age`` (years at the scan).
OPTIONAL_COLUMNS = ("age",)


def _column(model: str) -> str:
    return "predicted" if model == NETWORK else f"{PREDICTED_PREFIX}{model}"


def _model_of(column: str) -> str:
    return NETWORK if column == "predicted" else column[len(PREDICTED_PREFIX) :]


def to_wide(predictions: pd.DataFrame) -> pd.DataFrame:
    """The long predictions table in the layout of ``predictions.csv``: one row per scan per repeat.

    ``predictions`` has the columns ``repeat, fold, subject, session, loes_score, predicted,
    model`` (and optionally ``age``; others are ignored; rows without a prediction are dropped).
    The result has the columns ``repeat, fold, subject, session[, age], loes_score, predicted``
    (the network) and
    ``predicted_<model>`` for each baseline, the network first and baselines alphabetically,
    sorted by repeat, fold, subject and session. Scores and predictions are in Loes points; a
    model that did not predict a scan leaves its cell empty.

    Raises :class:`LoesError` if a scan has different folds, true scores or ages for different
    models of the same repeat (the baselines must use the network's folds), and ``KeyError`` if
    a column is missing.
    """
    optional = [c for c in OPTIONAL_COLUMNS if c in predictions.columns]
    long = predictions.loc[:, [*PREDICTION_COLUMNS, *optional]].dropna(subset=["predicted"])
    long = long.astype({"repeat": int, "fold": int, "subject": str, "session": str, "model": str})
    scans = long[["repeat", "subject", "session", "fold", "loes_score", *optional]]
    scans = scans.drop_duplicates()
    conflict = scans.duplicated(["repeat", "subject", "session"], keep=False)
    if conflict.any():
        row = scans[conflict].iloc[0]
        raise LoesError(
            f"Scan {row['subject']}/{row['session']} in repeat {row['repeat']} has different folds "
            "or true scores for different models; baselines must use the network's folds."
        )
    wide = long.pivot(index=["repeat", "subject", "session"], columns="model", values="predicted")
    models = model_order(wide.columns)
    wide = wide[models].rename(columns={m: _column(m) for m in models}).reset_index()
    wide.columns.name = None
    wide = scans.merge(wide, on=["repeat", "subject", "session"], how="left")
    wide = wide[[*ID_COLUMNS, *optional, "loes_score", *[_column(m) for m in models]]]
    return wide.sort_values(["repeat", "fold", "subject", "session"], ignore_index=True)


def from_wide(wide: pd.DataFrame) -> pd.DataFrame:
    """The long table from the ``predictions.csv`` layout: the inverse of :func:`to_wide`.

    ``wide`` has the columns ``repeat, fold, subject, session, loes_score`` and at least one of
    ``predicted`` (the network, model ``"network"``) or ``predicted_<model>``. Returns the
    columns ``repeat, fold, subject, session, loes_score, predicted, model`` (and ``age`` when
    ``wide`` has it), one row per non-empty prediction, models in column order.

    Raises :class:`LoesError` naming the missing columns.
    """
    columns = [c for c in wide.columns if c == "predicted" or c.startswith(PREDICTED_PREFIX)]
    missing = [c for c in [*ID_COLUMNS, "loes_score"] if c not in wide.columns]
    if missing or not columns:
        raise LoesError(
            f"predictions.csv lacks {', '.join(missing) or 'a predicted column'}; expected "
            "repeat, fold, subject, session, loes_score, predicted[, predicted_<baseline>...]."
        )
    optional = [c for c in OPTIONAL_COLUMNS if c in wide.columns]
    renamed = wide.rename(columns={c: _model_of(c) for c in columns})
    long = renamed.melt(
        id_vars=[*ID_COLUMNS, *optional, "loes_score"],
        value_vars=[_model_of(c) for c in columns],
        var_name="model",
        value_name="predicted",
    )
    long = long.dropna(subset=["predicted"])
    return long[[*PREDICTION_COLUMNS, *optional]].reset_index(drop=True)


def read_predictions(path: str | os.PathLike) -> pd.DataFrame:
    """Read a report's ``predictions.csv`` back into the long table that ``summarize`` takes.

    Subject and session ids are read as strings (``"007"`` stays ``"007"``). Returns the columns
    ``repeat, fold, subject, session, loes_score, predicted, model`` (see :func:`from_wide`).

    Raises :class:`LoesError` if the file is not readable CSV or lacks a column, and
    ``FileNotFoundError`` if it does not exist.

    Examples::

        >>> from loes.pipeline.report.summary import summarize
        >>> report = summarize(read_predictions("runs/cv/predictions.csv"))  # doctest: +SKIP
    """
    try:
        wide = read_csv(path, dtype={"subject": str, "session": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise LoesError(f"{path} is not a readable CSV file ({error}).") from None
    return from_wide(wide)
