"""``write_report``: a run's out-of-fold predictions gathered, summarised and written as
``predictions.csv``, ``report.json``, ``report.md`` and ``report.html``."""

from __future__ import annotations

import copy
import datetime as dt
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from loes import __version__
from loes.errors import LoesError
from loes.io import csv_text, jsonable, remove_temporaries, write_json, write_text
from loes.pipeline.report.change import summarize_change
from loes.pipeline.report.flags import model_flags
from loes.pipeline.report.html import render_html
from loes.pipeline.report.left_out import set_aside_summary
from loes.pipeline.report.markdown import render_markdown
from loes.pipeline.report.run_info import describe_run, read_environment
from loes.pipeline.report.scan_lists import worst_predictions
from loes.pipeline.report.summary import summarize
from loes.pipeline.report.tables import headline
from loes.pipeline.run.collect import (
    collect_changes,
    collect_histories,
    collect_predictions,
    fold_status,
)
from loes.pipeline.run.folder import CONFIG_FILE, load_run_config
from loes.pipeline.run.metrics import TRANSPLANT_THRESHOLD
from loes.pipeline.run.predictions import from_wide, to_wide

__all__ = ["REPORT_FILES", "write_report"]


def _threshold(threshold: float | None, config: dict[str, Any] | None) -> float:
    """The transplant threshold to report: the argument, else ``report.threshold`` of the
    configuration, else the default; a :class:`LoesError` unless a multiple of 0.5 in (0, 34]."""
    if threshold is None:
        section = (config or {}).get("report")
        threshold = section.get("threshold") if isinstance(section, dict) else None
    if threshold is None:
        return TRANSPLANT_THRESHOLD
    value = float(threshold)
    if not (math.isfinite(value) and 0 < value <= 34 and (2 * value).is_integer()):
        raise LoesError(
            f"report.threshold must be a multiple of 0.5 between 0.5 and 34 Loes points, got "
            f"{threshold!r} (the usual transplant cut-off is 9; some centres use 10)."
        )
    return value


REPORT_FILES = ("predictions.csv", "changes.csv", "report.json", "report.md", "report.html")


def write_report(
    run_dir: str | os.PathLike,
    predictions: pd.DataFrame | None = None,
    histories: dict[tuple[int, int], pd.DataFrame] | None = None,
    config: dict[str, Any] | None = None,
    threshold: float | None = None,
) -> dict[str, Any]:
    """Write ``predictions.csv`` (with the paired change model, ``changes.csv``: its
    out-of-fold changes) and ``report.json``/``.md``/``.html`` into ``run_dir``.

    ``predictions`` is the long out-of-fold table (columns ``repeat, fold, subject, session,
    loes_score, predicted, model``; scores in Loes points; see
    :func:`loes.pipeline.run.metrics.summarize`); ``histories`` maps ``(repeat, fold)`` to a
    DataFrame with ``epoch, train_loss, val_mae, lr``. Either, when ``None``, is collected from
    the finished fold folders of ``run_dir``, and so are the paired network's changes
    (:func:`~loes.pipeline.run.collect.collect_changes`) when ``predictions`` is. ``config`` is
    the run's configuration as a plain dict (``Config.to_dict()``); when ``None`` it is read
    from ``run_dir/config.yaml`` if there is one. ``threshold`` (Loes points) overrides the
    configuration's ``report.threshold`` (default 9): the report's copy of the configuration
    then shows the threshold it used. The report says what was run (from the configuration and
    ``environment.json``), whether folds are missing (against ``splits.json``), what the run set
    aside and why (``set_aside.csv`` beside ``scans.csv``), which scans the network predicted
    worst, and warns about the network (:func:`model_flags`); its verdict weighs the threshold
    metrics beside the MAE. Its change section (``report.json["change"]``,
    :func:`~loes.pipeline.report.change.summarize_change`) compares true and predicted change
    between consecutive sessions of each subject.
    Every file is written atomically. Returns the report as written to ``report.json``
    (``None`` for undefined values).

    Raises :class:`LoesError` if ``run_dir`` has no predictions (or does not exist) when
    ``predictions`` is ``None``, if a fold's file, ``config.yaml``, ``splits.json`` or
    ``environment.json`` cannot be read, if the threshold is not a multiple of 0.5 in
    (0, 34], or if the predictions are inconsistent (see :func:`to_wide` and ``summarize``);
    ``TypeError`` if ``config`` is not a dict.

    Examples::

        >>> report = write_report("runs/cv", threshold=10)  # doctest: +SKIP
        >>> report["differences"]["median"]["excludes_zero"]  # doctest: +SKIP
        True
    """
    if config is not None and not isinstance(config, dict):
        raise TypeError(f"config must be a dict (Config.to_dict()), not {type(config).__name__}.")
    run_dir = Path(run_dir)
    changes = None
    if predictions is None:
        predictions = collect_predictions(run_dir)
        changes = collect_changes(run_dir)
    if histories is None:
        histories = collect_histories(run_dir) if run_dir.is_dir() else {}
    if config is None and (run_dir / CONFIG_FILE).is_file():
        config = load_run_config(run_dir).to_dict()
    threshold = _threshold(threshold, config)
    if config is not None and isinstance(config.get("report"), dict):
        config = copy.deepcopy(config)
        config["report"]["threshold"] = threshold

    wide = to_wide(predictions)
    long = from_wide(wide)  # exactly what predictions.csv holds, so report.json matches it
    summary = summarize(long, threshold)
    environment = read_environment(run_dir) if run_dir.is_dir() else None
    completeness = fold_status(long, run_dir if run_dir.is_dir() else None, config)
    run = describe_run(summary, config, environment, histories, completeness["expected"])
    report = jsonable(
        {
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "loes_version": __version__,
            "run": run,
            "completeness": completeness,
            "flags": model_flags(summary),
            **summary,
            "set_aside": set_aside_summary(run_dir, summary["n_scans"]),
            "worst": worst_predictions(long, threshold),
            "change": summarize_change(long, changes),
            "config": config,
        }
    )
    report["verdict"] = headline(report)[0]
    remove_temporaries(run_dir, list(REPORT_FILES))  # a killed report's half-written files
    write_text(run_dir / "predictions.csv", csv_text(wide))
    if changes is not None:
        write_text(run_dir / "changes.csv", csv_text(changes))
    write_json(run_dir / "report.json", report)
    write_text(run_dir / "report.md", render_markdown(report))
    write_text(run_dir / "report.html", render_html(report, long, histories, changes))
    return report
