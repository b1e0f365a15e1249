import json

import numpy as np
import pandas as pd
import pytest

from loes.pipeline.report import write_report


@pytest.fixture(scope="session")
def synthetic_predictions():
    """Factory: out-of-fold predictions of a network and two baselines; folds group subjects.

    ``synthetic_predictions(repeats=2, folds=3, seed=0)`` returns the long table (``repeat,
    fold, subject, session, loes_score, predicted, model``): 12 subjects with 1 to 3 sessions
    each (24 scans), models ``network``, ``median`` (constant within a fold) and ``ridge``.
    """

    def make(repeats: int = 2, folds: int = 3, seed: int = 0) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        scans = [
            (f"subject-{s:02d}", f"session-{k:02d}", float(rng.integers(0, 41) / 2))
            for s in range(12)
            for k in range(1 + s % 3)
        ]
        rows = []
        for repeat in range(repeats):
            fold_of = {f"subject-{s:02d}": i % folds for i, s in enumerate(rng.permutation(12))}
            for subject, session, score in scans:
                fold = fold_of[subject]
                predictions = {
                    "network": max(0.0, score + rng.normal(0, 1.5)),
                    "median": 3.0 + fold,
                    "ridge": 0.5 * score + 2 + rng.normal(0, 2),
                }
                for model, predicted in predictions.items():
                    rows.append((repeat, fold, subject, session, score, predicted, model))
        columns = ["repeat", "fold", "subject", "session", "loes_score", "predicted", "model"]
        return pd.DataFrame(rows, columns=columns)

    return make


def _history(seed: int, epochs: int = 4) -> pd.DataFrame:
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


@pytest.fixture(scope="session")
def make_history():
    """Factory: ``make_history(seed, epochs=4)``, a fold's history.csv as a DataFrame."""
    return _history


@pytest.fixture(scope="session")
def fake_run(synthetic_predictions):
    """Factory: ``fake_run(run_dir, repeats=2, folds=3)`` fills ``run_dir`` as `loes cv` does.

    Writes ``splits.json`` (the folds only) and ``[repeat_R/]fold_K/{predictions,history}.csv``
    and ``metrics.json`` (``repeat_R/`` only when repeated); returns the long predictions table
    it wrote.
    """

    def make(run_dir, repeats: int = 2, folds: int = 3) -> pd.DataFrame:
        table = synthetic_predictions(repeats=repeats, folds=folds)
        run_dir.mkdir(parents=True, exist_ok=True)
        splits = [{"repeat": r, "fold": f} for r in range(repeats) for f in range(folds)]
        (run_dir / "splits.json").write_text(json.dumps({"folds": splits}))
        for (repeat, fold), rows in table.groupby(["repeat", "fold"]):
            folder = run_dir / (f"repeat_{repeat}/fold_{fold}" if repeats > 1 else f"fold_{fold}")
            folder.mkdir(parents=True)
            rows.to_csv(folder / "predictions.csv", index=False)
            _history(10 * repeat + fold).to_csv(folder / "history.csv", index=False)
            (folder / "metrics.json").write_text("{}")
        return table

    return make


@pytest.fixture(scope="session")
def strict_json():
    """``strict_json(path)``: report.json parsed with NaN/Infinity forbidden (must be null)."""

    def load(path):
        def reject(constant):
            raise AssertionError(f"{constant} in {path}")

        return json.loads(path.read_text(), parse_constant=reject)

    return load


@pytest.fixture(scope="session")
def written(tmp_path_factory, synthetic_predictions):
    """``(run_dir, predictions, report)`` of one write_report call: 2 repeats of 3 folds."""
    run_dir = tmp_path_factory.mktemp("run")
    table = synthetic_predictions()
    histories = {(r, f): _history(10 * r + f) for r in range(2) for f in range(3)}
    report = write_report(run_dir, table, histories, config={"model": "alexnet3d", "folds": 3})
    return run_dir, table, report
