"""``loes cv``: the cohort read and preprocessed once (``cohort``), one fold as the unit of work
(``fold``: ``training`` with ``optimization``, the ``baselines``), every fold of a run and then
the report (``cv``)."""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "cv": ["cross_validate", "cross_validate_fold", "prepare_run"],
        "fold": ["run_fold"],
    },
)
