import numpy as np
import pytest

from loes.pipeline.training import score_weights


def test_inverse_weights_favour_rare_scores_and_average_one():
    scores = np.array([0, 0, 0, 0, 0.5, 3, 3, 12.0])
    weights = score_weights(scores, "inverse")
    per_sample = weights[np.floor(scores).astype(int)]
    assert per_sample.mean() == pytest.approx(1.0)
    assert weights[12] > weights[3] > weights[0]
    assert weights[12] / weights[0] == pytest.approx(5.0)  # 5 scans in bin 0, 1 in bin 12


def test_lds_shares_density_between_neighbouring_scores():
    scores = np.concatenate([np.zeros(4), np.full(3, 4.0), [10.0, 11.0, 20.0]])
    inverse = score_weights(scores, "inverse")
    lds = score_weights(scores, "lds")
    per_sample = lds[np.floor(scores).astype(int)]
    assert per_sample.mean() == pytest.approx(1.0)
    # 11 has a neighbour at 10 and 20 has none: equal under inverse, not under smoothing
    assert inverse[11] == pytest.approx(inverse[20])
    assert lds[11] < lds[20]


def test_no_reweighting_is_uniform_and_unknown_is_rejected():
    assert np.all(score_weights(np.array([0.0, 9.0]), "none") == 1.0)
    with pytest.raises(ValueError, match="unknown reweighting 'rare'"):
        score_weights(np.array([0.0]), "rare")
