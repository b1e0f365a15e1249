"""Gathering a finished (or partly finished) ``loes cv`` run from its folder.

``loes cv --out RUN_DIR`` writes one folder per fold: ``RUN_DIR/fold_K/`` for a single repeat,
``RUN_DIR/repeat_R/fold_K/`` when repeated. Each holds ``predictions.csv`` (the long table:
``repeat, fold, subject, session, loes_score, predicted, model``), ``history.csv`` (``epoch,
train_loss, val_mae, lr``) and, written last, ``metrics.json``
(:data:`~loes.pipeline.run.folder.FINISHED_MARKER`): only a fold folder holding it is finished,
and only finished folds are reported. The run folder itself holds the resolved ``config.yaml``
and ``splits.json``, the folds the run should have (:func:`fold_status` compares the two).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

from loes.errors import LoesError
from loes.io import read_csv
from loes.pipeline.run.folder import FINISHED_MARKER, fold_dir, is_finished
from loes.pipeline.run.predictions import (
    NETWORK,
    OOF_CHANGE_COLUMNS,
    OPTIONAL_COLUMNS,
    PREDICTION_COLUMNS,
    read_predictions,
)

__all__ = [
    "check_run_dir",
    "collect_changes",
    "collect_histories",
    "collect_predictions",
    "fold_name",
    "fold_status",
]

_FOLD_DIR = re.compile(r"^fold_(\d+)$")
_REPEAT_DIR = re.compile(r"^repeat_(\d+)$")
_NUMERIC = ("repeat", "fold", "loes_score", "predicted")


def check_run_dir(run_dir: str | os.PathLike) -> Path:
    """``run_dir`` as a :class:`~pathlib.Path`; raises :class:`LoesError` if it is not a folder."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise LoesError(
            f"{run_dir} is a file, not a run folder; pass the --out folder of `loes cv`."
        )
    if not run_dir.is_dir():
        raise LoesError(f"Run folder {run_dir} does not exist; pass the --out folder of `loes cv`.")
    return run_dir


def _fold_folders(run_dir: Path) -> list[tuple[Path, int, int]]:
    """``(folder, repeat, fold)`` for each ``fold_K/`` or ``repeat_R/fold_K/`` folder.

    The repeat comes from the ``repeat_R`` folder, else it is 0 (a run with a single repeat).
    """
    found = [
        (path, 0, int(match.group(1)))
        for path in sorted(run_dir.glob("fold_*"))
        if path.is_dir() and (match := _FOLD_DIR.match(path.name))
    ]
    repeated = []
    for path in sorted(run_dir.glob("repeat_*/fold_*")):
        fold, repeat = _FOLD_DIR.match(path.name), _REPEAT_DIR.match(path.parent.name)
        if path.is_dir() and fold and repeat:
            repeated.append((path, int(repeat.group(1)), int(fold.group(1))))
    if found and repeated:
        raise LoesError(
            f"{run_dir} holds both fold_K/ and repeat_R/fold_K/ folders ({found[0][0]} and "
            f"{repeated[0][0]}); it mixes two runs: keep one layout."
        )
    return sorted(found or repeated, key=lambda item: (item[1], item[2]))


def _finished_files(run_dir: Path, filename: str) -> list[tuple[Path, int, int]]:
    """``(file, repeat, fold)`` for ``filename`` in every *finished* fold folder holding it."""
    return [
        (folder / filename, repeat, fold)
        for folder, repeat, fold in _fold_folders(run_dir)
        if is_finished(folder) and (folder / filename).is_file()
    ]


def _read_csv(path: Path, text: tuple[str, ...] = ("subject", "session")) -> pd.DataFrame:
    """``path`` read with the ``text`` columns (identifiers such as ``ses-01`` or ``01``) kept
    as written."""
    try:
        return read_csv(path, dtype=dict.fromkeys(text, str))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise LoesError(f"{path} is not a readable CSV file ({error}); re-run that fold.") from None


def _redo(path: Path) -> str:
    return (
        f"delete {path.parent} and run the same `loes cv` command again to redo that fold "
        "(finished folds are kept)."
    )


def _check_fold_predictions(
    path: Path,
    table: pd.DataFrame,
    repeat: int,
    fold: int,
    columns: tuple[str, ...] = PREDICTION_COLUMNS,
    numeric: tuple[str, ...] = _NUMERIC,
) -> None:
    """Raise :class:`LoesError` naming ``path`` and its first bad line if a fold's predictions are
    incomplete (a truncated file), not numbers where numbers belong, or of another fold."""
    missing = [c for c in columns if c not in table]
    if missing:
        raise LoesError(
            f"{path} lacks the column(s) {', '.join(missing)}; each fold's {path.name} "
            f"needs {', '.join(columns)}."
        )
    if table.empty:
        raise LoesError(f"{path} holds no predictions; {_redo(path)}")
    for column in columns:
        empty = table[column].isna()
        if empty.any():
            line = int(empty.to_numpy().argmax()) + 2  # 1-based, after the header line
            why = "the file looks truncated or edited"
            if (
                column.startswith("predicted")
                and not table.drop(columns=column).iloc[line - 2].isna().any()
            ):
                why = "a prediction that is not a number (did training diverge?)"
            raise LoesError(f"{path} line {line} has no {column} value: {why}; {_redo(path)}")
    for column in numeric:
        values = pd.to_numeric(table[column], errors="coerce")
        bad = values.isna()
        if bad.any():
            line = int(bad.to_numpy().argmax()) + 2
            raise LoesError(
                f"{path} line {line}: {column} is {table[column].iloc[line - 2]!r}, not a "
                f"number; {_redo(path)}"
            )
        table[column] = values
    # a fold_K/ folder names no repeat: only repeat_R/fold_K/ pins the repeat
    repeated = bool(_REPEAT_DIR.match(path.parent.parent.name))
    other = (table["fold"] != fold) | ((table["repeat"] != repeat) & repeated)
    if other.any():
        row = table[other].iloc[0]
        folder = "/".join(path.parent.parts[-2:]) if repeated else path.parent.name
        raise LoesError(
            f"{path} holds rows of repeat {row['repeat']:g} fold {row['fold']:g}, but sits in "
            f"{folder}/; was a file copied from another fold?"
        )


def collect_predictions(run_dir: str | os.PathLike) -> pd.DataFrame:
    """The long out-of-fold predictions of every finished fold in ``run_dir``, concatenated.

    Reads ``predictions.csv`` of each ``fold_K/`` or ``repeat_R/fold_K/`` folder that holds
    ``metrics.json`` (the file a fold writes last; unfinished folds are left out and reported
    by :func:`fold_status`). Returns the columns ``repeat, fold, subject, session, loes_score,
    predicted, model`` (one row per scan per model per repeat; scores in Loes points), plus
    ``age`` when the fold files carry it. A run folder without fold folders falls back to its
    own report's wide ``predictions.csv`` (:func:`read_predictions`).

    Raises :class:`LoesError` if ``run_dir`` does not exist, if no fold is finished, or, naming
    the file and line, if a fold's file is not readable CSV, lacks a column, has an empty or
    non-numeric cell (a truncated file) or holds another fold's rows.
    """
    run_dir = check_run_dir(run_dir)
    tables = []
    for path, repeat, fold in _finished_files(run_dir, "predictions.csv"):
        table = _read_csv(path)
        _check_fold_predictions(path, table, repeat, fold)
        optional = [c for c in OPTIONAL_COLUMNS if c in table]
        tables.append(table[[*PREDICTION_COLUMNS, *optional]])
    if tables:
        return pd.concat(tables, ignore_index=True)
    folders = _fold_folders(run_dir)
    if folders:
        raise LoesError(
            f"No finished fold in {run_dir}: "
            f"{', '.join(str(f.relative_to(run_dir)) for f, _, _ in folders[:3])}"
            f"{' ...' if len(folders) > 3 else ''} hold no {FINISHED_MARKER} yet (a fold writes "
            "it last); wait for a fold to finish."
        )
    if (run_dir / "predictions.csv").is_file():
        return read_predictions(run_dir / "predictions.csv")
    raise LoesError(
        f"No predictions in {run_dir}: expected fold_K/predictions.csv (or "
        "repeat_R/fold_K/predictions.csv) from `loes cv`; has any fold finished?"
    )


def collect_changes(run_dir: str | os.PathLike) -> pd.DataFrame | None:
    """The paired change model's out-of-fold changes of every finished fold in ``run_dir``
    (each fold's ``changes.csv``, columns :data:`~loes.pipeline.run.predictions.OOF_CHANGE_COLUMNS`,
    Loes points), concatenated; None when no finished fold has one (``change.model:
    subtraction``, or a run from before the paired model). A run folder without fold folders
    falls back to its report's ``changes.csv``.

    Raises :class:`LoesError` naming the file and line, as :func:`collect_predictions` does.
    """
    run_dir = check_run_dir(run_dir)
    tables = []
    for path, repeat, fold in _finished_files(run_dir, "changes.csv"):
        table = _read_csv(path, ("subject", "from_session", "to_session"))
        numeric = ("repeat", "fold", "loes_score_change", "predicted_change")
        _check_fold_predictions(path, table, repeat, fold, OOF_CHANGE_COLUMNS, numeric)
        tables.append(table[list(OOF_CHANGE_COLUMNS)])
    if tables:
        return pd.concat(tables, ignore_index=True)
    if not _fold_folders(run_dir) and (run_dir / "changes.csv").is_file():  # a report's copy
        path = run_dir / "changes.csv"
        table = _read_csv(path, ("subject", "from_session", "to_session"))
        missing = [c for c in OOF_CHANGE_COLUMNS if c not in table]
        if missing:
            raise LoesError(f"{path} lacks the column(s) {', '.join(missing)}.")
        return table[list(OOF_CHANGE_COLUMNS)]
    return None


def collect_histories(run_dir: str | os.PathLike) -> dict[tuple[int, int], pd.DataFrame]:
    """The training history of every finished fold in ``run_dir``: ``{(repeat, fold): DataFrame}``.

    Reads each ``fold_K/history.csv`` or ``repeat_R/fold_K/history.csv`` whose folder holds
    ``metrics.json``: one row per epoch, columns ``epoch, train_loss, val_mae`` (Loes points, on
    the fold's inner validation subjects) and ``lr``. The repeat is taken from the ``repeat_R``
    folder, else 0. Folds without a history are left out (an empty dict if none has one).

    Raises :class:`LoesError` if ``run_dir`` does not exist or a history is not readable CSV.
    """
    run_dir = check_run_dir(run_dir)
    return {
        (repeat, fold): _read_csv(path)
        for path, repeat, fold in _finished_files(run_dir, "history.csv")
    }


def _expected_folds(
    run_dir: Path | None, config: dict[str, Any] | None
) -> tuple[list[tuple[int, int]] | None, str]:
    """The ``(repeat, fold)`` pairs the run should have, and where that was read.

    From ``splits.json`` in the run folder; else from the configuration's ``cv.folds`` and
    ``cv.repeats`` (unless the folds are one per site); else ``None`` (unknown).
    """
    path = None if run_dir is None else run_dir / "splits.json"
    if path is not None and path.is_file():
        try:
            entries = json.loads(path.read_text())["folds"]
            pairs = [(int(e.get("repeat", 0)), int(e["fold"])) for e in entries]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise LoesError(
                f"{path} is not a readable splits file ({type(error).__name__}: {error}); it "
                "should list the folds as written by `loes cv`."
            ) from None
        return sorted(set(pairs)), "splits.json"
    cv = (config or {}).get("cv")
    if isinstance(cv, dict) and not cv.get("by_site") and cv.get("splits_file") is None:
        folds, repeats = cv.get("folds"), cv.get("repeats", 1)
        if isinstance(folds, int) and isinstance(repeats, int):
            return [(r, f) for r in range(repeats) for f in range(folds)], "config.yaml"
    return None, ""


def fold_name(repeat: int, fold: int, n_repeats: int) -> str:
    """``fold 3``, or ``repeat 1 fold 3`` when the run has several repeats."""
    return f"repeat {repeat} fold {fold}" if n_repeats > 1 else f"fold {fold}"


def fold_status(
    predictions: pd.DataFrame,
    run_dir: str | os.PathLike | None = None,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Whether the report covers every fold of the run, and which folds it lacks.

    ``predictions`` is the long table the report is made of (its network rows, else all rows,
    tell which ``(repeat, fold)`` pairs are present). The folds the run should have come from
    ``run_dir/splits.json``, else from ``config`` (the run's settings as a dict: ``cv.folds`` x
    ``cv.repeats``), else are unknown. Returns::

        {"partial": bool, "expected_from": "splits.json" | "config.yaml" | "",
         "n_expected": int | None, "n_reported": int, "expected": [[repeat, fold]] | None,
         "missing": [{"repeat", "fold", "name", "reason"}], "text": str}

    ``reason`` says what is on disk: ``"unfinished (no metrics.json)"`` for a fold folder that
    has not written its last file, ``"not started (no folder)"`` for a missing folder, or
    ``"no predictions"``. ``text`` is the plain-words label every report page shows (empty for
    a complete run).

    Raises :class:`LoesError` if ``splits.json`` exists but cannot be read.
    """
    run_dir = None if run_dir is None else Path(run_dir)
    rows = predictions[predictions["model"] == NETWORK]
    rows = rows if len(rows) else predictions
    reported = {(int(r), int(f)) for r, f in rows[["repeat", "fold"]].drop_duplicates().to_numpy()}
    expected, source = _expected_folds(run_dir, config)
    expected_set = set(reported) if expected is None else set(expected)
    unfinished = set()
    if run_dir is not None and run_dir.is_dir():
        unfinished = {(r, f) for d, r, f in _fold_folders(run_dir) if not is_finished(d)}
    missing_keys = sorted((expected_set | unfinished) - reported)
    n_repeats = len({r for r, _ in expected_set | reported})
    cv = (config or {}).get("cv")
    layout_repeats = cv.get("repeats", n_repeats) if isinstance(cv, dict) else n_repeats
    missing = []
    for repeat, fold in missing_keys:
        if (repeat, fold) in unfinished:
            reason = f"unfinished (no {FINISHED_MARKER})"
        elif run_dir is not None and not fold_dir(run_dir, repeat, fold, layout_repeats).is_dir():
            reason = "not started (no folder)"
        else:
            reason = "no predictions"
        name = fold_name(repeat, fold, n_repeats)
        missing.append({"repeat": repeat, "fold": fold, "name": name, "reason": reason})
    n_expected = None if expected is None else len(expected_set)
    text = ""
    if missing:
        listed = "; ".join(f"{m['name']} {m['reason']}" for m in missing)
        total = f"{len(reported)} of {len(expected_set | unfinished)}"
        text = (
            f"Partial run: this report covers {total} folds. Missing: {listed}. Its numbers "
            "come from the finished folds only and will change when the run completes."
        )
    return {
        "partial": bool(missing),
        "expected_from": source,
        "n_expected": n_expected,
        "n_reported": len(reported),
        "expected": None if expected is None else [list(pair) for pair in sorted(expected_set)],
        "missing": missing,
        "text": text,
    }
