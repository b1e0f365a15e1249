"""Flags for scans unlike the training scans."""

import nibabel as nib
import numpy as np
import pytest
import torch

from benchmarks.bench_skull_strip import robex_atlas
from loes.pipeline import load_ensemble
from loes.pipeline.predict.scan_profile import (
    FAR_SD,
    FEATURES,
    SLICE,
    STRIPPED,
    TrainingProfile,
    scan_features,
)


def _features(fov=180.0, median=0.5, stripped=1.0, slice_mm=1.0):
    return {
        SLICE: slice_mm,
        "fov_min_mm": fov,
        "fov_max_mm": fov + 30,
        "head_fraction": 0.6,
        "intensity_median": median,
        "intensity_p99": 2.5,
        STRIPPED: stripped,
    }


@pytest.fixture
def profile():
    rng = np.random.default_rng(0)
    return TrainingProfile.from_features(
        [_features(fov=rng.normal(180, 8), median=rng.normal(0.5, 0.1)) for _ in range(30)],
        spreads=rng.uniform(0.1, 0.5, 30),
    )


def test_scans_like_the_training_scans_are_not_flagged(profile):
    assert profile.flags(_features()) == []


def test_a_field_of_view_far_from_the_training_scans_is_named(profile):
    smallest, largest = profile.flags(_features(fov=400.0))
    assert smallest.startswith("smallest field of view (mm) 400 is far from the training scans'")
    assert largest.startswith("largest field of view (mm) 430 is far")


def test_the_flag_names_the_rule_not_only_the_range(profile):
    # the flag is decided on SDs from the mean, so it says so beside the training range
    key = "intensity_median"
    mean, sd = profile.mean[key], profile.sd[key]
    (flag,) = profile.flags(_features(median=mean + 5 * sd))
    assert f"(mean {mean:.3g}, SD {sd:.2g}, range {profile.low[key]:.3g} to " in flag
    assert flag.endswith(f"over {FAR_SD:g} SD from their mean, the SD taken as at least 5% of it")


def test_a_constant_feature_is_flagged_by_the_floored_sd_and_says_its_own():
    profile = TrainingProfile.from_features([_features() for _ in range(5)])
    (flag,) = profile.flags(_features(median=0.7))  # 0.2 away: over 4 x 5% of 0.5
    assert "(mean 0.5, SD 0, range 0.5 to 0.5)" in flag


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
    assert set(features) == {*FEATURES, STRIPPED, SLICE}
    assert features[SLICE] == pytest.approx(3.0)  # the thickest voxel side
    assert features[STRIPPED] == 1.0  # constant background, no head at all: nothing to strip
    assert features["fov_min_mm"] == pytest.approx(100.0)
    assert features["fov_max_mm"] == pytest.approx(180.0)
    assert features["head_fraction"] == pytest.approx(0.5, abs=0.01)  # one zero among the ramp
    assert features["intensity_median"] == pytest.approx(1.0, abs=0.01)


def test_voxel_sizes_come_from_the_affine_not_a_stale_pixdim(tmp_path):
    """A conversion that left pixdim at 1 x 1 x 10 mm beside a 2 x 2 x 3 mm sform (the
    geometry loes resamples with): the features follow the sform."""
    image = nib.Nifti1Image(np.zeros((90, 100, 50), np.int16), np.diag([2.0, 2.0, 3.0, 1]))
    image.header.set_zooms((1.0, 1.0, 10.0))
    image.set_qform(None, code=0)
    path = tmp_path / "stale.nii.gz"
    nib.save(image, path)
    features = scan_features(path, torch.zeros(1, 4, 4, 4))
    assert features[SLICE] == pytest.approx(3.0)
    assert features["fov_min_mm"] == pytest.approx(150.0)
    assert features["fov_max_mm"] == pytest.approx(200.0)


def test_an_empty_profile_is_refused():
    with pytest.raises(ValueError, match="at least one"):
        TrainingProfile.from_features([])


def test_a_whole_head_is_flagged_by_a_run_that_trained_on_stripped_brains(profile):
    assert profile.stripped == 1.0
    assert profile.skull_flag(_features(stripped=1.0), strips=False) is None
    flag = profile.skull_flag(_features(stripped=0.0), strips=False)
    assert "a whole head" in flag
    assert "preprocessing.skull_strip: auto" in flag
    assert profile.skull_flag(_features(stripped=0.0), strips="auto") is None  # the run strips


def test_a_stripped_brain_is_flagged_by_a_run_that_trained_on_whole_heads():
    heads = TrainingProfile.from_features([_features(stripped=0.0)] * 10)
    assert "a skull-stripped brain" in heads.skull_flag(_features(stripped=1.0), strips=False)
    assert heads.skull_flag(_features(stripped=0.0), strips=False) is None


def test_fold_models_that_disagree_far_more_than_on_the_runs_scans_are_flagged(profile):
    assert 0.4 < profile.spread_p95 < 0.5
    assert profile.spread_flag(0.5) is None
    assert profile.spread_flag(1.4) is None  # under MIN_SPREAD whatever the run's spreads
    assert "the fold models disagree (SD 6.0 points" in profile.spread_flag(6.0)
    assert profile.spread_flag(float("nan")) is None


def test_slices_far_thicker_than_the_training_scans_are_flagged():
    profile = TrainingProfile.from_features([_features(slice_mm=v) for v in (1.0, 1.2, 1.0)])
    assert profile.slice_max == 1.2
    assert profile.slice_flag(_features(slice_mm=1.75)) is None  # within 1.5 times 1.2 mm
    flag = profile.slice_flag(_features(slice_mm=5.0))
    assert flag.startswith("slices of 5.0 mm, far thicker than the training scans' (at most 1.2")
    assert "small changes since another session, may not show" in flag
    assert profile.slice_flag({}) is None  # features measured before the slice was
    assert profile.slice_flag(_features(slice_mm=float("nan"))) is None  # a broken header
    odd = [_features(slice_mm=v) for v in (float("nan"), 1.2)]
    assert TrainingProfile.from_features(odd).slice_max == 1.2
    unknown = TrainingProfile.from_features([_features(slice_mm=float("nan"))])
    assert unknown.slice_max is None
    assert unknown.slice_flag(_features(slice_mm=9.0)) is None


def test_a_profile_written_before_the_skull_and_spread_knows_neither(profile):
    old = {
        k: v
        for k, v in profile.to_dict().items()
        if k not in ("stripped", "spread_p95", "slice_max")
    }
    older = TrainingProfile.from_dict(old)
    assert older.skull_flag(_features(stripped=0.0), strips=False) is None
    assert older.spread_flag(30.0) is None
    assert older.slice_flag(_features(slice_mm=30.0)) is None


@pytest.mark.slow
def test_a_real_whole_head_is_flagged_and_its_stripped_copy_is_not(tiny_run, tmp_path):
    """ROBEX's atlas head (one real subject with skull, 1.5 mm) and the same head masked with
    the brain mask it ships with, scored by a run trained on skull-stripped synthetic brains."""
    head, mask = robex_atlas()
    whole, stripped = tmp_path / "head.nii.gz", tmp_path / "brain.nii.gz"
    nib.save(head, whole)
    brain = np.asarray(head.dataobj) * (np.asarray(mask.dataobj) > 0)
    nib.save(nib.Nifti1Image(brain.astype(np.float32), head.affine), stripped)
    table = load_ensemble(tiny_run).predict([whole, stripped], device="cpu")
    assert "a whole head (skull and scalp in view)" in table["flags"].iloc[0]
    assert "whole head" not in table["flags"].iloc[1]
