"""registered_subtraction / RegisteredSubtractiond on a real brain: ROBEX's atlas head, masked by
its own brain mask and z-scored as the preprocessing does, seen again after a known head
movement on another voxel grid, with and without a new lesion."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import NormalizeIntensity, Orientation, Spacing
from numpy.testing import assert_allclose

from benchmarks.bench_skull_strip import robex_atlas
from loes.transforms import (
    SESSION_TRANSFORM_KEY,
    RegisteredSubtractionD,
    RegisteredSubtractiond,
    RegisteredSubtractionDict,
    registered_subtraction,
)
from tests.transforms._helpers import random_affine

LESION_CENTRE = np.array([26.0, -10.0, 20.0])  # world mm: right periventricular white matter
LESION_RADIUS = 7.0  # mm


def _session(brain: MetaTensor, movement: np.ndarray, pixdim: float, lesion: float) -> MetaTensor:
    """``brain`` moved by ``movement`` (RAS 4x4: the head's new position in scanner mm), with a
    sphere of +``lesion`` z-units at the (moved) lesion centre, on a ``pixdim`` mm grid."""
    data = brain.as_tensor().clone()
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in data.shape[1:]], indexing="ij"), -1)
    affine = brain.affine.numpy()
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    sphere = np.linalg.norm(world - LESION_CENTRE, axis=-1) <= LESION_RADIUS
    data[0][torch.as_tensor(sphere) & (data[0] != 0)] += lesion
    moved = MetaTensor(data, affine=torch.as_tensor(movement @ affine))
    scan = Spacing(pixdim=pixdim, mode="bilinear")(moved)
    scan = MetaTensor(
        torch.where(scan.as_tensor().abs() < 1e-3, 0.0, scan.as_tensor()), affine=scan.affine
    )
    return Orientation("RAS", labels=None)(scan)


@pytest.fixture(scope="module")
def brain() -> MetaTensor:
    """ROBEX's atlas brain (skull removed by its mask) at 2 mm RAS, z-scored inside the brain."""
    head, mask = robex_atlas()
    data = np.asarray(head.dataobj, dtype=np.float32) * (np.asarray(mask.dataobj) > 0)
    image = MetaTensor(torch.as_tensor(data)[None], affine=torch.as_tensor(head.affine))
    image = Orientation("RAS", labels=None)(Spacing(pixdim=2.0, mode="bilinear")(image))
    image = MetaTensor(
        torch.where(image.as_tensor().abs() < 1e-3, 0.0, image.as_tensor()), affine=image.affine
    )
    return NormalizeIntensity(nonzero=True)(image)


@pytest.fixture(scope="module")
def movement() -> np.ndarray:
    """A rigid head movement between sessions: a few degrees and millimetres."""
    matrix = random_affine(np.random.default_rng(3))
    u, _, vt = np.linalg.svd(matrix[:3, :3])
    matrix[:3, :3] = u @ vt  # rigid: the scale removed
    matrix[:3, 3] /= 2
    return matrix


def _distance(image: MetaTensor) -> np.ndarray:
    """mm from each voxel of ``image`` to the lesion's centre."""
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in image.shape[1:]], indexing="ij"), -1)
    affine = image.affine.numpy()
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    return np.linalg.norm(world - LESION_CENTRE, axis=-1)


def test_recovers_the_movement_and_shows_only_the_new_lesion(brain, movement):
    later = _session(brain, movement, 2.4, lesion=2.0)
    change = registered_subtraction(brain, later)
    assert change.shape == brain.shape
    assert change.dtype == torch.float32
    assert_allclose(change.affine.numpy(), brain.affine.numpy())
    fitted = change.meta[SESSION_TRANSFORM_KEY].numpy()
    # the transform maps earlier-session mm to later-session mm: the head's movement
    assert_allclose(fitted[:3, :3], movement[:3, :3], atol=0.01)  # under a degree
    points = np.array([[0.0, 0.0, 0.0, 1.0], [40.0, -60.0, 30.0, 1.0]]).T
    assert np.abs(fitted @ points - movement @ points).max() < 1.0  # mm
    values, inside, distance = change[0].numpy(), brain[0].numpy() != 0, _distance(brain)
    lesion = inside & (distance <= LESION_RADIUS - 2.0)
    elsewhere = inside & (distance > LESION_RADIUS + 4.0)
    assert values[lesion].mean() > 1.2  # most of the +2 z-units survive two interpolations
    assert np.abs(values[elsewhere]).mean() < 0.25 * values[lesion].mean()


def test_no_change_gives_a_near_zero_image_and_is_deterministic(brain, movement):
    later = _session(brain, movement, 2.4, lesion=0.0)
    first = registered_subtraction(brain, later)
    second = registered_subtraction(brain, later)
    assert torch.equal(first, second)
    inside = brain[0] != 0
    assert first[0][inside].abs().mean() < 0.3  # against a z-scored brain's SD of 1
    assert first[0][~inside].abs().max() == 0  # outside the earlier brain: nothing


def test_dictionary_version_and_aliases(brain, movement):
    later = _session(brain, movement, 2.4, lesion=2.0)
    data = {"baseline": brain, "follow_up": later}
    out = RegisteredSubtractiond("baseline", "follow_up", output_key="change")(data)
    assert out["baseline"] is brain
    assert out["follow_up"] is later
    assert torch.equal(out["change"], registered_subtraction(brain, later))
    assert RegisteredSubtractionD is RegisteredSubtractiond is RegisteredSubtractionDict
    missing = RegisteredSubtractiond("baseline", "follow_up", allow_missing_keys=True)
    assert missing({"baseline": brain}) == {"baseline": brain}
    with pytest.raises(KeyError, match="follow_up"):
        RegisteredSubtractiond("baseline", "follow_up")({"baseline": brain})


def test_errors(brain):
    with pytest.raises(ValueError, match="earlier must be a one-channel 3D MetaTensor"):
        registered_subtraction(np.zeros((1, 4, 4, 4)), brain)
    with pytest.raises(ValueError, match="later must be a one-channel"):
        registered_subtraction(brain, torch.cat([brain, brain]))
    with pytest.raises(ValueError, match="seed must be >= 1"):
        registered_subtraction(brain, brain, seed=0)
