import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from loes.cli import main
from loes.errors import LoesError
from loes.pipeline.metrics import summarize
from loes.pipeline.report import (
    collect_histories,
    collect_predictions,
    format_summary,
    read_predictions,
    write_report,
)
from tests.pipeline.test_metrics import synthetic_predictions

FILES = ("predictions.csv", "report.json", "report.md", "report.html")


def history(seed: int, epochs: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    epoch = np.arange(1, epochs + 1)
    return pd.DataFrame(
        {
            "epoch": epoch,
            "train_loss": 10 / epoch + rng.random(epochs),
            "val_mae": 4 / np.sqrt(epoch) + rng.random(epochs),
            "lr": np.full(epochs, 1e-3),
        }
    )


def fake_run(run_dir, repeats: int = 2, folds: int = 3, repeat_column: bool = True):
    """A run folder as `loes cv` writes it: [repeat_R/]fold_K/{predictions,history}.csv."""
    table = synthetic_predictions(repeats=repeats, folds=folds)
    for (repeat, fold), rows in table.groupby(["repeat", "fold"]):
        folder = run_dir / (f"repeat_{repeat}/fold_{fold}" if repeats > 1 else f"fold_{fold}")
        folder.mkdir(parents=True)
        (rows if repeat_column else rows.drop(columns="repeat")).to_csv(
            folder / "predictions.csv", index=False
        )
        history(10 * repeat + fold).to_csv(folder / "history.csv", index=False)
    return table


def strict_json(path):
    """report.json parsed with NaN/Infinity forbidden: undefined values must be null."""

    def reject(constant):
        raise AssertionError(f"{constant} in {path}")

    return json.loads(path.read_text(), parse_constant=reject)


def same(a, b):
    """Compare a summarize() dict (nan) with report.json (null), floats approximately."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return b is None
    if isinstance(a, float):
        return b == pytest.approx(a, rel=1e-12, abs=1e-12)
    return a == b


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    table = synthetic_predictions()
    histories = {(r, f): history(10 * r + f) for r in range(2) for f in range(3)}
    report = write_report(run_dir, table, histories, config={"model": "alexnet3d", "folds": 3})
    return run_dir, table, report


def test_write_report_writes_every_file(written):
    run_dir, _, report = written
    for name in FILES:
        assert (run_dir / name).stat().st_size > 0, name
    saved = strict_json(run_dir / "report.json")
    assert saved == report
    assert saved["config"] == {"model": "alexnet3d", "folds": 3}
    assert saved["created"]
    assert not list(run_dir.glob(".*"))  # no temporary files left behind


def test_predictions_csv_layout(written):
    run_dir, table, _ = written
    wide = pd.read_csv(run_dir / "predictions.csv")
    assert list(wide.columns) == [
        "repeat",
        "fold",
        "subject",
        "session",
        "loes_score",
        "predicted",
        "predicted_median",
        "predicted_ridge",
    ]
    assert len(wide) == len(table) / 3  # one row per scan per repeat
    assert not wide.duplicated(["repeat", "subject", "session"]).any()


def test_every_metric_in_report_json_is_recomputed_from_predictions_csv(written):
    run_dir, _, _ = written
    saved = strict_json(run_dir / "report.json")
    wide = pd.read_csv(run_dir / "predictions.csv", dtype={"subject": str, "session": str})

    # by hand: the network's pooled MAE and the ratio to the median baseline
    network_mae = (wide["predicted"] - wide["loes_score"]).abs().groupby(wide["repeat"]).mean()
    median_mae = (wide["predicted_median"] - wide["loes_score"]).abs().groupby(wide["repeat"])
    assert saved["metrics"]["network"]["pooled"]["mae"] == pytest.approx(network_mae.mean())
    assert saved["ratios"]["median"]["pooled_mae_ratio"] == pytest.approx(
        network_mae.mean() / median_mae.mean().mean()
    )

    # and everything else: reshape the CSV to the long table and summarize again
    long = wide.melt(
        id_vars=["repeat", "fold", "subject", "session", "loes_score"],
        value_vars=["predicted", "predicted_median", "predicted_ridge"],
        var_name="model",
        value_name="value",
    )
    long["model"] = long["model"].replace(
        {"predicted": "network", "predicted_median": "median", "predicted_ridge": "ridge"}
    )
    recomputed = summarize(long.rename(columns={"value": "predicted"}))
    for key in ("metrics", "ratios", "n_scans", "n_subjects", "n_folds", "n_repeats", "models"):
        assert same(recomputed[key], saved[key]), key
    # read_predictions is the same reshaping
    assert same(
        summarize(read_predictions(run_dir / "predictions.csv"))["metrics"], saved["metrics"]
    )


def test_report_html_is_self_contained(written):
    run_dir, _, _ = written
    page = (run_dir / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 6  # 4 plots, learning curves, trajectories
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<script" not in page
    assert "<link" not in page
    assert "Pooled out-of-fold MAE of the network" in page
    assert "alexnet3d" in page  # the configuration is shown


def test_report_md_has_every_table(written):
    run_dir, _, report = written
    text = (run_dir / "report.md").read_text()
    for heading in (
        "Pooled out-of-fold metrics",
        "Per fold",
        "Mean ± SD over folds",
        "MAE by true-score range",
        "Transplant threshold",
    ):
        assert f"## {heading}" in text
    pooled = report["metrics"]["network"]["pooled"]["mae"]
    assert f"| network | {pooled:.2f} |" in text
    assert "| 1/2 |" in text  # repeat 1, fold 2


def test_format_summary_lists_every_model(written):
    _, _, report = written
    console = Console(width=120, record=True)
    console.print(format_summary(report))
    text = console.export_text()
    for model in ("network", "median", "ridge"):
        assert model in text
    ratio = report["ratios"]["median"]["pooled_mae_ratio"]
    assert f"{ratio:.2f}" in text


def test_collect_from_repeat_folders(tmp_path):
    table = fake_run(tmp_path, repeats=2)
    collected = collect_predictions(tmp_path)
    key = ["model", "repeat", "subject", "session"]
    pd.testing.assert_frame_equal(
        collected.sort_values(key, ignore_index=True),
        table.sort_values(key, ignore_index=True),
        check_dtype=False,
    )
    histories = collect_histories(tmp_path)
    assert sorted(histories) == [(r, f) for r in range(2) for f in range(3)]
    pd.testing.assert_frame_equal(histories[(1, 2)], history(12))


def test_collect_from_fold_folders_without_repeat_column(tmp_path):
    fake_run(tmp_path, repeats=1, repeat_column=False)
    collected = collect_predictions(tmp_path)
    assert set(collected["repeat"]) == {0}
    assert set(collected["fold"]) == {0, 1, 2}
    assert sorted(collect_histories(tmp_path)) == [(0, 0), (0, 1), (0, 2)]


def test_collect_from_an_empty_or_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(LoesError, match="No predictions"):
        collect_predictions(tmp_path)
    with pytest.raises(LoesError, match="does not exist"):
        collect_predictions(tmp_path / "nowhere")


def test_collect_names_a_fold_file_with_missing_columns(tmp_path):
    (tmp_path / "fold_0").mkdir()
    pd.DataFrame({"subject": ["a"], "predicted": [1.0]}).to_csv(
        tmp_path / "fold_0" / "predictions.csv", index=False
    )
    with pytest.raises(LoesError, match=r"fold_0.predictions\.csv lacks .*session"):
        collect_predictions(tmp_path)


def test_loes_report_command_rewrites_the_report(tmp_path, capsys):
    table = fake_run(tmp_path, repeats=1)
    (tmp_path / "config.json").write_text(json.dumps({"model": "sfcn"}))
    assert main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "network" in out
    assert "median" in out
    for name in FILES:
        assert (tmp_path / name).is_file(), name
    saved = strict_json(tmp_path / "report.json")
    assert saved["config"] == {"model": "sfcn"}
    assert saved["n_scans"] == table[["subject", "session"]].drop_duplicates().shape[0]
    assert set(saved["models"]) == {"network", "median", "ridge"}


def test_loes_report_on_a_missing_or_empty_folder_exits_2(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "No predictions" in capsys.readouterr().err
