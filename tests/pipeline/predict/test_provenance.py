"""Provenance everywhere a prediction is shown: the run card read from report.json, the
predictions' sidecar JSON and page, the bundle's ensemble.json, metadata.json and README."""

import html
import json
import shutil

import pandas as pd
import pytest

from loes.errors import LoesError
from loes.pipeline import load_ensemble
from loes.pipeline.predict.export import export_bundle
from loes.pipeline.predict.page import render_page, write_predictions
from loes.pipeline.predict.provenance import RunCard, read_run_card
from loes.pipeline.predict.table import COLUMNS

pytestmark = pytest.mark.slow


def _report(source=None, flags=(), smoke=False):
    return {
        "created": "2026-12-06T08:56:51+00:00",
        "run": {
            "data_source": "built-in synthetic cohort (66 subjects, seed 0)",
            "n_scans": 212,
            "n_subjects": 61,
            "loes_version": "0.1.0",
            "smoke": smoke,
            "smoke_text": "Smoke run: 2 training epochs (under 10). It shows that ...",
        },
        "completeness": {"partial": False},
        "flags": list(flags),
        "metrics": {
            "network": {"pooled": {"mae": 1.06}, "pooled_ci": {"mae": {"low": 0.77, "high": 1.39}}},
            "median": {"pooled": {"mae": 3.78}},
        },
        "config": {"data": {"source": source}},
    }


def test_the_card_says_synthetic_data_and_the_accuracy_beside_the_baseline():
    card = RunCard.from_report(_report(), "synthetic-cpu")
    assert card.synthetic
    assert card.warnings == ()
    text = card.describe()
    assert "built-in synthetic cohort (66 subjects, seed 0): synthetic scans, not patients" in text
    assert "212 scans of 61 subjects" in text
    assert "cross-validated MAE 1.06 Loes points (95% interval 0.77-1.39) against 3.78" in text
    assert "run synthetic-cpu on 2026-12-06 with loes 0.1.0" in text
    assert RunCard.from_dict(json.loads(json.dumps(card.to_dict()))) == card


def test_the_card_carries_each_warning_of_the_report():
    flags = [{"kind": "near_constant"}, {"kind": "worse_than_trivial"}]
    card = RunCard.from_report(_report("/lab/scores.csv", flags, smoke=True), "r")
    assert not card.synthetic
    assert card.warnings == (
        "Smoke run: 2 training epochs (under 10): its models have not learned to score scans",
        "its network predicts nearly the same score for every scan",
        "its network is worse than the median baseline (MAE 1.06 against 3.78)",
    )


def test_a_run_without_a_report_has_no_card_and_says_so_in_every_row(tiny_run, tmp_path):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    (run / "report.json").unlink()
    assert read_run_card(run) is None
    ensemble = load_ensemble(run)
    assert ensemble.card is None
    table = ensemble.predict(ensemble.profile.scans[:1], device="cpu")
    assert "run: no report (report.json), so its accuracy is unknown" in table.loc[0, "flags"]
    with pytest.raises(LoesError, match=r"no report.json.*`loes report "):
        export_bundle(run, tmp_path / "bundle")


@pytest.fixture(scope="module")
def predicted(tiny_run):
    ensemble = load_ensemble(tiny_run)
    return ensemble.predict(ensemble.profile.scans[:3], device="cpu", coverage=0.8)


def test_the_sidecar_holds_the_provenance_and_every_columns_meaning(predicted, tmp_path):
    out = write_predictions(predicted, tmp_path / "p.csv")
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["run"]["run"] == "run"
    assert sidecar["run"]["warnings"]
    assert sidecar["trained"].startswith("trained on ")
    assert sidecar["coverage"] == 0.8
    assert sidecar["threshold"] == 9.0
    assert set(sidecar["columns"]) == set(COLUMNS)
    assert "80%" in sidecar["columns"]["coverage"]
    table = pd.read_csv(out)
    assert (table["coverage"] == 0.8).all()
    # the score and its interval to 0.1, the details to 0.001: no 17-digit floats
    for column in ("predicted", "lower", "upper"):
        assert (table[column] == table[column].round(1)).all()
    assert (table["member_fold_0"] == table["member_fold_0"].round(3)).all()


def test_the_page_defines_every_column_and_shows_the_runs_warnings(predicted):
    page = render_page(predicted, threshold=9.0, coverage=0.8, source="run", tta="flip")
    assert "What the columns mean" in page
    for name in COLUMNS:
        assert f"<dt>{html.escape(name)}</dt>" in page
    assert "The run's own report warns" in page
    assert "not sure: flagged" in page
    assert "crosses" not in page


def test_the_bundle_states_its_data_source_and_warnings(tiny_run, tmp_path, capsys):
    bundle = export_bundle(tiny_run, tmp_path / "bundle")
    assert "warning: the run's report: Smoke run" in capsys.readouterr().err
    card = json.loads((bundle / "models" / "ensemble.json").read_text())["card"]
    assert card["warnings"]
    assert card["n_scans"] == 15
    metadata = json.loads((bundle / "configs" / "metadata.json").read_text())
    assert metadata["data_source"].startswith("trained on ")
    assert "cross-validated MAE" in metadata["data_source"]
    readme = (bundle / "docs" / "README.md").read_text()
    assert "## Provenance" in readme
    assert "Warning from the run's report" in readme
    table = load_ensemble(bundle).predict(load_ensemble(tiny_run).profile.scans[:1], device="cpu")
    assert "run: Smoke run" in table.loc[0, "flags"]  # the bundle's predictions say it too
