"""Gathering a finished (or partly finished) ``loes cv`` run from its folder.

``loes cv --out RUN_DIR`` writes one folder per fold: ``RUN_DIR/fold_K/`` for a single repeat,
``RUN_DIR/repeat_R/fold_K/`` when repeated. Each holds ``predictions.csv`` (the long table:
``repeat, fold, subject, session, loes_score, predicted, model``) and ``history.csv`` (``epoch,
train_loss, val_mae, lr``); the run folder itself holds the resolved ``config.yaml``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from loes.errors import LoesError
from loes.pipeline.metrics import PREDICTION_COLUMNS
from loes.pipeline.report.predictions import read_predictions

__all__ = ["check_run_dir", "collect_histories", "collect_predictions"]

_FOLD_DIR = re.compile(r"^fold_(\d+)$")
_REPEAT_DIR = re.compile(r"^repeat_(\d+)$")


def check_run_dir(run_dir: str | os.PathLike) -> Path:
    """``run_dir`` as a :class:`~pathlib.Path`; raises :class:`LoesError` if it is not a folder."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise LoesError(f"Run folder {run_dir} does not exist; pass the --out folder of `loes cv`.")
    return run_dir


def _fold_files(run_dir: Path, filename: str) -> list[tuple[Path, int, int]]:
    """``(file, repeat, fold)`` for each ``fold_K/<filename>`` or ``repeat_R/fold_K/<filename>``.

    The repeat comes from the ``repeat_R`` folder, else it is 0 (a run with a single repeat).
    """
    found = []
    for path in sorted(run_dir.glob(f"fold_*/{filename}")):
        fold = _FOLD_DIR.match(path.parent.name)
        if fold:
            found.append((path, 0, int(fold.group(1))))
    repeated = []
    for path in sorted(run_dir.glob(f"repeat_*/fold_*/{filename}")):
        fold, repeat = _FOLD_DIR.match(path.parent.name), _REPEAT_DIR.match(path.parent.parent.name)
        if fold and repeat:
            repeated.append((path, int(repeat.group(1)), int(fold.group(1))))
    if found and repeated:
        raise LoesError(
            f"{run_dir} holds both fold_K/ and repeat_R/fold_K/ folders ({found[0][0]} and "
            f"{repeated[0][0]}); it mixes two runs: keep one layout."
        )
    return found or repeated


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype={"subject": str, "session": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise LoesError(f"{path} is not a readable CSV file ({error}); re-run that fold.") from None


def collect_predictions(run_dir: str | os.PathLike) -> pd.DataFrame:
    """The long out-of-fold predictions of every fold in ``run_dir``, folds concatenated.

    Reads each ``fold_K/predictions.csv`` or ``repeat_R/fold_K/predictions.csv`` and returns the
    columns ``repeat, fold, subject, session, loes_score, predicted, model`` (one row per scan
    per model per repeat; scores in Loes points). A run folder without fold folders falls back
    to its own report's wide ``predictions.csv`` (:func:`read_predictions`).

    Raises :class:`LoesError` if ``run_dir`` does not exist, if a fold's file is not readable
    CSV or lacks a column (naming the file), or if there are no predictions at all.
    """
    run_dir = check_run_dir(run_dir)
    tables = []
    for path, _, _ in _fold_files(run_dir, "predictions.csv"):
        table = _read_csv(path)
        missing = [c for c in PREDICTION_COLUMNS if c not in table]
        if missing:
            raise LoesError(
                f"{path} lacks the column(s) {', '.join(missing)}; each fold's predictions.csv "
                f"needs {', '.join(PREDICTION_COLUMNS)}."
            )
        tables.append(table[list(PREDICTION_COLUMNS)])
    if tables:
        return pd.concat(tables, ignore_index=True)
    if (run_dir / "predictions.csv").is_file():
        return read_predictions(run_dir / "predictions.csv")
    raise LoesError(
        f"No predictions in {run_dir}: expected fold_K/predictions.csv (or "
        "repeat_R/fold_K/predictions.csv) from `loes cv`; has any fold finished?"
    )


def collect_histories(run_dir: str | os.PathLike) -> dict[tuple[int, int], pd.DataFrame]:
    """The training history of every fold in ``run_dir``: ``{(repeat, fold): DataFrame}``.

    Reads each ``fold_K/history.csv`` or ``repeat_R/fold_K/history.csv``: one row per epoch,
    columns ``epoch, train_loss, val_mae`` (Loes points, on the fold's inner validation
    subjects) and ``lr``. The repeat is taken from the ``repeat_R`` folder, else 0. Folds
    without a history are left out (an empty dict if none has one).

    Raises :class:`LoesError` if ``run_dir`` does not exist or a history is not readable CSV.
    """
    run_dir = check_run_dir(run_dir)
    return {
        (repeat, fold): _read_csv(path)
        for path, repeat, fold in _fold_files(run_dir, "history.csv")
    }
