"""Training, cross-validation and reports."""

from loes.pipeline.config import Config, load_config
from loes.pipeline.cross_validation import cross_validate
from loes.pipeline.metrics import regression_metrics, summarize, threshold_metrics
from loes.pipeline.report import format_summary, write_report

__all__ = [
    "Config",
    "cross_validate",
    "format_summary",
    "load_config",
    "regression_metrics",
    "summarize",
    "threshold_metrics",
    "write_report",
]
