"""Settings, training, cross-validation and reports, in the order a run goes through them.

``config`` (settings) -> ``run_folder`` -> ``cohort`` (read and preprocess once) -> ``fold``
(one fold: ``training`` with ``optimization``, ``inference``, ``baselines``, ``metrics``) ->
``cross_validation`` (every fold) -> ``report``; then ``ensemble`` (every fold model scoring
new scans, with ``conformal`` intervals and ``scan_profile`` flags) and ``bundle`` (export).
"""

from loes.pipeline.config import Config, load_config
from loes.pipeline.cross_validation import cross_validate, cross_validate_fold
from loes.pipeline.ensemble import FoldEnsemble, load_ensemble
from loes.pipeline.fold import run_fold
from loes.pipeline.metrics import regression_metrics, summarize, threshold_metrics
from loes.pipeline.report import format_summary, write_report

__all__ = [
    "Config",
    "FoldEnsemble",
    "cross_validate",
    "cross_validate_fold",
    "format_summary",
    "load_config",
    "load_ensemble",
    "regression_metrics",
    "run_fold",
    "summarize",
    "threshold_metrics",
    "write_report",
]
