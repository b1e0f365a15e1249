import math

import pandas as pd
import pytest

from loes.errors import LoesError
from loes.pipeline.report.summary import summarize
from loes.pipeline.run.predictions import PREDICTION_COLUMNS, from_wide, read_predictions, to_wide


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


def test_every_metric_in_report_json_is_recomputed_from_predictions_csv(written, strict_json):
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


def test_to_wide_and_from_wide_round_trip(synthetic_predictions):
    table = synthetic_predictions(repeats=2, folds=3, seed=5)
    wide = to_wide(table)
    assert list(wide.columns[-3:]) == ["predicted", "predicted_median", "predicted_ridge"]
    assert wide[["repeat", "fold", "subject", "session"]].equals(
        wide[["repeat", "fold", "subject", "session"]].sort_values(
            ["repeat", "fold", "subject", "session"], ignore_index=True
        )
    )
    back = from_wide(wide)
    assert list(back.columns) == list(PREDICTION_COLUMNS)
    key = ["model", "repeat", "subject", "session"]
    pd.testing.assert_frame_equal(
        back.sort_values(key, ignore_index=True),
        table.sort_values(key, ignore_index=True),
        check_dtype=False,
    )


def test_a_model_missing_a_scan_leaves_its_cell_empty(synthetic_predictions):
    table = synthetic_predictions(repeats=1)
    dropped = table.index[(table["model"] == "ridge")][0]
    wide = to_wide(table.drop(index=dropped))
    assert wide["predicted_ridge"].isna().sum() == 1
    assert len(from_wide(wide)) == len(table) - 1


def test_to_wide_rejects_baselines_on_other_folds(synthetic_predictions):
    table = synthetic_predictions(repeats=1)
    moved = table.index[table["model"] == "median"][0]
    table.loc[moved, "fold"] = table.loc[moved, "fold"] + 1
    with pytest.raises(LoesError, match="different folds or true scores"):
        to_wide(table)


def test_from_wide_names_the_missing_columns():
    with pytest.raises(LoesError, match="lacks session"):
        from_wide(pd.DataFrame({"repeat": [0], "fold": [0], "subject": ["a"], "loes_score": [1]}))
    with pytest.raises(LoesError, match="a predicted column"):
        from_wide(
            pd.DataFrame(
                {"repeat": [0], "fold": [0], "subject": ["a"], "session": ["b"], "loes_score": [1]}
            )
        )


def test_read_predictions_keeps_ids_as_strings(tmp_path):
    path = tmp_path / "predictions.csv"
    path.write_text(
        "repeat,fold,subject,session,loes_score,predicted,predicted_median\n0,1,007,01,4.5,5.0,3\n"
    )
    long = read_predictions(path)
    assert set(long["subject"]) == {"007"}
    assert set(long["session"]) == {"01"}
    assert sorted(long["model"]) == ["median", "network"]


def test_read_predictions_of_an_empty_file_is_a_clear_error(tmp_path):
    (tmp_path / "predictions.csv").write_text("")
    with pytest.raises(LoesError, match=r"predictions\.csv is not a readable CSV"):
        read_predictions(tmp_path / "predictions.csv")
