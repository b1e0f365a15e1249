"""Truth metrics of a saliency map against hand-computed values on a small phantom, and the
baselines and the rank correlation they are read beside."""

import numpy as np
import pytest

from loes.errors import LoesError
from loes.pipeline.explain.checks import random_map, rank_correlation, truth_metrics


@pytest.fixture
def phantom():
    """A 2x2x3 grid: 10 brain voxels (two corners are not brain), 2 of them lesion."""
    brain = np.ones((2, 2, 3), bool)
    brain[0, 0, 0] = brain[1, 1, 2] = False
    lesion = np.zeros_like(brain)
    lesion[0, 1, 1] = lesion[1, 0, 1] = True
    return brain, lesion


def test_values_against_a_hand_computed_map(phantom):
    brain, lesion = phantom
    saliency = np.zeros(brain.shape)
    saliency[0, 1, 1] = 4.0  # lesion
    saliency[1, 0, 1] = 1.0  # lesion
    saliency[0, 0, 1] = 2.0  # brain, no lesion
    saliency[0, 0, 2] = -3.0  # negative: counts as 0
    saliency[1, 1, 2] = 3.0  # outside the brain
    m = truth_metrics(saliency, lesion, brain)
    assert m["relevance_mass_accuracy"] == pytest.approx(5 / 7)
    assert m["lesion_share"] == pytest.approx(2 / 10)
    assert m["mass_ratio"] == pytest.approx((5 / 7) / (2 / 10))
    # lesion values {4, 1} against the 8 others {2, 0 x 7}: 4 beats all 8, 1 beats the 7 zeros
    assert m["auc"] == pytest.approx(15 / 16)
    assert m["pointing"] == 1.0  # the peak (4) is in a lesion
    assert m["mass"] == pytest.approx(7.0)
    assert m["outside_brain"] == pytest.approx(3 / 10)


def test_a_peak_outside_the_lesions_misses(phantom):
    brain, lesion = phantom
    saliency = np.where(lesion, 1.0, 0.0)
    saliency[0, 0, 1] = 5.0
    assert truth_metrics(saliency, lesion, brain)["pointing"] == 0.0


def test_a_flat_map_over_the_brain_scores_chance(phantom):
    brain, lesion = phantom
    m = truth_metrics(brain.astype(float), lesion, brain)
    assert m["relevance_mass_accuracy"] == pytest.approx(0.2)
    assert m["mass_ratio"] == pytest.approx(1.0)
    assert m["auc"] == 0.5
    assert m["pointing"] == pytest.approx(0.2)  # ties: the share of the peak's voxels in lesions


def test_a_map_that_points_away_from_the_lesions_has_auc_zero(phantom):
    brain, lesion = phantom
    m = truth_metrics(np.where(lesion, 0.0, 1.0), lesion, brain)
    assert m["auc"] == 0.0
    assert m["relevance_mass_accuracy"] == 0.0


def test_without_lesions_only_the_mass_is_defined(phantom):
    brain, _ = phantom
    m = truth_metrics(np.arange(12.0).reshape(2, 2, 3), np.zeros_like(brain), brain)
    assert m["mass"] == pytest.approx(sum(range(12)) - 0 - 11)
    for key in ("relevance_mass_accuracy", "lesion_share", "mass_ratio", "auc", "pointing"):
        assert np.isnan(m[key]), key


@pytest.mark.parametrize("level", [0.0, 6.5])
def test_a_flat_map_points_nowhere_and_scores_chance(phantom, level):
    brain, lesion = phantom
    saliency = np.full(brain.shape, level)
    saliency[0, 1, 1] += level * 1e-8  # float rounding, as a 1-voxel GradCAM grid gives
    m = truth_metrics(saliency, lesion, brain)
    assert m["flat"]
    assert m["relevance_mass_accuracy"] == pytest.approx(0.2)
    assert m["mass_ratio"] == pytest.approx(1.0)
    assert m["auc"] == 0.5
    assert m["pointing"] == pytest.approx(0.2)
    assert not truth_metrics(np.where(lesion, 1.0, 0.0), lesion, brain)["flat"]


def test_a_map_with_nan_is_refused(phantom):
    brain, lesion = phantom
    with pytest.raises(LoesError, match="NaN or infinite"):
        truth_metrics(np.full(brain.shape, np.nan), lesion, brain)


def test_masks_off_the_grid_and_an_empty_brain_are_refused(phantom):
    brain, lesion = phantom
    with pytest.raises(LoesError, match=r"shape \(2, 2\) does not lie on the map's grid"):
        truth_metrics(np.zeros(brain.shape), lesion[:, :, 0], brain)
    with pytest.raises(LoesError, match="brain mask is empty"):
        truth_metrics(np.zeros(brain.shape), lesion, np.zeros_like(brain))


def test_the_random_map_is_uniform_noise_inside_the_brain_only():
    big = np.ones((20, 20, 20), bool)
    big[:, :, :5] = False
    noise = random_map(big, seed=3)
    assert (noise[~big] == 0).all()
    assert noise[big].min() >= 0
    assert noise[big].max() < 1
    assert noise[big].mean() == pytest.approx(0.5, abs=0.02)
    np.testing.assert_array_equal(noise, random_map(big, seed=3))
    assert not np.array_equal(noise, random_map(big, seed=4))


def test_rank_correlation_over_the_brain(phantom):
    brain, _ = phantom
    a = np.arange(12.0).reshape(2, 2, 3)
    assert rank_correlation(a, a**3, brain) == pytest.approx(1.0)
    assert rank_correlation(a, -a, brain) == pytest.approx(-1.0)
    outside = a.copy()
    outside[~brain] = -100.0  # voxels outside the brain do not count
    assert rank_correlation(a, outside, brain) == pytest.approx(1.0)
    assert np.isnan(rank_correlation(a, np.ones(a.shape), brain))
    assert np.isnan(rank_correlation(a, 5.0 + 1e-9 * a, brain))  # flat up to rounding
