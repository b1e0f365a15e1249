"""The cross-validation report: ``predictions.csv``, ``report.json``, ``report.md``, ``.html``.

:func:`write_report` gathers the out-of-fold predictions of every fold (``fold_K/`` or
``repeat_R/fold_K/`` folders, each with ``predictions.csv`` and ``history.csv``), summarizes them
with :func:`loes.pipeline.metrics.summarize` and writes, atomically, into the run folder:

- ``predictions.csv``: one row per scan per repeat, columns ``repeat, fold, subject, session,
  loes_score, predicted, predicted_<baseline>...``: ``predicted`` is the network's out-of-fold
  prediction, ``predicted_median`` (etc.) the baselines' on the same folds. Every number in
  ``report.json`` can be recomputed from this file alone (:func:`read_predictions`).
- ``report.json``: the :func:`~loes.pipeline.metrics.summarize` dict (``null`` where a metric is
  undefined) plus ``created``, ``loes_version`` and the run's ``config``.
- ``report.md``: the tables in markdown.
- ``report.html``: one self-contained page (inline CSS, plots as base64 PNG): the page to open
  first.

Modules: :mod:`~loes.pipeline.report.predictions` (the wide/long predictions layouts),
:mod:`~loes.pipeline.report.collect` (reading a run folder), :mod:`~loes.pipeline.report.tables`
(the tables every format shows), :mod:`~loes.pipeline.report.markdown`,
:mod:`~loes.pipeline.report.html`, :mod:`~loes.pipeline.report.terminal` and
:mod:`~loes.pipeline.report.plots` (the figures).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import pandas as pd

from loes import __version__
from loes.io import jsonable, write_json, write_text
from loes.pipeline.metrics import summarize
from loes.pipeline.report.collect import (
    collect_histories,
    collect_predictions,
)
from loes.pipeline.report.html import render_html
from loes.pipeline.report.markdown import render_markdown
from loes.pipeline.report.predictions import from_wide, read_predictions, to_wide
from loes.pipeline.report.terminal import format_summary
from loes.pipeline.run_folder import CONFIG_FILE, load_run_config

__all__ = [
    "collect_histories",
    "collect_predictions",
    "format_summary",
    "from_wide",
    "read_predictions",
    "render_html",
    "render_markdown",
    "to_wide",
    "write_report",
]


def write_report(
    run_dir: str | os.PathLike,
    predictions: pd.DataFrame | None = None,
    histories: dict[tuple[int, int], pd.DataFrame] | None = None,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``predictions.csv`` and ``report.json``/``.md``/``.html`` into ``run_dir``.

    ``predictions`` is the long out-of-fold table (columns ``repeat, fold, subject, session,
    loes_score, predicted, model``; scores in Loes points; see
    :func:`loes.pipeline.metrics.summarize`); ``histories`` maps ``(repeat, fold)`` to a
    DataFrame with ``epoch, train_loss, val_mae, lr``. Either, when ``None``, is collected from
    the fold folders of ``run_dir``. ``config`` is the run's configuration as a plain dict
    (``Config.to_dict()``); when ``None`` it is read from ``run_dir/config.yaml`` if there is
    one. Every file is written atomically. Returns the report as written to ``report.json``
    (``None`` for undefined values).

    Raises :class:`LoesError` if ``run_dir`` has no predictions (or does not exist) when
    ``predictions`` is ``None``, if a fold's file or ``config.yaml`` cannot be read, or if the
    predictions are inconsistent (see :func:`to_wide` and ``summarize``); ``TypeError`` if
    ``config`` is not a dict.

    Examples::

        >>> report = write_report("runs/cv")  # doctest: +SKIP
        >>> report["ratios"]["median"]["pooled_mae_ratio"]  # doctest: +SKIP
        0.52
    """
    if config is not None and not isinstance(config, dict):
        raise TypeError(f"config must be a dict (Config.to_dict()), not {type(config).__name__}.")
    run_dir = Path(run_dir)
    if predictions is None:
        predictions = collect_predictions(run_dir)
    if histories is None:
        histories = collect_histories(run_dir) if run_dir.is_dir() else {}
    if config is None and (run_dir / CONFIG_FILE).is_file():
        config = load_run_config(run_dir).to_dict()

    wide = to_wide(predictions)
    long = from_wide(wide)  # exactly what predictions.csv holds, so report.json matches it
    report = jsonable(
        {
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "loes_version": __version__,
            **summarize(long),
            "config": config,
        }
    )
    write_text(run_dir / "predictions.csv", wide.to_csv(index=False))
    write_json(run_dir / "report.json", report)
    write_text(run_dir / "report.md", render_markdown(report))
    write_text(run_dir / "report.html", render_html(report, long, histories))
    return report
