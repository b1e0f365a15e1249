import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import r2_score, roc_auc_score

from loes.errors import LoesError
from loes.pipeline.report.bootstrap import bootstrap_intervals
from loes.pipeline.report.summary import summarize
from loes.pipeline.run.metrics import (
    bland_altman,
    mae_by_range,
    regression_metrics,
    score_ranges,
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
    assert list(result) == ["0", "0.5-4", "4.5-8.5", ">=9"]
    assert result["0"] == {"n": 2, "mae": pytest.approx(0.4)}
    assert result["0.5-4"] == {"n": 2, "mae": pytest.approx(1.0)}
    assert result["4.5-8.5"] == {"n": 2, "mae": pytest.approx((1.5 + 0.5) / 2)}
    # 9 is positive at the threshold, so it sits in the top range with 12, 15.5 and 21
    assert result[">=9"] == {"n": 4, "mae": pytest.approx((1.0 + 1.5 + 2.5 + 4.0) / 4)}
    empty = mae_by_range([1.0], [2.0])[">=9"]
    assert empty["n"] == 0
    assert math.isnan(empty["mae"])


@pytest.mark.parametrize("threshold", [9.0, 10.0, 4.0, 1.0, 0.5])
def test_score_ranges_end_at_the_threshold_and_cover_every_score(threshold):
    ranges = score_ranges(threshold)
    label, low, high = ranges[-1]
    assert (label, low, high) == (f">={threshold:g}", threshold, math.inf)
    scores = np.arange(0, 34.5, 0.5)
    homes = [[lab for lab, lo, hi in ranges if lo <= s < hi] for s in scores]
    assert all(len(home) == 1 for home in homes)  # every score in exactly one range
    top = np.array([home == [label] for home in homes])
    assert (top == (scores >= threshold)).all()  # the top range is the positive class
    for lab, lo, hi in ranges[1:-1]:  # the label names the lowest and highest score it holds
        inside = scores[(scores >= lo) & (scores < hi)]
        assert lab in (f"{inside[0]:g}-{inside[-1]:g}", f"{inside[0]:g}")


def test_score_ranges_at_threshold_10_move_the_boundaries():
    assert [r[0] for r in score_ranges(10)] == ["0", "0.5-4.5", "5-9.5", ">=10"]
    by_range = mae_by_range([9.0, 9.5, 10.0], [9.0, 9.5, 10.0], score_ranges(10))
    assert (by_range["5-9.5"]["n"], by_range[">=10"]["n"]) == (2, 1)


def test_score_ranges_refuse_a_threshold_between_half_points():
    with pytest.raises(ValueError, match=r"multiple of 0\.5"):
        score_ranges(9.25)
    with pytest.raises(ValueError, match=r"multiple of 0\.5"):
        score_ranges(0)


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


# --------------------------------------------------------------------------- intervals


def _cohort(
    n_subjects: int,
    scans: int = 3,
    seed: int = 0,
    network_sd: float = 1.0,
    subject_sd: float = 0.0,
    baseline_scale: float | None = None,
    twin: bool = False,
) -> pd.DataFrame:
    """One repeat of 5 folds: ``network`` = truth + a subject offset (SD ``subject_sd``) + scan
    noise (SD ``network_sd``); ``median`` predicts 3; ``scaled`` (if ``baseline_scale``) has the
    network's errors times ``baseline_scale``; ``twin`` (if asked) errors drawn like the
    network's, independently."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_subjects):
        offset = rng.normal(0, subject_sd)
        start = rng.integers(0, 20) / 2
        for k in range(scans):
            score = min(34.0, start + k)
            error = offset + rng.normal(0, network_sd)
            predicted = {"network": score + error, "median": 3.0}
            if baseline_scale is not None:
                predicted["scaled"] = score + baseline_scale * error
            if twin:
                predicted["twin"] = score + rng.normal(0, network_sd)
            for model, value in predicted.items():
                rows.append((0, s % 5, f"sub-{s:03d}", f"ses-{k}", score, value, model))
    columns = ["repeat", "fold", "subject", "session", "loes_score", "predicted", "model"]
    return pd.DataFrame(rows, columns=columns)


def _width(interval):
    return interval["high"] - interval["low"]


def test_intervals_contain_the_pooled_values_and_are_reproducible(synthetic_predictions):
    table = synthetic_predictions(repeats=2)
    report = summarize(table)
    assert report["bootstrap"] == {
        "n_resamples": 2000,
        "seed": 0,
        "confidence_level": 0.95,
        "cluster": "subject",
        "method": "percentile",
    }
    checked = 0
    for model in report["models"]:
        for metric, interval in report["metrics"][model]["pooled_ci"].items():
            point = report["metrics"][model]["pooled"][metric]
            if math.isfinite(interval["low"]):
                assert interval["low"] - 1e-12 <= point <= interval["high"] + 1e-12, (model, metric)
                checked += 1
    assert checked >= 15
    assert _width(report["metrics"]["network"]["pooled_ci"]["mae"]) > 0.1
    assert summarize(table)["metrics"] == report["metrics"]  # seeded: same numbers every time
    other = summarize(table, seed=1)["metrics"]["network"]["pooled_ci"]["mae"]
    assert other != report["metrics"]["network"]["pooled_ci"]["mae"]


def test_intervals_narrow_with_more_subjects():
    small = bootstrap_intervals(_cohort(20))["intervals"]["network"]["mae"]
    large = bootstrap_intervals(_cohort(320))["intervals"]["network"]["mae"]
    # 16 times the subjects: about a quarter of the width (1 / sqrt(16))
    assert _width(large) < 0.5 * _width(small)
    assert _width(large) > 0.1 * _width(small)


def test_subjects_with_shared_errors_widen_the_interval_beyond_a_scan_bootstrap():
    # 12 subjects x 8 scans; each subject's errors share an offset, so 96 scans carry little
    # more information than 12 subjects: resampling scans as if independent is overconfident
    table = _cohort(12, scans=8, network_sd=0.3, subject_sd=3.0)
    by_subject = bootstrap_intervals(table)["intervals"]["network"]["mae"]
    by_scan = bootstrap_intervals(table, cluster="scan")["intervals"]["network"]["mae"]
    assert _width(by_subject) > 2 * _width(by_scan)
    with pytest.raises(ValueError, match="cluster"):
        bootstrap_intervals(table, cluster="session")


def test_paired_difference_excludes_zero_when_the_network_is_clearly_better():
    # the baseline makes the network's errors 20% larger on every scan
    report = summarize(_cohort(30, network_sd=2.0, subject_sd=1.0, baseline_scale=1.2))
    network = report["metrics"]["network"]["pooled"]["mae"]
    scaled = report["metrics"]["scaled"]["pooled"]["mae"]
    difference = report["differences"]["scaled"]
    assert difference["mae_difference"] == pytest.approx(network - scaled)
    assert difference["mae_difference"] == pytest.approx(-0.2 * network)
    assert difference["low"] <= difference["mae_difference"] <= difference["high"] < 0
    assert difference["excludes_zero"]
    # on their own the two MAE intervals overlap: only pairing shows the difference is real
    own = report["metrics"]["network"]["pooled_ci"]["mae"]
    assert own["high"] > report["metrics"]["scaled"]["pooled_ci"]["mae"]["low"]


def test_paired_difference_includes_zero_between_equally_good_models():
    report = summarize(_cohort(40, network_sd=2.0, twin=True))
    difference = report["differences"]["twin"]  # the same error distribution, drawn anew
    assert difference["low"] < 0 < difference["high"]
    assert not difference["excludes_zero"]
    assert report["differences"]["median"]["excludes_zero"]  # the median is clearly worse


def test_intervals_are_undefined_without_two_subjects_or_resamples():
    one = _cohort(1)
    interval = bootstrap_intervals(one)["intervals"]["network"]["mae"]
    assert math.isnan(interval["low"])
    assert math.isnan(interval["high"])
    none = summarize(_cohort(10), n_resamples=0)
    assert math.isnan(none["metrics"]["network"]["pooled_ci"]["rmse"]["low"])
    assert none["differences"]["median"]["excludes_zero"] is False


def test_threshold_10_changes_the_threshold_metrics_and_the_score_ranges():
    table = _cohort(30)
    at_9, at_10 = summarize(table, 9), summarize(table, 10)
    assert {9.0, 9.5} <= set(table["loes_score"])  # scans that change class between 9 and 10
    truth = table[table["model"] == "network"]["loes_score"]
    for threshold, report in ((9, at_9), (10, at_10)):
        counts = report["metrics"]["network"]["threshold"]
        assert counts["n_positive"] == int((truth >= threshold).sum())
        assert (
            report["metrics"]["network"]["mae_by_range"][f">={threshold}"]["n"]
            == (counts["n_positive"])
        )
    assert (
        at_9["metrics"]["network"]["threshold"]["n_positive"]
        > (at_10["metrics"]["network"]["threshold"]["n_positive"])
    )
    assert at_9["score_ranges"] == ["0", "0.5-4", "4.5-8.5", ">=9"]
    assert at_10["score_ranges"] == ["0", "0.5-4.5", "5-9.5", ">=10"]
    assert at_10["score_range_bounds"]["5-9.5"] == [5.0, 10.0]
    assert at_10["threshold"] == 10.0


def test_intervals_do_not_depend_on_the_order_of_the_rows(synthetic_predictions):
    table = synthetic_predictions(repeats=2)
    shuffled = table.sample(frac=1.0, random_state=3)
    a, b = bootstrap_intervals(table), bootstrap_intervals(shuffled)
    for model, intervals in a["intervals"].items():
        for metric, interval in intervals.items():
            assert b["intervals"][model][metric] == pytest.approx(interval, rel=1e-9), metric
    for baseline, difference in a["differences"].items():
        assert b["differences"][baseline] == pytest.approx(difference, rel=1e-9), baseline
