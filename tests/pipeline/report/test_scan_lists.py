"""The report names scans: the worst-predicted ones with fold, true and predicted score and the
threshold call, and the scans the run read but set aside, with why; and its verdict weighs the
threshold metrics beside the MAE."""

import pandas as pd
from rich.console import Console

from loes.pipeline.report import format_summary, write_report
from loes.pipeline.report.scan_lists import N_WORST, worst_predictions
from loes.pipeline.report.tables import headline
from loes.pipeline.report.verdict import baselines_better_at_threshold
from loes.pipeline.run.set_aside import SET_ASIDE_FILE


def _terminal(report) -> str:
    console = Console(width=200, record=True)
    console.print(format_summary(report))
    return console.export_text()


def test_the_worst_predicted_scans_are_listed_with_fold_scores_and_call(
    tmp_path, synthetic_predictions
):
    table = synthetic_predictions(repeats=1)
    network = table["model"] == "network"
    scans = table.loc[network, ["subject", "session"]].values.tolist()

    def rescore(scan, true, predicted):
        rows = (table["subject"] == scan[0]) & (table["session"] == scan[1])
        table.loc[rows, "loes_score"] = true
        table.loc[rows & network, "predicted"] = predicted
        return table.index[rows & network][0]

    first = rescore(scans[0], 11.0, 2.0)  # missed at 9, error -9
    second = rescore(scans[1], 1.0, 9.5)  # a false alarm, error +8.5
    report = write_report(tmp_path, table, {})
    worst = report["worst"]
    assert len(worst) == N_WORST
    rows = table[network].assign(error=lambda t: t["predicted"] - t["loes_score"])
    expected = rows.reindex(rows["error"].abs().sort_values(ascending=False).index)[:N_WORST]
    assert [w["error"] for w in worst] == expected["error"].tolist()
    assert [(w["subject"], w["session"], w["fold"]) for w in worst[:2]] == [
        tuple(table.loc[i, ["subject", "session", "fold"]]) for i in (first, second)
    ]
    assert (worst[0]["loes_score"], worst[0]["predicted"], worst[0]["call"]) == (11, 2, "missed")
    assert (worst[1]["error"], worst[1]["call"]) == (8.5, "false alarm")
    assert all(
        w["call"] == ("missed" if w["loes_score"] >= 9 > w["predicted"] else "")
        or w["call"] == "false alarm"
        for w in worst
    )
    subject, session, fold = worst[0]["subject"], worst[0]["session"], worst[0]["fold"]
    md = (tmp_path / "report.md").read_text()
    assert f"## The {N_WORST} worst-predicted scans (network)" in md
    assert f"| {fold} | {subject} | {session} | 11.0 | 2.0 | -9.0 | missed |" in md
    assert "false alarm" in md
    html = (tmp_path / "report.html").read_text()
    assert f"<td>{subject}</td><td>{session}</td><td>11.0</td><td>2.0</td><td>-9.0</td>" in html
    terminal = _terminal(report)
    assert f"Worst predicted: {subject} {session} (fold {fold}): 11.0 predicted 2.0, missed" in (
        terminal.replace("\n", " ")
    )


def test_with_repeats_the_fold_is_named_with_its_repeat(synthetic_predictions):
    table = synthetic_predictions(repeats=2)
    worst = worst_predictions(table, threshold=9.0, n=30)
    assert len(worst) == 30
    assert {w["repeat"] for w in worst} == {0, 1}
    errors = [abs(w["error"]) for w in worst]
    assert errors == sorted(errors, reverse=True)


def _ridge_ranks_better(synthetic_predictions) -> pd.DataFrame:
    """The network exact but for one positive scan it misses badly, the ridge baseline far off
    but in the right order (ROC AUC 1): the network wins on MAE, ridge at the threshold."""
    table = synthetic_predictions(repeats=1)
    ridge, network = table["model"] == "ridge", table["model"] == "network"
    table.loc[ridge, "predicted"] = 0.3 * table.loc[ridge, "loes_score"] + 5
    table.loc[network, "predicted"] = table.loc[network, "loes_score"]
    # the network misses its lowest positive scan badly: below every negative one
    positive = table[network & (table["loes_score"] >= 9)]["loes_score"].idxmin()
    table.loc[positive, "predicted"] = -1.0
    return table


def test_the_verdict_says_when_a_baseline_does_better_at_the_threshold(
    tmp_path, synthetic_predictions
):
    report = write_report(tmp_path, _ridge_ranks_better(synthetic_predictions), {})
    pooled = {m: report["metrics"][m]["pooled"] for m in report["models"]}
    assert pooled["network"]["mae"] < pooled["ridge"]["mae"]
    assert pooled["ridge"]["roc_auc"] == 1.0 > pooled["network"]["roc_auc"]
    # the median baseline's specificity 1.00 is no win: it never calls a scan positive
    assert pooled["median"]["specificity"] == 1.0
    assert set(baselines_better_at_threshold(report)) == {"ridge"}
    text, _ = headline(report)
    network_auc = f"{pooled['network']['roc_auc']:.2f}"
    assert (
        f"The ridge baseline does better at the threshold (ROC AUC 1.00 against {network_auc})"
    ) in text
    assert "the lower MAE" in text or "although the network's MAE is lower" in text
    assert text.index("pooled MAE") < text.index("At the transplant threshold (Loes ≥ 9")
    assert report["verdict"] == text
    md = (tmp_path / "report.md").read_text()
    assert f"**{text}**" in md
    assert "The ridge baseline does better at the threshold" in _terminal(report).replace("\n", " ")


def test_no_baseline_is_said_better_when_none_is(tmp_path, synthetic_predictions):
    table = synthetic_predictions(repeats=1)
    network = table["model"] == "network"
    table.loc[network, "predicted"] = table.loc[network, "loes_score"]  # perfect
    report = write_report(tmp_path, table, {})
    assert baselines_better_at_threshold(report) == {}
    text, _ = headline(report)
    assert "At the transplant threshold (Loes ≥ 9" in text
    assert "does better at the threshold" not in text


def _kept_and_aside(run_dir, table):
    scans = table[table["model"] == "network"][["subject", "session", "loes_score"]]
    scans.to_csv(run_dir / "scans.csv", index=False)
    aside = pd.DataFrame(
        {
            "image": ["/data/a_ce.nii.gz", "/data/b_ce.nii.gz", "/data/c_ce.nii.gz"],
            "subject": [scans["subject"].iloc[0], "subject-90", "subject-91"],
            "session": ["session-09", "session-00", "session-00"],
            "loes_score": [3.0, 10.5, float("nan")],
            "reason": ["post-contrast scan (gd); left out unless data.include_gd"] * 3,
        }
    )
    aside.to_csv(run_dir / SET_ASIDE_FILE, index=False)
    return scans


def test_the_scans_set_aside_are_counted_and_listed(tmp_path, fake_run, strict_json):
    run_dir = tmp_path / "run"
    table = fake_run(run_dir, repeats=1)
    scans = _kept_and_aside(run_dir, table)
    report = write_report(run_dir)
    s = strict_json(run_dir / "report.json")["set_aside"]
    assert (s["n_read"], s["n_kept"], s["n_set_aside"]) == (len(scans) + 3, len(scans), 3)
    assert s["n_read"] == s["n_kept"] + s["n_set_aside"]
    assert (s["subjects_kept"], s["subjects_read"]) == (12, 14)
    assert s["subjects_left_out"] == ["subject-90", "subject-91"]
    assert s["reasons"] == [
        {
            "reason": "post-contrast scan (gd); left out unless data.include_gd",
            "n_scans": 3,
            "n_subjects": 3,
        }
    ]
    sentence = (
        "3 of 27 scans read: post-contrast scan (gd) (3 scans of 3 subjects); 2 subjects had "
        "no other scan and are not in the run: subject-90, subject-91"
    )
    md = (run_dir / "report.md").read_text()
    assert f"- **Set aside**: {sentence}" in md
    assert "## Scans set aside (3 of 27 read)" in md
    assert "| subject-90 | session-00 | 10.5 | post-contrast scan (gd) | b_ce.nii.gz |" in md
    assert "| subject-91 | session-00 | – |" in md
    assert "Scans read 27 = used 24 + set aside 3" in md
    html = (run_dir / "report.html").read_text()
    assert f"<tr><th>Set aside</th><td>{sentence}</td></tr>" in html
    assert "<h2>Scans set aside (3 of 27 read)</h2>" in html
    assert f"Set aside: {sentence}" in _terminal(report).replace("\n", " ")


def test_a_run_that_set_nothing_aside_says_so_and_an_old_run_says_nothing(tmp_path, fake_run):
    run_dir = tmp_path / "run"
    table = fake_run(run_dir, repeats=1)
    assert write_report(run_dir)["set_aside"] is None  # made before loes recorded it
    assert "Set aside" not in (run_dir / "report.md").read_text()
    scans = table[table["model"] == "network"][["subject", "session", "loes_score"]]
    scans.to_csv(run_dir / "scans.csv", index=False)
    (run_dir / SET_ASIDE_FILE).write_text("image,subject,session,loes_score,reason\n")
    report = write_report(run_dir)
    assert report["set_aside"]["n_set_aside"] == 0
    assert "- **Set aside**: none of the 24 scans read" in (run_dir / "report.md").read_text()
    assert "## Scans set aside" not in (run_dir / "report.md").read_text()
