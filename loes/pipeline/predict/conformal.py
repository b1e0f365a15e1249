"""Prediction intervals with a guaranteed coverage, calibrated from a run's out-of-fold residuals.

Conformal prediction (Vovk et al. 2005; split and cross-conformal intervals in Barber, Candès,
Ramdas & Tibshirani 2021, "Predictive inference with the jackknife+", Annals of Statistics
49:486-507): every scan of a cross-validation run was predicted once by a fold model that never
saw it, so its residual ``true - predicted`` is an honest sample of the error on a new scan. The
interval of a new prediction is the prediction plus the residuals' quantile that holds the asked
share of them. Errors grow with the score (a zero is rarely missed by much, a severe scan is),
so the residuals are split by predicted score into equal-sized bins (Mondrian conformal
regression, Boström & Johansson 2020) and each prediction takes the quantile of its own bin:
narrow intervals near 0, wide ones where the run erred more. The quantiles, bins and finite
sample correction are those of the ``crepes`` library (Boström 2022, ``ConformalRegressor`` and
``crepes.extras.binning``), not our own.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from crepes import ConformalRegressor
from crepes.extras import binning

from loes.data.loes_items import MAX_LOES_SCORE

__all__ = ["MIN_BIN_SIZE", "ConformalCalibration"]

#: the fewest calibration scans per Mondrian bin; fewer than twice this gives one bin
MIN_BIN_SIZE = 50
_MAX_BINS = 3


@dataclass
class ConformalCalibration:
    """Mondrian split-conformal intervals from out-of-fold predictions (``crepes``).

    Args:
        y_true: the calibration scans' true scores, (n,), Loes points.
        y_pred: their out-of-fold predictions, (n,), Loes points.
        y_range: the lowest and highest true value possible; intervals are clipped to it
            (0-34 for a score, -34 to 34 for a change between two scores).
        max_bins: the most Mondrian bins (1: plain split conformal, one quantile for all).

    The residuals are binned by ``y_pred`` into ``min(max_bins, n // MIN_BIN_SIZE)``
    equal-sized bins (at least one); :meth:`interval` places a new prediction in the bin its
    value falls in.

    Raises:
        ValueError: when ``y_true`` and ``y_pred`` differ in length, are empty or not finite.

    Examples::

        >>> calibration = ConformalCalibration([0, 2, 5, 9] * 10, [0.5, 2, 4, 7] * 10)
        >>> calibration.interval([3.0], coverage=0.9)
        (array([1.]), array([5.]))
    """

    y_true: Sequence[float]
    y_pred: Sequence[float]
    y_range: tuple[float, float] = (0.0, MAX_LOES_SCORE)
    max_bins: int = _MAX_BINS
    _regressor: ConformalRegressor = field(init=False, repr=False)
    _thresholds: np.ndarray | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        true = np.asarray(self.y_true, dtype=float)
        pred = np.asarray(self.y_pred, dtype=float)
        if true.shape != pred.shape or true.ndim != 1 or true.size == 0:
            raise ValueError(
                f"y_true and y_pred must be two non-empty 1-D arrays of one length, got shapes "
                f"{true.shape} and {pred.shape}."
            )
        if not (np.isfinite(true).all() and np.isfinite(pred).all()):
            raise ValueError("y_true and y_pred must be finite Loes scores.")
        self.y_true, self.y_pred = true.tolist(), pred.tolist()
        n_bins = max(1, min(self.max_bins, true.size // MIN_BIN_SIZE))
        if n_bins > 1:
            bins, self._thresholds = binning(pred, bins=n_bins, seed=0)
        else:
            bins, self._thresholds = None, None
        self._regressor = ConformalRegressor().fit(true - pred, bins=bins)

    @property
    def n(self) -> int:
        """The number of calibration scans."""
        return len(self.y_true)

    def to_dict(self) -> dict[str, list[float]]:
        """``y_true`` and ``y_pred`` (Loes points), what a saved ensemble keeps of it
        (:func:`~loes.pipeline.predict.load_ensemble` sets the range and bins again)."""
        return {"y_true": list(self.y_true), "y_pred": list(self.y_pred)}

    @property
    def bin_edges(self) -> list[float]:
        """The predicted scores (Loes points) that separate the Mondrian bins; empty for one."""
        return [] if self._thresholds is None else [float(t) for t in self._thresholds[1:-1]]

    def too_small(self, coverage: float) -> bool:
        """Whether some bin holds too few scans for ``coverage``: its intervals are the whole
        ``y_range`` (crepes' rule: fewer than ``1 / (1 - coverage) - 1`` residuals)."""
        if self._thresholds is None:
            sizes = [self.n]
        else:
            sizes = np.bincount(self._bins(self.y_pred)).tolist()
        return min(sizes) < 1 / (1 - coverage) - 1

    def _bins(self, values: Sequence[float]) -> np.ndarray | None:
        if self._thresholds is None:
            return None
        return binning(np.asarray(values, dtype=float), bins=self._thresholds)

    def interval(
        self, predicted: Sequence[float], coverage: float = 0.9
    ) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds, (m,) each, in Loes points within ``y_range`` (0-34 for a
        score), that hold the true value of a new scan with probability ``coverage``
        (marginally, within its bin).

        Raises:
            ValueError: when ``coverage`` is not in (0, 1).
        """
        if not 0 < coverage < 1:
            raise ValueError(f"coverage must be in (0, 1), got {coverage}.")
        predicted = np.asarray(predicted, dtype=float)
        if predicted.size == 0:
            return np.empty(0), np.empty(0)
        with warnings.catch_warnings():  # crepes warns when a bin is too small: too_small says it
            warnings.simplefilter("ignore")
            bounds = self._regressor.predict_int(
                predicted,
                bins=self._bins(predicted),
                confidence=coverage,
                y_min=float(self.y_range[0]),
                y_max=float(self.y_range[1]),
            )
        return bounds[:, 0], bounds[:, 1]
