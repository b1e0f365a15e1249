"""Trivial and classical baselines, fitted on exactly the same folds as the network."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from loes.data.loes_items import MAX_LOES_SCORE

__all__ = ["downsampled_features", "median_baseline", "ridge_baseline"]


def median_baseline(train_scores: np.ndarray, n_test: int) -> np.ndarray:
    """Predict the training side's median score for every test scan."""
    return np.full(n_test, float(np.median(train_scores)))


def downsampled_features(image: torch.Tensor, factor: int = 4) -> np.ndarray:
    """A (C, D, H, W) volume averaged over ``factor``^3 blocks and flattened: the input of the
    ridge baseline (a 2 mm 80x96x80 brain becomes 20x24x20 = 9,600 features)."""
    pooled = torch.nn.functional.avg_pool3d(
        torch.as_tensor(image, dtype=torch.float32)[None], factor, ceil_mode=True
    )
    return pooled.flatten().numpy()


def ridge_baseline(
    train_features: np.ndarray,
    train_scores: np.ndarray,
    train_subjects: np.ndarray,
    test_features: np.ndarray,
    seed: int = 0,
) -> np.ndarray:
    """Standardised ridge regression on image features; the penalty is chosen by subject-grouped
    inner cross-validation on the training side only."""
    n_groups = len(np.unique(train_subjects))
    search = GridSearchCV(
        make_pipeline(StandardScaler(), Ridge()),
        {"ridge__alpha": np.logspace(0, 6, 13)},
        cv=GroupKFold(n_splits=min(5, n_groups)),
        scoring="neg_mean_absolute_error",
    )
    search.fit(train_features, train_scores, groups=train_subjects)
    return np.clip(search.predict(test_features), 0.0, MAX_LOES_SCORE)
