"""Data in, folds out: read a cohort (manifest, the lab's CSV, BIDS), validate it, split it;
open a scan in any format loes reads (NIfTI, ``.hdr``/``.img``, MGH, DICOM: :func:`load_scan`).

Examples::

    >>> from loes.data import load_dataset, make_folds, validate_dataset
    >>> report = validate_dataset("data/manifest.csv")  # doctest: +SKIP
    >>> table = report.raise_for_errors()  # doctest: +SKIP
    >>> splits = make_folds(table, n_folds=5, path="runs/cv/splits.json")  # doctest: +SKIP
"""

from loes.data.loes_items import MAX_LOES_SCORE
from loes.data.problems import Problem, ValidationReport
from loes.data.readers import (
    FORMATS,
    LAB_IMAGE_PATTERN,
    NO_SESSION,
    REQUIRED_COLUMNS,
    SCAN_FORMATS,
    ScanError,
    detect_format,
    load_dataset,
    load_scan,
)
from loes.data.scan_sources import read_scans
from loes.data.splits import SIDES, Fold, Splits, make_folds, score_bins
from loes.data.validation import check_image, validate_dataset

__all__ = [
    "FORMATS",
    "LAB_IMAGE_PATTERN",
    "MAX_LOES_SCORE",
    "NO_SESSION",
    "REQUIRED_COLUMNS",
    "SCAN_FORMATS",
    "SIDES",
    "Fold",
    "Problem",
    "ScanError",
    "Splits",
    "ValidationReport",
    "check_image",
    "detect_format",
    "load_dataset",
    "load_scan",
    "make_folds",
    "read_scans",
    "score_bins",
    "validate_dataset",
]
