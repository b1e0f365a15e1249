"""The cross-validation report: ``predictions.csv``, ``report.json``, ``report.md``, ``.html``.

:func:`write_report` gathers the out-of-fold predictions of every fold (``fold_K/`` or
``repeat_R/fold_K/`` folders, each with ``predictions.csv`` and ``history.csv``), summarizes them
with :func:`loes.pipeline.report.summary.summarize` and writes, atomically, into the run folder:

- ``predictions.csv``: one row per scan per repeat, columns ``repeat, fold, subject, session,
  loes_score, predicted, predicted_<baseline>...``: ``predicted`` is the network's out-of-fold
  prediction, ``predicted_median`` (etc.) the baselines' on the same folds. Every number in
  ``report.json`` can be recomputed from this file alone (:func:`read_predictions`).
- ``report.json``: the :func:`~loes.pipeline.report.summary.summarize` dict (``null`` where a
  metric is undefined; pooled metrics with subject-bootstrap intervals, the network's MAE minus each
  baseline's with its paired interval) plus ``created``, ``loes_version``, ``run`` (what was
  run, whether it is a smoke run, and the values its settings took in effect), ``completeness``
  (whether folds are missing, and which), ``flags`` (warnings about the network in plain
  words), ``set_aside`` (the scans read but not used, and why: ``set_aside.csv``), ``worst``
  (the worst-predicted scans), ``verdict`` (the headline, MAE and threshold), ``change``
  (true and predicted change between consecutive sessions of a subject, with intervals:
  :func:`~loes.pipeline.report.change.summarize_change`) and the run's ``config``.
- ``report.md``: what was run, the warnings and the tables in markdown.
- ``report.html``: one self-contained page (inline CSS, plots as base64 PNG): the page to open
  first.

Modules: :mod:`~loes.pipeline.run.predictions` (the wide/long predictions layouts),
:mod:`~loes.pipeline.run.collect` (reading a run folder, finding missing folds),
:mod:`~loes.pipeline.report.run_info` (what was run), :mod:`~loes.pipeline.report.flags`
(warnings about the network), :mod:`~loes.pipeline.report.left_out` (the scans set aside),
:mod:`~loes.pipeline.report.scan_lists` (the worst-predicted scans),
:mod:`~loes.pipeline.report.verdict` (the verdict at the threshold),
:mod:`~loes.pipeline.report.change` (change between consecutive sessions; its words in
:mod:`~loes.pipeline.report.change_text`),
:mod:`~loes.pipeline.report.tables` (the text every format shows),
:mod:`~loes.pipeline.report.markdown`, :mod:`~loes.pipeline.report.html`,
:mod:`~loes.pipeline.report.terminal`, :mod:`~loes.pipeline.report.plots` and
:mod:`~loes.pipeline.report.follow_up_plots` (the figures).
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "change": ["summarize_change"],
        "flags": ["model_flags"],
        "html": ["render_html"],
        "markdown": ["render_markdown"],
        "run_info": ["describe_run"],
        "terminal": ["format_summary"],
        "write": ["REPORT_FILES", "write_report"],
    },
)
