"""Kept for MONAI bundles exported by loes 0.1 before the pipeline was split into rooms: their
``inference.json`` runs ``from loes.pipeline.prediction_page import write_predictions``. New
bundles import ``loes.pipeline.write_predictions``; the code lives in
:mod:`loes.pipeline.predict.page`."""

from loes.pipeline.predict.page import write_predictions

__all__ = ["write_predictions"]
