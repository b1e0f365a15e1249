"""The report's change section, recomputed independently from a predictions.csv.

The expected pairs are made here by sorting each subject's rows (by age, else by the number in
the session id) and the metrics with scikit-learn and numpy on the pairs, not with
loes.data.follow_up or loes.pipeline.run.metrics; the intervals by drawing subjects with the
documented generator (``numpy.random.default_rng(seed).integers``, subjects in sorted order,
as scipy.stats.bootstrap draws them) and recomputing every metric on the drawn pairs.
"""

import json
import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from rich.console import Console
from sklearn.metrics import mean_absolute_error, roc_auc_score

from loes.pipeline.report import (
    follow_up_plots,
    format_summary,
    plots,
    render_html,
    render_markdown,
    write_report,
)
from loes.pipeline.report.change import CHANGE_METRICS, NO_CHANGE, change_pairs, summarize_change
from loes.pipeline.report.change_text import change_sentence
from loes.pipeline.run.predictions import read_predictions

RESAMPLES = 300
SESSION_NUMBERS = (1, 2, 10, 11, 12)  # ses-2 before ses-10: natural order, not text order


def cohort(n_subjects=24, repeats=1, ages=True, seed=0) -> pd.DataFrame:
    """A predictions.csv table: subject s has 1 + s % 5 sessions (some only one), scores that
    only grow, a network and a ridge that err, and a median constant within a fold; rows
    shuffled."""
    rng = np.random.default_rng(seed)
    scans = []
    for s in range(n_subjects):
        score, age = float(rng.integers(0, 12)) / 2, 4 + 4 * rng.random()
        for k in range(1 + s % 5):
            scans.append((f"sub-{s:02d}", f"ses-{SESSION_NUMBERS[k]}", round(age, 1), score))
            score += float(rng.choice([0, 0, 0.5, 1, 2.5]))
            age += 0.3 + rng.random()
    rows = []
    for repeat in range(repeats):
        fold_of = {f"sub-{s:02d}": i % 3 for i, s in enumerate(rng.permutation(n_subjects))}
        for subject, session, age, score in scans:
            fold = fold_of[subject]
            rows.append(
                {
                    "repeat": repeat,
                    "fold": fold,
                    "subject": subject,
                    "session": session,
                    "age": age,
                    "loes_score": score,
                    "predicted": max(0.0, score + rng.normal(0, 1.2)),
                    "predicted_median": 2.0 + fold,
                    "predicted_ridge": 0.6 * score + 1 + rng.normal(0, 1.5),
                }
            )
    table = pd.DataFrame(rows).sample(frac=1, random_state=seed).reset_index(drop=True)
    return table if ages else table.drop(columns="age")


def written_csv(tmp_path, table) -> pd.DataFrame:
    path = tmp_path / "predictions.csv"
    table.to_csv(path, index=False)
    return read_predictions(path)


def expected_pairs(table: pd.DataFrame, by_age: bool) -> pd.DataFrame:
    """Consecutive pairs made by hand: sort, then difference each subject's next row."""
    table = table.assign(number=table["session"].str.removeprefix("ses-").astype(int))
    keys = ["repeat", "subject", *(["age"] if by_age else []), "number"]
    table = table.sort_values(keys)
    rows = []
    for _, series in table.groupby(["repeat", "subject"]):
        series = series.reset_index(drop=True)
        for i in range(1, len(series)):
            earlier, later = series.iloc[i - 1], series.iloc[i]
            rows.append(
                {
                    "repeat": earlier["repeat"],
                    "subject": earlier["subject"],
                    "from_session": earlier["session"],
                    "to_session": later["session"],
                    "true": later["loes_score"] - earlier["loes_score"],
                    "network": later["predicted"] - earlier["predicted"],
                    "ridge": later["predicted_ridge"] - earlier["predicted_ridge"],
                    NO_CHANGE: 0.0,
                }
            )
    return pd.DataFrame(rows)


def metrics_of(true: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    positive, called = true >= 0.5, predicted >= 0.5
    both = positive.any() and (~positive).any()
    return {
        "mae": mean_absolute_error(true, predicted),
        "pearson_r": np.corrcoef(true, predicted)[0, 1] if np.ptp(predicted) > 0 else np.nan,
        "sensitivity": called[positive].mean() if positive.any() else np.nan,
        "specificity": (~called[~positive]).mean() if (~positive).any() else np.nan,
        "roc_auc": roc_auc_score(positive, predicted) if both else np.nan,
    }


def averaged(pairs: pd.DataFrame, predictor: str) -> dict[str, float]:
    """Metrics over the pairs of each repeat, averaged over repeats (nan left out)."""
    per_repeat = [
        metrics_of(rows["true"].to_numpy(float), rows[predictor].to_numpy(float))
        for _, rows in pairs.groupby("repeat")
    ]
    with np.errstate(all="ignore"):
        return {
            m: np.nanmean([r[m] for r in per_repeat])
            if np.isfinite([r[m] for r in per_repeat]).any()
            else np.nan
            for m in CHANGE_METRICS
        }


def naive_intervals(
    pairs: pd.DataFrame,
    seed: int = 0,
    resamples: int = RESAMPLES,
    predictors: tuple[str, ...] = ("network", NO_CHANGE, "ridge"),
):
    """Percentile intervals of every metric (and the network's MAE minus each other's) over
    resamples of subjects drawn with replacement, each bringing all his pairs."""
    subjects = np.sort(pairs["subject"].unique())
    rows_of = {s: np.flatnonzero(pairs["subject"].to_numpy() == s) for s in subjects}
    drawn = np.random.default_rng(seed).integers(0, len(subjects), (resamples, len(subjects)))
    values = {(p, m): [] for p in predictors for m in CHANGE_METRICS}
    differences = {p: [] for p in predictors if p != "network"}
    for draw in drawn:
        resample = pairs.iloc[np.concatenate([rows_of[subjects[i]] for i in draw])]
        found = {p: averaged(resample, p) for p in predictors}
        for (p, m), kept in values.items():
            kept.append(found[p][m])
        for other, kept in differences.items():
            kept.append(found["network"]["mae"] - found[other]["mae"])

    def bounds(distribution):
        distribution = np.asarray(distribution, float)
        defined = distribution[np.isfinite(distribution)]
        if defined.size == 0 or defined.size < 0.95 * distribution.size:
            return np.nan, np.nan
        return tuple(np.percentile(defined, [2.5, 97.5]))

    return (
        {key: bounds(kept) for key, kept in values.items()},
        {other: bounds(kept) for other, kept in differences.items()},
    )


def assert_close(found, expected):
    if expected is None or np.isnan(expected):
        assert found is None or np.isnan(found)
    else:
        assert found == pytest.approx(expected, rel=1e-7, abs=1e-9)


def assert_metrics_and_intervals(change: dict, pairs: pd.DataFrame, intervals: dict) -> None:
    """Every predictor's metrics and their intervals equal those recomputed on ``pairs``."""
    for predictor in change["predictors"]:
        expected = averaged(pairs, predictor)
        for metric in CHANGE_METRICS:
            assert_close(change["metrics"][predictor][metric], expected[metric])
            low, high = intervals[(predictor, metric)]
            assert_close(change["intervals"][predictor][metric]["low"], low)
            assert_close(change["intervals"][predictor][metric]["high"], high)


def paired_changes(table: pd.DataFrame, seed: int = 1) -> pd.DataFrame:
    """A run's changes.csv: a paired network's change for each consecutive pair, the true
    change plus a small error."""
    pairs = expected_pairs(table, by_age=True)
    fold = table.drop_duplicates("subject").set_index("subject")["fold"]
    error = np.random.default_rng(seed).normal(0, 0.3, len(pairs))
    return pd.DataFrame(
        {
            "repeat": pairs["repeat"],
            "fold": pairs["subject"].map(fold),
            "subject": pairs["subject"],
            "from_session": pairs["from_session"],
            "to_session": pairs["to_session"],
            "loes_score_change": pairs["true"],
            "predicted_change": pairs["true"] + error,
        }
    ).sample(frac=1, random_state=seed)


def test_the_paired_networks_change_is_the_networks_and_subtraction_stands_beside_it(tmp_path):
    table = cohort()
    paired = paired_changes(table)
    change = summarize_change(written_csv(tmp_path, table), paired, n_resamples=RESAMPLES)
    pairs = expected_pairs(table, by_age=True).rename(columns={"network": "subtraction"})
    pairs = pairs.merge(
        paired.rename(columns={"predicted_change": "network"}),
        on=["repeat", "subject", "from_session", "to_session"],
    )
    assert change["method"] == "paired"
    predictors = ("network", "subtraction", NO_CHANGE, "ridge")
    assert change["predictors"] == list(predictors)
    intervals, differences = naive_intervals(pairs, predictors=predictors)
    assert_metrics_and_intervals(change, pairs, intervals)
    assert change["metrics"]["network"]["mae"] < change["metrics"]["subtraction"]["mae"]
    for other, (low, high) in differences.items():
        found = change["differences"][other]
        assert_close(found["low"], low)
        assert_close(found["high"], high)
    assert "paired network's predicted change" in change_sentence(change)
    # a pair the paired network did not predict is left out of every predictor's metrics
    fewer = summarize_change(written_csv(tmp_path, table), paired.iloc[1:], n_resamples=0)
    assert fewer["n_pairs"] == change["n_pairs"] - 1
    figure = follow_up_plots.plot_change(written_csv(tmp_path, table), paired=paired)
    assert [a.get_title() for a in figure.axes][:2] == ["Change: network", "Change: subtraction"]


@pytest.fixture(scope="module")
def report_run(tmp_path_factory):
    """``(run_dir, table, report)``: write_report on a predictions.csv of two repeats."""
    run_dir = tmp_path_factory.mktemp("run")
    table = cohort(repeats=2)
    long = written_csv(run_dir, table)
    return run_dir, table, write_report(run_dir, long, histories={})


def test_every_number_of_the_change_section_is_recomputed_from_predictions_csv(tmp_path):
    table = cohort()
    change = summarize_change(written_csv(tmp_path, table), n_resamples=RESAMPLES)
    pairs = expected_pairs(table, by_age=True)
    assert change["order"] == "age"
    assert change["n_pairs"] == len(pairs)
    assert change["n_subjects"] == pairs["subject"].nunique() == 19  # 5 have one session
    assert change["n_progressions"] == int((pairs["true"] >= 0.5).sum())
    assert change["mean_abs_true_change"] == pytest.approx(pairs["true"].abs().mean())
    assert change["predictors"] == ["network", NO_CHANGE, "ridge"]
    assert list(change["not_shown"]) == ["median"]  # constant within a fold: change always 0
    intervals, differences = naive_intervals(pairs)
    assert_metrics_and_intervals(change, pairs, intervals)
    assert change["metrics"][NO_CHANGE]["roc_auc"] == 0.5
    assert np.isnan(change["metrics"][NO_CHANGE]["pearson_r"])
    for other, (low, high) in differences.items():
        found = change["differences"][other]
        expected = averaged(pairs, "network")["mae"] - averaged(pairs, other)["mae"]
        assert_close(found["mae_difference"], expected)
        assert_close(found["low"], low)
        assert_close(found["high"], high)
        assert found["excludes_zero"] == (low > 0 or high < 0)


def test_several_repeats_average_the_metrics_of_each_repeat(report_run):
    _, table, report = report_run
    change = report["change"]
    pairs = expected_pairs(table, by_age=True)
    assert change["n_repeats"] == 2
    assert change["n_pairs"] == len(pairs) // 2  # the same pairs in both repeats
    assert change["bootstrap"]["n_resamples"] == 2000
    for predictor in ("network", "ridge"):
        one = [averaged(pairs[pairs["repeat"] == r], predictor)["mae"] for r in (0, 1)]
        assert one[0] != pytest.approx(one[1])  # the repeats differ, so the mean is a test
        assert change["metrics"][predictor]["mae"] == pytest.approx(np.mean(one))
        expected = averaged(pairs, predictor)
        for metric in CHANGE_METRICS:
            assert_close(change["metrics"][predictor][metric], expected[metric])


def test_the_section_shows_the_numbers_of_report_json(report_run, strict_json):
    run_dir, _, report = report_run
    change = strict_json(run_dir / "report.json")["change"]
    assert change == json.loads(json.dumps(report["change"]))
    markdown = (run_dir / "report.md").read_text()
    section = markdown[markdown.index("## Change between sessions") :]
    html = (run_dir / "report.html").read_text()
    html_section = html[html.index('<h2 id="change">') :]
    for predictor in change["predictors"]:
        cells = []
        for metric in CHANGE_METRICS:
            value, ci = change["metrics"][predictor][metric], change["intervals"][predictor][metric]
            if value is None:
                cells.append("–")
            elif ci["low"] is None:
                cells.append(f"{value:.2f}")
            else:
                cells.append(f"{value:.2f} ({ci['low']:.2f} to {ci['high']:.2f})")
        assert f"| {predictor} | {' | '.join(cells)} |" in section
        assert f"<td>{predictor}</td><td>{'</td><td>'.join(cells)}</td>" in html_section
    network, versus = change["metrics"]["network"], change["differences"][NO_CHANGE]
    sentence = change_sentence(change)
    assert f"off by {network['mae']:.2f} Loes points" in sentence
    assert f"ROC AUC {network['roc_auc']:.2f}" in sentence
    assert f"{versus['low']:.2f} to {versus['high']:.2f}" in sentence
    assert f"**{sentence}**" in section
    assert f"{change['n_pairs']} pairs of consecutive sessions of {change['n_subjects']}" in (
        sentence
    )
    assert "ordered by age at the scan" in section
    assert "averaged over the 2 repeats" in section
    assert html_section.count("data:image/png;base64,") == 1  # the change plot


def test_without_ages_pairs_follow_the_session_ids_and_say_so(tmp_path):
    table = cohort(ages=False)
    found = change_pairs(written_csv(tmp_path, table))
    expected = expected_pairs(table, by_age=False)
    assert found.order == "session id"
    columns = ["subject", "from_session", "to_session"]
    got = found.pairs[columns].values.tolist()
    assert sorted(got) == sorted(expected[columns].values.tolist())
    assert ["sub-02", "ses-2", "ses-10"] in got
    markdown = render_markdown(write_report(tmp_path / "run", written_csv(tmp_path, table), {}))
    assert "ordered by session id (not every scan has an age in predictions.csv)" in markdown


def test_ties_in_age_are_broken_by_session_id(tmp_path):
    table = pd.DataFrame(
        {
            "repeat": 0,
            "fold": [0, 0, 0, 1, 1],
            "subject": ["a", "a", "a", "b", "b"],
            "session": ["ses-10", "ses-2", "ses-1", "ses-1", "ses-2"],
            "age": [6.0, 6.0, 5.0, 7.0, 8.0],  # ses-2 and ses-10 scanned at the same age
            "loes_score": [4.0, 1.0, 0.0, 2.0, 2.0],
            "predicted": [3.0, 2.0, 0.5, 2.0, 3.0],
            "predicted_ridge": [2.0, 2.5, 1.0, 1.0, 1.0],
        }
    )
    found = change_pairs(written_csv(tmp_path, table))
    pairs = found.pairs.set_index(["subject", "from_session", "to_session"])
    assert found.order == "age"
    assert list(pairs.index) == [
        ("a", "ses-1", "ses-2"),
        ("a", "ses-2", "ses-10"),
        ("b", "ses-1", "ses-2"),
    ]
    assert pairs["true_change"].tolist() == [1.0, 3.0, 0.0]
    assert pairs["change_network"].tolist() == [1.5, 1.0, 1.0]
    assert pairs["change_ridge"].tolist() == [1.5, -0.5, 0.0]
    change = summarize_change(written_csv(tmp_path, table), n_resamples=RESAMPLES)
    assert change["n_progressions"] == 2
    assert change["metrics"]["network"]["mae"] == pytest.approx((0.5 + 2.0 + 1.0) / 3)
    assert change["metrics"]["network"]["sensitivity"] == 1.0  # rises of 1.5 and 1.0
    assert change["metrics"]["network"]["specificity"] == 0.0  # a 1.0 rise for no change
    assert change["metrics"]["ridge"]["roc_auc"] == 0.5  # rises 1.5 and -0.5 against 0.0


def test_a_pair_across_two_test_folds_is_left_out_and_counted(tmp_path):
    table = cohort(n_subjects=10)
    moved = (table["subject"] == "sub-04") & (table["session"] == "ses-12")  # last of five
    table.loc[moved, "fold"] = (table.loc[moved, "fold"] + 1) % 3
    change = summarize_change(written_csv(tmp_path, table), n_resamples=0)
    assert change["n_across_folds"] == 1
    assert change["n_pairs"] == len(expected_pairs(table, by_age=True)) - 1
    assert np.isnan(change["intervals"]["network"]["mae"]["low"])  # no resamples asked
    report = write_report(tmp_path / "run", written_csv(tmp_path, table), {})
    assert "1 pair whose sessions were in different test folds is left out" in (
        render_markdown(report)
    )


def test_the_report_builds_when_no_subject_has_two_sessions(tmp_path):
    table = cohort()
    table = table[table["session"] == "ses-1"]  # one session each
    report = write_report(tmp_path, written_csv(tmp_path, table), {})
    change = report["change"]
    assert change["n_pairs"] == change["n_subjects"] == change["n_progressions"] == 0
    assert change["metrics"] == change["intervals"] == change["differences"] == {}
    assert change["predictors"] == []
    saying = "No subject has two sessions in the out-of-fold predictions"
    markdown = (tmp_path / "report.md").read_text()
    assert f"## Change between sessions\n\n**{saying}" in markdown
    html = (tmp_path / "report.html").read_text()
    section = html[html.index('<h2 id="change">') :]
    assert saying in section
    assert "<table>" not in section
    assert "data:image/png" not in section
    console = Console(width=80, record=True)
    console.print(format_summary(report))
    assert saying in " ".join(console.export_text().split())
    assert follow_up_plots.plot_change(read_predictions(tmp_path / "predictions.csv")) is None
    assert render_html({**report, "change": None}, written_csv(tmp_path, table))  # old report


def test_the_change_plot_shows_each_model_s_pairs(tmp_path):
    table = cohort()
    long = written_csv(tmp_path, table)
    figure = follow_up_plots.plot_change(long)
    assert isinstance(figure, Figure)
    panels = [axis for axis in figure.axes if axis.collections]
    assert [axis.get_title() for axis in panels] == ["Change: network", "Change: ridge"]
    pairs = expected_pairs(table, by_age=True)
    for axis, model in zip(panels, ("network", "ridge"), strict=True):
        points = axis.collections[0].get_offsets()
        assert sorted(map(tuple, np.round(points, 9))) == sorted(
            zip(np.round(pairs["true"], 9), np.round(pairs[model], 9), strict=True)
        )
        assert 0.5 in [line.get_xdata()[0] for line in axis.lines]  # the progression line
    assert plots.figure_to_png(figure).startswith(b"\x89PNG")


def test_the_terminal_summary_ends_with_the_change_sentence(report_run):
    _, _, report = report_run
    console = Console(width=80, record=True)
    console.print(format_summary(report))
    text = " ".join(console.export_text().split())
    assert "Change between sessions: " + change_sentence(report["change"]) in text
    assert re.search(r"worse|better|not clearly different", change_sentence(report["change"]))
