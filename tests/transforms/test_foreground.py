"""BrainForeground: the crop keeps the whole brain of a skull-stripped scan whatever its
intensity scale, and still crops a native scan tightly to the head."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from loes.transforms import BrainForeground, preprocessing
from tests.transforms._helpers import grid_affine, sample_world

SHAPE = (80, 96, 80)  # 2 mm voxels
AFFINE = grid_affine("RAS", (2.0, 2.0, 2.0), (0.0, -10.0, 5.0), SHAPE)
RADII = np.array([65.0, 80.0, 55.0])  # the brain, an ellipsoid (mm)


def radius(world: np.ndarray) -> np.ndarray:
    """Ellipsoidal radius: 1 on the brain's surface."""
    return np.sqrt(np.sum(((world - [0.0, -10.0, 5.0]) / RADII) ** 2, axis=-1))


def stripped_brain(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A skull-stripped brain on the WhiteStripe scale (white matter ~ 0, grey matter -1.8,
    CSF at the surface -3.5, so most of the brain is below 0) and its mask."""
    r = sample_world(radius, AFFINE, SHAPE)
    brain = r <= 1
    tissue = np.select([r < 0.75, r < 0.95], [0.0, -1.8], -3.5)
    noise = np.random.default_rng(seed).normal(0.0, 0.2, SHAPE)
    return np.where(brain, tissue + noise, 0.0).astype(np.float32), brain


def on_scale(name: str) -> np.ndarray:
    """The same stripped brain written as a lab would: several intensity scales."""
    whitestripe, brain = stripped_brain()
    raw = np.where(brain, 800 + 150 * whitestripe, 0).astype(np.int16)  # background 0
    mean, std = raw[brain].mean(), raw[brain].std()
    return {
        "raw_int16": raw,
        "zscore": ((raw - mean) / std).astype(np.float32),  # constant negative background
        "whitestripe": whitestripe,  # background 0 amid the brain's values
        "whitestripe_background_at_minimum": np.where(brain, whitestripe, -5.0),
        "tiny_float": raw.astype(np.float32) * 1e-6,  # 0 to 1e-3
    }[name].astype(np.float32 if name != "raw_int16" else np.int16)


SCALES = ["raw_int16", "zscore", "whitestripe", "whitestripe_background_at_minimum", "tiny_float"]


def write(path, data: np.ndarray) -> str:
    nib.save(nib.Nifti1Image(data, AFFINE), path)
    return str(path)


@pytest.mark.parametrize("scale", SCALES)
def test_crop_keeps_the_whole_skull_stripped_brain_whatever_the_scale(tmp_path, scale):
    _, brain = stripped_brain()
    pre = preprocessing(label_keys="brain")  # the defaults: 2 mm, 72 x 88 x 72
    item = pre(
        {
            "image": write(tmp_path / "t1.nii.gz", on_scale(scale)),
            "brain": write(tmp_path / "brain.nii.gz", brain.astype(np.uint8)),
        }
    )
    # the old crop (a quarter of the 99th percentile) kept 85% of the WhiteStripe-like brains
    assert item["brain"].sum().item() == brain.sum()
    # and the crop is the brain's box plus the margin, not the whole field of view
    kept = np.argwhere(item["image"][0].numpy() != 0)
    extent = kept.max(0) - kept.min(0) + 1
    box = np.argwhere(brain)
    assert np.all(extent <= box.max(0) - box.min(0) + 1 + 2 * 2 + 2)


@pytest.mark.parametrize("kind", ["numpy", "torch", "metatensor"])
def test_constant_background_is_told_apart_from_the_brain(kind):
    whitestripe, brain = stripped_brain()
    image = whitestripe[None]
    converted = {"numpy": image, "torch": torch.from_numpy(image), "metatensor": MetaTensor(image)}
    mask = BrainForeground()(converted[kind])
    assert type(mask) is type(converted[kind])
    assert_brain(np.asarray(mask)[0], brain)
    # resampling leaves a constant background a few ulps off: still background
    shifted = image + np.float32(1000.0)
    ulps = shifted + np.where(brain, 0, np.spacing(np.float32(1000.0)) * 3).astype(np.float32)
    assert_brain(np.asarray(BrainForeground()(ulps))[0], brain)


def assert_brain(mask: np.ndarray, brain: np.ndarray) -> None:
    """Nothing outside the brain, the brain's whole box (a few white-matter voxels within
    1e-4 of the range from the background value 0 count as background: no matter to a crop)."""
    assert not mask[~brain].any()
    assert np.array_equal(np.argwhere(mask).min(0), np.argwhere(brain).min(0))
    assert np.array_equal(np.argwhere(mask).max(0), np.argwhere(brain).max(0))
    assert mask.sum() > 0.99 * brain.sum()


def native_head(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """An unstripped head: scalp, skull, brain, and Rician noise everywhere; and its mask."""
    r = sample_world(radius, AFFINE, SHAPE) / 1.15  # the head, a little larger than the brain
    head = r <= 1
    tissue = np.select([r < 0.8, r < 0.9, r <= 1], [600.0, 80.0, 900.0], 0.0)  # brain, skull, scalp
    rng = np.random.default_rng(seed)
    noisy = np.hypot(tissue + rng.normal(0, 20, SHAPE), rng.normal(0, 20, SHAPE))
    return noisy.astype(np.int16), head


def test_native_head_is_still_cropped_to_the_head(tmp_path):
    data, head = native_head()
    assert BrainForeground().constant_background(data[None]) is None
    path = write(tmp_path / "t1.nii.gz", data)
    mask = write(tmp_path / "head.nii.gz", head.astype(np.uint8))
    pre = preprocessing(spatial_size=(96, 112, 96), normalize="none", label_keys="head")
    item = pre({"image": path, "head": mask})
    assert item["head"].sum().item() == head.sum()
    # the crop is the head's box plus the 2-voxel margin: the noise around it is cut away
    kept = np.argwhere(item["image"][0].numpy() != 0)
    box = np.argwhere(head)
    head_extent = box.max(0) - box.min(0) + 1
    assert np.all(kept.max(0) - kept.min(0) + 1 <= head_extent + 2 * 2)
    assert np.all(head_extent < SHAPE)  # there was noise to cut


def test_thresholds_of_native_scans_are_unchanged():
    # non-negative images without a constant background: a quarter of the 99th percentile
    data, _ = native_head()
    image = torch.from_numpy(data[None].astype(np.float32))
    expected = image > 0.25 * float(np.percentile(image.numpy(), 99))
    # exact: integer voxels against one float64 threshold, no float32 sums to round apart
    assert torch.equal(BrainForeground()(image), expected)
    # with negative values the threshold is measured from the minimum
    shifted = image - 500
    assert torch.equal(BrainForeground()(shifted), expected)
