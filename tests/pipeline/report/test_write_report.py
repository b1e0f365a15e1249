import pytest

from loes.cli import main
from loes.pipeline import load_config
from loes.pipeline.report import write_report

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
    # the saved settings, completed with the defaults of what the file leaves out
    assert saved["config"] == load_config(overrides=["model.name=sfcn"]).to_dict()
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
