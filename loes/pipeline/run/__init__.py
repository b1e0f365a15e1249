"""A run as ``loes cv`` writes it and every other room reads it: its settings (``config``), its
folder (``folder``: ``config.yaml``, ``splits.json``, one folder per fold), the out-of-fold
predictions table (``predictions``, ``collect``), scan metrics (``metrics``), the data it read
(``data``), the prediction loop (``inference``), its fold models (``checkpoints``) and the
shared machinery: ``device``, ``messages``, ``pages`` (the Jinja2 environment of every page).
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "config": ["Config"],
        "config_loading": ["load_config"],
        "folder": ["load_run_config"],
        "metrics": ["regression_metrics", "threshold_metrics"],
    },
)
