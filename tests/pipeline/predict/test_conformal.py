"""Conformal intervals from out-of-fold residuals (crepes), on data with a known error law."""

import numpy as np
import pytest

from loes.pipeline.predict.conformal import MIN_BIN_SIZE, ConformalCalibration


def _scans(n: int, seed: int, scale=lambda pred: np.ones_like(pred)):
    rng = np.random.default_rng(seed)
    predicted = rng.uniform(0, 20, n)
    return predicted + rng.normal(0, 1, n) * scale(predicted), predicted


def test_the_interval_holds_the_asked_share_of_new_scans():
    calibration = ConformalCalibration(*_scans(400, seed=0))
    true, predicted = _scans(20_000, seed=1)
    for coverage in (0.8, 0.9):
        lower, upper = calibration.interval(predicted, coverage)
        inside = np.mean((true >= lower) & (true <= upper))
        assert coverage - 0.03 <= inside <= coverage + 0.04, (coverage, inside)


def test_intervals_widen_where_the_run_erred_more():
    heteroscedastic = {"scale": lambda pred: 0.2 + pred / 5}  # SD 0.2 at 0, 4.2 at 20
    calibration = ConformalCalibration(*_scans(3 * MIN_BIN_SIZE, seed=0, **heteroscedastic))
    assert len(calibration.bin_edges) == 2  # three Mondrian bins
    lower, upper = calibration.interval([1.0, 18.0], 0.9)
    widths = upper - lower
    assert widths[1] > 3 * widths[0]
    true, predicted = _scans(20_000, seed=1, **heteroscedastic)
    lower, upper = calibration.interval(predicted, 0.9)
    low_scores = predicted < calibration.bin_edges[0]
    inside = (true >= lower) & (true <= upper)
    assert inside[low_scores].mean() >= 0.85  # per bin, not only on average
    assert inside[~low_scores].mean() >= 0.85


def test_intervals_stay_on_the_scale():
    calibration = ConformalCalibration([0.0, 1.0, 30.0, 34.0] * 10, [2.0, 3.0, 33.0, 31.0] * 10)
    lower, upper = calibration.interval([0.0, 34.0], 0.9)
    assert lower.min() >= 0.0
    assert upper.max() <= 34.0
    assert lower[0] == 0.0
    assert upper[1] == 34.0


def test_a_small_calibration_gives_the_whole_scale_and_says_so():
    calibration = ConformalCalibration([1.0, 2.0, 3.0, 4.0, 5.0], [1.5, 2.0, 3.5, 4.0, 4.0])
    assert calibration.too_small(0.9)
    assert not calibration.too_small(0.5)
    lower, upper = calibration.interval([3.0], 0.9)
    assert (lower[0], upper[0]) == (0.0, 34.0)


def test_calibration_is_deterministic():
    a = ConformalCalibration(*_scans(200, seed=3))
    b = ConformalCalibration(*_scans(200, seed=3))  # the same numbers, float64 code: exact
    assert np.array_equal(a.interval([2.0, 9.0, 15.0])[1], b.interval([2.0, 9.0, 15.0])[1])


@pytest.mark.parametrize(
    ("true", "pred"), [([1.0, 2.0], [1.0]), ([], []), ([1.0, np.nan], [1.0, 2.0])]
)
def test_bad_calibration_data_is_refused(true, pred):
    with pytest.raises(ValueError, match="y_true"):
        ConformalCalibration(true, pred)


@pytest.mark.parametrize("coverage", [0.0, 1.0, 90])
def test_coverage_outside_0_1_is_refused(coverage):
    calibration = ConformalCalibration(*_scans(50, seed=0))
    with pytest.raises(ValueError, match="coverage"):
        calibration.interval([1.0], coverage)
