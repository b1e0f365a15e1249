import numpy as np

from loes.pipeline.report.flags import NEAR_CONSTANT_SHARE, model_flags
from loes.pipeline.report.summary import summarize


def _flat_in_fold(table, fold, value=4.0, jitter=0.0):
    """The network's predictions in ``fold`` (every repeat) set to ``value`` plus tiny jitter."""
    table = table.copy()
    rows = (table["model"] == "network") & (table["fold"] == fold)
    table.loc[rows, "predicted"] = value + jitter * np.arange(rows.sum())
    return table


def test_a_good_network_is_not_flagged(synthetic_predictions):
    assert model_flags(summarize(synthetic_predictions(repeats=1), n_resamples=0)) == []


def test_near_constant_predictions_in_a_fold_are_flagged_by_name(synthetic_predictions):
    table = _flat_in_fold(synthetic_predictions(repeats=1), fold=1, jitter=0.001)
    summary = summarize(table, n_resamples=0)
    flags = model_flags(summary)
    assert [f["kind"] for f in flags] == ["near_constant"]
    flag = flags[0]
    assert flag["model"] == "network"
    assert flag["folds"] == [{"repeat": 0, "fold": 1}]
    assert "in fold 1:" in flag["text"]
    assert f"under {NEAR_CONSTANT_SHARE:.0%}" in flag["text"]
    spread = summary["metrics"]["network"]["pooled"]["sd_true"]
    assert f"({spread:.2f})" in flag["text"]
    # the median baseline is constant in every fold by design and is never flagged
    assert all(f["model"] == "network" for f in flags)


def test_spread_just_above_the_limit_is_not_flagged(synthetic_predictions):
    table = synthetic_predictions(repeats=1)
    truth_sd = table[table["model"] == "network"]["loes_score"].std(ddof=0)
    rows = (table["model"] == "network") & (table["fold"] == 0)
    n = int(rows.sum())
    values = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)  # population SD exactly 1
    scale = 1.2 * NEAR_CONSTANT_SHARE * truth_sd
    table.loc[rows, "predicted"] = 4.0 + scale * (values - values.mean()) / values.std()
    assert model_flags(summarize(table, n_resamples=0)) == []
    table.loc[rows, "predicted"] = 4.0 + 0.8 / 1.2 * scale * (values - values.mean()) / values.std()
    assert [f["kind"] for f in model_flags(summarize(table, n_resamples=0))] == ["near_constant"]


def test_a_network_worse_than_the_median_baseline_is_flagged(synthetic_predictions):
    table = synthetic_predictions(repeats=2)
    network = table["model"] == "network"
    table.loc[network, "predicted"] = 30 - table.loc[network, "loes_score"]  # upside down
    summary = summarize(table)
    flags = {f["kind"]: f for f in model_flags(summary)}
    assert set(flags) == {"worse_than_trivial"}
    text = flags["worse_than_trivial"]["text"]
    network_mae = summary["metrics"]["network"]["pooled"]["mae"]
    median_mae = summary["metrics"]["median"]["pooled"]["mae"]
    assert network_mae > median_mae
    assert f"({network_mae:.2f} Loes points) is worse than that of the median baseline" in text
    difference = summary["differences"]["median"]
    verdict = "excludes" if difference["excludes_zero"] else "includes"
    interval = f"{difference['low']:.2f} to {difference['high']:.2f}"
    assert f"interval {interval}, which {verdict} 0" in text


def test_every_fold_flat_says_every_fold(synthetic_predictions):
    table = synthetic_predictions(repeats=2)
    table.loc[table["model"] == "network", "predicted"] = 3.0
    flags = model_flags(summarize(table, n_resamples=0))
    near = next(f for f in flags if f["kind"] == "near_constant")
    assert "in every fold" in near["text"]
    assert len(near["folds"]) == 6


def test_a_fold_of_one_scan_is_not_called_near_constant(synthetic_predictions):
    table = synthetic_predictions(repeats=1)
    network = table["model"] == "network"
    first = table[network & (table["fold"] == 0)].index[0]
    table = table[~(table["fold"] == 0) | (table.index == first) | ~network]
    table = table[(table["fold"] != 0) | table["session"].eq(table.loc[first, "session"])]
    table = table[(table["fold"] != 0) | table["subject"].eq(table.loc[first, "subject"])]
    summary = summarize(table, n_resamples=0)
    fold0 = next(f for f in summary["metrics"]["network"]["folds"] if f["fold"] == 0)
    assert fold0["n_scans"] == 1
    assert fold0["sd_predicted"] == 0
    assert model_flags(summary) == []
