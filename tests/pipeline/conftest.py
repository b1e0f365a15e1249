import numpy as np
import pandas as pd
import pytest


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
