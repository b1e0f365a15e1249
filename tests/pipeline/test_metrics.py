import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import r2_score, roc_auc_score

from loes.errors import LoesError
from loes.pipeline.metrics import (
    bland_altman,
    mae_by_range,
    regression_metrics,
    summarize,
    threshold_metrics,
)

TRUE = np.array([0.0, 0.0, 1.5, 3.0, 4.5, 7.0, 9.0, 12.0, 15.5, 21.0])
PRED = np.array([0.8, 0.0, 2.5, 2.0, 6.0, 6.5, 8.0, 10.5, 13.0, 17.0])


def test_perfect_predictions():
    m = regression_metrics(TRUE, TRUE)
    assert m["n"] == 10
    assert m["mae"] == 0.0
    assert m["rmse"] == 0.0
    assert m["standardized_rmse"] == 0.0
    assert m["r2"] == 1.0
    assert m["lin_ccc"] == pytest.approx(1.0)
    assert m["pearson_r"] == pytest.approx(1.0)
    assert m["spearman_rho"] == pytest.approx(1.0)


def test_values_match_scikit_learn_scipy_and_hand_computation():
    m = regression_metrics(TRUE, PRED)
    error = PRED - TRUE
    assert m["mae"] == pytest.approx(np.abs(error).mean())
    assert m["rmse"] == pytest.approx(math.sqrt((error**2).mean()))
    assert m["standardized_rmse"] == pytest.approx(m["rmse"] / TRUE.std(ddof=0))
    assert m["r2"] == pytest.approx(r2_score(TRUE, PRED))
    assert m["pearson_r"] == pytest.approx(stats.pearsonr(TRUE, PRED)[0])
    assert m["spearman_rho"] == pytest.approx(stats.spearmanr(TRUE, PRED)[0])
    # Lin (1989) from its definition, with population moments
    covariance = np.cov(TRUE, PRED, ddof=0)[0, 1]
    expected = 2 * covariance / (TRUE.var() + PRED.var() + (TRUE.mean() - PRED.mean()) ** 2)
    assert m["lin_ccc"] == pytest.approx(expected)
    assert all(isinstance(v, float) for k, v in m.items() if k != "n")


def test_constant_offset_lowers_ccc_but_not_r():
    shifted = regression_metrics(TRUE, TRUE + 3.0)
    assert shifted["pearson_r"] == pytest.approx(1.0)
    assert shifted["spearman_rho"] == pytest.approx(1.0)
    assert shifted["mae"] == pytest.approx(3.0)
    assert shifted["lin_ccc"] < 0.95
    variance = TRUE.var()
    assert shifted["lin_ccc"] == pytest.approx(2 * variance / (2 * variance + 9.0))


def test_predicting_the_mean_has_standardized_rmse_one_and_no_correlation():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = regression_metrics(TRUE, np.full_like(TRUE, TRUE.mean()))
    assert m["standardized_rmse"] == pytest.approx(1.0)
    assert m["r2"] == pytest.approx(0.0)
    assert math.isnan(m["pearson_r"])
    assert math.isnan(m["spearman_rho"])
    assert m["lin_ccc"] == pytest.approx(0.0)


def test_constant_truth_gives_nan_not_an_error_or_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = regression_metrics([2.0, 2.0, 2.0], [1.0, 2.0, 4.0])
    assert m["mae"] == pytest.approx(1.0)
    for key in ("standardized_rmse", "r2", "pearson_r", "spearman_rho"):
        assert math.isnan(m[key]), key


def test_empty_and_single_scan():
    empty = regression_metrics([], [])
    assert empty["n"] == 0
    assert all(math.isnan(empty[k]) for k in empty if k != "n")
    single = regression_metrics([4.0], [5.0])
    assert single["mae"] == 1.0
    assert math.isnan(single["pearson_r"])


def test_mismatched_or_missing_values_are_rejected():
    with pytest.raises(ValueError, match="3 values"):
        regression_metrics([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="finite"):
        regression_metrics([1, 2], [1, np.nan])


def test_threshold_metrics_by_hand():
    # positives (true >= 9): 9, 12, 15.5, 21 -> predicted 8, 10.5, 13, 17: 3 of 4 called
    m = threshold_metrics(TRUE, PRED)
    assert (m["n_positive"], m["n_negative"]) == (4, 6)
    assert m["sensitivity"] == pytest.approx(0.75)
    assert m["specificity"] == pytest.approx(1.0)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(TRUE >= 9, PRED))
    assert m["threshold"] == 9.0


def test_threshold_is_inclusive_and_configurable():
    m = threshold_metrics([9.0, 8.5], [9.0, 8.5])
    assert (m["sensitivity"], m["specificity"], m["roc_auc"]) == (1.0, 1.0, 1.0)
    assert threshold_metrics([9.0, 8.5], [9.0, 8.5], threshold=10)["n_positive"] == 0


def test_threshold_without_positives_is_nan():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = threshold_metrics([0.0, 2.0, 4.0], [1.0, 10.0, 3.0])
    assert m["n_positive"] == 0
    assert math.isnan(m["sensitivity"])
    assert math.isnan(m["roc_auc"])
    assert m["specificity"] == pytest.approx(2 / 3)


def test_mae_by_range_bins_by_true_score():
    result = mae_by_range(TRUE, PRED)
    assert list(result) == ["0", "0.5-4", "4.5-9", ">9"]
    assert result["0"] == {"n": 2, "mae": pytest.approx(0.4)}
    assert result["0.5-4"] == {"n": 2, "mae": pytest.approx(1.0)}
    assert result["4.5-9"] == {"n": 3, "mae": pytest.approx((1.5 + 0.5 + 1.0) / 3)}
    assert result[">9"] == {"n": 3, "mae": pytest.approx((1.5 + 2.5 + 4.0) / 3)}
    empty = mae_by_range([1.0], [2.0])[">9"]
    assert empty["n"] == 0
    assert math.isnan(empty["mae"])


def test_bland_altman_limits():
    result = bland_altman(TRUE, PRED)
    difference = PRED - TRUE
    assert result["bias"] == pytest.approx(difference.mean())
    assert result["loa_upper"] == pytest.approx(difference.mean() + 1.96 * difference.std(ddof=1))
    assert result["loa_lower"] == pytest.approx(difference.mean() - 1.96 * difference.std(ddof=1))


# --------------------------------------------------------------------------- summarize


def test_summarize_recomputes_per_fold_and_pooled_values(synthetic_predictions):
    table = synthetic_predictions()
    report = summarize(table)
    assert report["models"] == ["network", "median", "ridge"]
    assert (report["n_repeats"], report["n_folds"]) == (2, 3)
    assert report["n_subjects"] == 12
    assert report["n_scans"] == 24

    for model in report["models"]:
        rows = table[table["model"] == model]
        summary = report["metrics"][model]
        assert len(summary["folds"]) == 6
        for fold in summary["folds"]:
            part = rows[(rows["repeat"] == fold["repeat"]) & (rows["fold"] == fold["fold"])]
            assert fold["n_scans"] == len(part)
            assert fold["n_subjects"] == part["subject"].nunique()
            error = part["predicted"] - part["loes_score"]
            assert fold["mae"] == pytest.approx(error.abs().mean())
            assert fold["rmse"] == pytest.approx(math.sqrt((error**2).mean()))
        maes = [f["mae"] for f in summary["folds"]]
        assert summary["fold_mean"]["mae"] == pytest.approx(np.mean(maes))
        assert summary["fold_sd"]["mae"] == pytest.approx(np.std(maes, ddof=1))

        pooled_mae = np.mean(
            [(r["predicted"] - r["loes_score"]).abs().mean() for _, r in rows.groupby("repeat")]
        )
        assert summary["pooled"]["mae"] == pytest.approx(pooled_mae)
        pooled_r = np.mean(
            [stats.pearsonr(r["loes_score"], r["predicted"])[0] for _, r in rows.groupby("repeat")]
        )
        assert summary["pooled"]["pearson_r"] == pytest.approx(pooled_r)
        assert summary["pooled"]["n_scans"] == 24
        assert sum(v["n"] for v in summary["mae_by_range"].values()) == 24
        assert set(summary["threshold"]) >= {"sensitivity", "specificity", "roc_auc"}

    network, median = report["metrics"]["network"], report["metrics"]["median"]
    ratio = report["ratios"]["median"]
    assert ratio["pooled_mae_ratio"] == pytest.approx(
        network["pooled"]["mae"] / median["pooled"]["mae"]
    )
    first = ratio["folds"][0]
    assert first["mae_ratio"] == pytest.approx(
        network["folds"][0]["mae"] / median["folds"][0]["mae"]
    )
    assert set(report["ratios"]) == {"median", "ridge"}


def test_summarize_constant_baseline_folds_give_nan_correlations(synthetic_predictions):
    report = summarize(synthetic_predictions(repeats=1))
    fold = report["metrics"]["median"]["folds"][0]
    assert math.isnan(fold["pearson_r"])
    assert math.isnan(report["metrics"]["median"]["fold_mean"]["pearson_r"])


def test_summarize_rejects_missing_columns_and_duplicates(synthetic_predictions):
    table = synthetic_predictions(repeats=1)
    with pytest.raises(LoesError, match="model"):
        summarize(table.drop(columns="model"))
    with pytest.raises(LoesError, match="several predictions"):
        summarize(pd.concat([table, table.iloc[:1]]))
