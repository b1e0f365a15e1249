"""The orientation screen on real anatomy: ROBEX's atlas head (LAS) against a template made from
pydeface's mean head (RAS), both whole heads through loes's preprocessing, with the atlas's
voxels flipped head to foot, front to back, or both, and its header unchanged."""

import nibabel as nib
import numpy as np
import pytest
import torch

from benchmarks.bench_skull_strip import pydeface_head, robex_atlas
from loes.pipeline.predict.orientation import COARSE_SHAPE, coarse_picture, orientation_flag
from loes.transforms import preprocessing

pytestmark = pytest.mark.slow

AXES = {"SI": 2, "AP": 1}  # of a RAS model input


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    folder = tmp_path_factory.mktemp("heads")
    transform = preprocessing(keys="image")

    def picture(image: nib.Nifti1Image, name: str) -> np.ndarray:
        path = folder / f"{name}.nii.gz"
        nib.save(image, path)
        return coarse_picture(transform({"image": str(path)})["image"])

    atlas, _ = robex_atlas()
    data, codes = np.asanyarray(atlas.dataobj), nib.aff2axcodes(atlas.affine)
    si = next(i for i, c in enumerate(codes) if c in "SI")
    ap = next(i for i, c in enumerate(codes) if c in "AP")
    flips = {"as given": (), "head to foot": (si,), "front to back": (ap,), "both": (si, ap)}
    out = {"template": picture(pydeface_head(), "template")}
    for name, axes in flips.items():
        flipped = np.ascontiguousarray(np.flip(data, axes) if axes else data)
        out[name] = picture(nib.Nifti1Image(flipped, atlas.affine, atlas.header), name)
    return out


def test_the_coarse_picture_is_the_mean_pooled_input():
    image = torch.arange(24 * 24 * 36, dtype=torch.float32).reshape(1, 24, 24, 36)
    picture = coarse_picture(image)
    assert picture.shape == COARSE_SHAPE
    assert picture.dtype == np.float32
    assert picture[0, 0, 0] == pytest.approx(float(image[0, :2, :2, :3].mean()))


def test_a_real_head_as_given_is_not_flagged(pictures):
    assert orientation_flag(pictures["as given"], pictures["template"], AXES) is None


@pytest.mark.parametrize(
    ("flip", "words"),
    [
        ("head to foot", "looks upside down"),
        ("front to back", "looks back to front"),
        ("both", "looks turned 180 degrees"),
    ],
)
def test_a_real_head_flipped_against_its_header_is_flagged(pictures, flip, words):
    flag = orientation_flag(pictures[flip], pictures["template"], AXES)
    assert flag is not None
    assert flag.startswith(words)


def test_a_picture_with_no_contrast_is_not_judged():
    flat = np.ones(COARSE_SHAPE)
    assert orientation_flag(flat, np.random.default_rng(0).random(COARSE_SHAPE), AXES) is None
