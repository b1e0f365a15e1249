"""Flags for scans unlike the training scans."""

import nibabel as nib
import numpy as np
import pytest
import torch

from loes.pipeline.predict.scan_profile import FEATURES, TrainingProfile, scan_features


def _features(fov=180.0, median=0.5):
    return {
        "fov_min_mm": fov,
        "fov_max_mm": fov + 30,
        "head_fraction": 0.6,
        "intensity_median": median,
        "intensity_p99": 2.5,
    }


@pytest.fixture
def profile():
    rng = np.random.default_rng(0)
    return TrainingProfile.from_features(
        [_features(fov=rng.normal(180, 8), median=rng.normal(0.5, 0.1)) for _ in range(30)]
    )


def test_scans_like_the_training_scans_are_not_flagged(profile):
    assert profile.flags(_features()) == []


def test_a_field_of_view_far_from_the_training_scans_is_named(profile):
    smallest, largest = profile.flags(_features(fov=400.0))
    assert smallest.startswith("smallest field of view (mm) 400 is far from the training scans'")
    assert largest.startswith("largest field of view (mm) 430 is far")


def test_an_intensity_profile_far_from_the_training_scans_is_named(profile):
    (flag,) = profile.flags(_features(median=-2.0))
    assert "median head intensity" in flag


def test_the_profile_survives_json(profile):
    assert TrainingProfile.from_dict(profile.to_dict()) == profile


def test_features_of_a_scan(tmp_path):
    path = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((100, 120, 50), np.int16), np.diag([1.0, 1.5, 3.0, 1])), path)
    image = torch.zeros(1, 10, 10, 10)
    image[0, :5] = torch.linspace(-1, 3, 500).reshape(5, 10, 10)
    features = scan_features(path, image)
    assert set(features) == set(FEATURES)
    assert features["fov_min_mm"] == pytest.approx(100.0)
    assert features["fov_max_mm"] == pytest.approx(180.0)
    assert features["head_fraction"] == pytest.approx(0.5, abs=0.01)  # one zero among the ramp
    assert features["intensity_median"] == pytest.approx(1.0, abs=0.01)


def test_an_empty_profile_is_refused():
    with pytest.raises(ValueError, match="at least one"):
        TrainingProfile.from_features([])
