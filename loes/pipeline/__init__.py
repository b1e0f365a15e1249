"""What a user runs, one room per capability; every room reads the run that ``loes cv`` writes.

=====================  ===============================================================
room                   what lives there
=====================  ===============================================================
``run``                a run: its settings (``config``), its folder, its out-of-fold
                       predictions table, scan metrics, the prediction loop and the
                       fold models it saved; every other room reads it
``cluster``            several processes or nodes: DistributedDataParallel, SLURM
                       scripts, the disk cache that fold jobs share
``cross_validation``   ``loes cv``: the cohort read once, one fold (training,
                       optimisation, baselines), every fold, then the report
``report``             ``loes report``: the summary with subject-bootstrap intervals and
                       the run's pages
``predict``            ``loes predict`` and ``loes export``: the fold ensemble, conformal
                       intervals, scan profiles, the prediction page, the MONAI bundle
``explain``            ``loes explain``: saliency maps, their checks against lesion
                       masks, the explanation page
=====================  ===============================================================

Arrows point one way: every room imports ``run``; ``cross_validation`` also imports
``cluster`` (DDP, the disk cache), ``report`` (it writes the report at the end) and
``predict`` (the training profile of the run's scans, kept with its models); ``explain``
imports ``predict`` (the ensemble explains new scans). The rooms and the names below load on
first use, so a command imports only what it runs.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["cluster", "cross_validation", "explain", "predict", "report", "run"],
    submod_attrs={
        "cross_validation": ["cross_validate", "cross_validate_fold", "run_fold"],
        "explain": ["explain"],
        "predict": ["FoldEnsemble", "load_ensemble", "write_predictions"],
        "report": ["format_summary", "summarize", "write_report"],
        "run": ["Config", "load_config", "regression_metrics", "threshold_metrics"],
    },
)
