"""``loes predict`` and ``loes export``: every fold model of a run scoring new scans
(``ensemble``, loaded by ``members``), conformal prediction intervals (``conformal``), the
change between consecutive sessions of a subject with its interval and call (``changes``), flags for
scans unlike the training scans (``scan_profile``), the CSV and HTML page (``page``), the loop
``loes predict`` runs (``scoring``) and the MONAI bundle (``export``)."""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "changes": ["change_table", "write_changes"],
        "conformal": ["ConformalCalibration"],
        "ensemble": ["FoldEnsemble"],
        "export": ["export_bundle"],
        "members": ["load_ensemble"],
        "page": ["render_page", "write_predictions"],
        "scoring": ["predict_scans"],
    },
)
