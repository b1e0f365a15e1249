import json

import pytest

from loes.cli import main
from loes.pipeline import load_config
from loes.pipeline.report import write_report
from loes.pipeline.run.folder import load_run_config, prepare_run_folder

FILES = ("predictions.csv", "report.json", "report.md", "report.html")


def test_write_report_writes_every_file(written, strict_json):
    run_dir, _, report = written
    for name in FILES:
        assert (run_dir / name).stat().st_size > 0, name
    saved = strict_json(run_dir / "report.json")
    assert saved == report
    assert saved["config"] == {"model": "alexnet3d", "folds": 3}
    assert saved["created"]
    assert not list(run_dir.glob(".*"))  # no temporary files left behind


def test_write_report_takes_the_config_as_a_dict(tmp_path, synthetic_predictions):
    with pytest.raises(TypeError, match="config must be a dict"):
        write_report(tmp_path, synthetic_predictions(repeats=1), {}, config=["model"])


def test_loes_report_command_rewrites_the_report(tmp_path, capsys, fake_run, strict_json):
    table = fake_run(tmp_path, repeats=1)
    (tmp_path / "config.yaml").write_text("model:\n  name: sfcn\n")
    assert main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "network" in out
    assert "median" in out
    for name in FILES:
        assert (tmp_path / name).is_file(), name
    saved = strict_json(tmp_path / "report.json")
    # the saved settings, completed with the defaults of what the file leaves out, but a run
    # without a change section predates the paired network (folder.ADDED_SETTINGS)
    before = ["change.model=subtraction", "change.thick_slices=0"]
    assert saved["config"] == load_config(overrides=["model.name=sfcn", *before]).to_dict()
    assert saved["n_scans"] == table[["subject", "session"]].drop_duplicates().shape[0]
    assert set(saved["models"]) == {"network", "median", "ridge"}
    assert "learning curves" in (tmp_path / "report.html").read_text()  # histories collected


def test_loes_report_on_a_missing_or_empty_folder_exits_2(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "No predictions" in capsys.readouterr().err


def test_loes_report_names_a_broken_config_yaml(tmp_path, capsys, fake_run):
    fake_run(tmp_path, repeats=1)
    (tmp_path / "config.yaml").write_text("model: [unclosed\n")
    assert main(["report", str(tmp_path)]) == 2
    assert "config.yaml" in capsys.readouterr().err


def test_a_partial_run_is_labelled_on_every_page(tmp_path, capsys, fake_run, strict_json):
    fake_run(tmp_path, repeats=2, folds=3)
    (tmp_path / "repeat_1" / "fold_1" / "metrics.json").unlink()
    assert main(["report", str(tmp_path)]) == 0
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    saved = strict_json(tmp_path / "report.json")
    completeness = saved["completeness"]
    assert completeness["partial"]
    assert [m["name"] for m in completeness["missing"]] == ["repeat 1 fold 1"]
    text = completeness["text"]
    assert "covers 5 of 6 folds. Missing: repeat 1 fold 1 unfinished (no metrics.json)" in text
    assert f"! {text}" in out
    assert f"> **Warning**: {text}" in (tmp_path / "report.md").read_text()
    html = (tmp_path / "report.html").read_text()
    assert f'<p class="warning"><strong>Warning:</strong> {text}</p>' in html
    assert {(f["repeat"], f["fold"]) for f in saved["metrics"]["network"]["folds"]} == {
        (0, 0),
        (0, 1),
        (0, 2),
        (1, 0),
        (1, 2),
    }


def test_a_complete_run_has_no_partial_label(tmp_path, capsys, fake_run, strict_json):
    fake_run(tmp_path, repeats=1, folds=3)
    assert main(["report", str(tmp_path)]) == 0
    assert "Partial run" not in capsys.readouterr().out
    saved = strict_json(tmp_path / "report.json")
    assert saved["completeness"]["partial"] is False
    assert "Partial run" not in (tmp_path / "report.html").read_text()


def test_loes_report_names_a_truncated_fold_file(tmp_path, capsys, fake_run):
    fake_run(tmp_path, repeats=1)
    path = tmp_path / "fold_2" / "predictions.csv"
    path.write_text(path.read_text()[:-25])
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "fold_2" in err
    assert "predictions.csv line" in err
    assert "Traceback" not in err


def test_threshold_comes_from_the_settings_and_from_the_command_line(tmp_path, capsys, fake_run):
    table = fake_run(tmp_path, repeats=1)
    config_text = load_config(overrides=["report.threshold=10"]).to_yaml()
    (tmp_path / "config.yaml").write_text(config_text)
    assert main(["report", str(tmp_path)]) == 0
    saved = json.loads((tmp_path / "report.json").read_text())
    truth = table[table["model"] == "network"]["loes_score"]
    assert saved["threshold"] == 10
    assert saved["score_ranges"] == ["0", "0.5-4.5", "5-9.5", ">=10"]
    assert saved["metrics"]["network"]["threshold"]["n_positive"] == int((truth >= 10).sum())
    assert "## Transplant threshold (Loes ≥ 10)" in (tmp_path / "report.md").read_text()

    assert main(["report", str(tmp_path), "--threshold", "9"]) == 0
    assert "AUC@9" in capsys.readouterr().out
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["threshold"] == 9
    assert saved["score_ranges"][-1] == ">=9"
    assert saved["metrics"]["network"]["threshold"]["n_positive"] == int((truth >= 9).sum())
    assert saved["config"]["report"]["threshold"] == 9  # the report's copy says what it used
    assert (tmp_path / "config.yaml").read_text() == config_text  # the run is left alone


def test_a_bad_threshold_is_refused_in_words(tmp_path, capsys, fake_run):
    fake_run(tmp_path, repeats=1)
    assert main(["report", str(tmp_path), "--threshold", "9.2"]) == 2
    assert "report.threshold must be a multiple of 0.5" in capsys.readouterr().err


def test_the_report_settings_do_not_identify_a_run(tmp_path):
    base = load_config(overrides=[f"out={tmp_path}"])
    other = load_config(overrides=[f"out={tmp_path}", "report.threshold=10"])
    assert other.deciding_results() == base.deciding_results()
    prepare_run_folder(base)
    prepare_run_folder(other)  # resuming with another threshold is not refused
    assert load_run_config(tmp_path).report.threshold == 10


def test_what_was_run_reads_the_run_folder(tmp_path, fake_run, strict_json):
    fake_run(tmp_path, repeats=2, folds=3)
    (tmp_path / "config.yaml").write_text(
        load_config(overrides=["model.name=sfcn", "training.epochs=30"]).to_yaml()
    )
    environment = {"device": "cuda:0", "gpu": "NVIDIA H200", "packages": {"loes": "0.1.0"}}
    (tmp_path / "environment.json").write_text(json.dumps(environment))
    write_report(tmp_path)
    run = strict_json(tmp_path / "report.json")["run"]
    assert run["model"] == "sfcn"
    assert run["device"] == "cuda:0 (NVIDIA H200)"
    assert (run["n_folds"], run["n_repeats"]) == (3, 2)  # from splits.json, not cv.folds (5)
    assert run["epochs"] == 30
    assert run["smoke"]  # 24 scans
    assert run["smoke_text"].startswith("Smoke run: 24 scans (under 40)")
