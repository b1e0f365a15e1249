"""NiftiReader: preprocessing uses nibabel's affine, the one ``loes validate`` checks, whatever
the header (qform, sform, both, disagreeing, sheared)."""

from __future__ import annotations

import pickle
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from monai.transforms import LoadImage
from numpy.testing import assert_allclose

from loes.data import check_image
from loes.pipeline import load_config
from loes.pipeline.run.data import preprocessing_for
from loes.transforms import NiftiReader
from tests.transforms._helpers import MARKER, grid_affine, marker_voxel, phantom, sample_world

CPU_CONFIG = Path(__file__).parents[2] / "configs" / "cpu.yaml"
SHAPE = (48, 64, 40)  # 2 mm voxels: 96 x 128 x 80 mm, room for a 20-degree shear
CENTRE = (1.3, -2.1, 3.7)  # world mm


def _centred(linear: np.ndarray) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = np.asarray(CENTRE) - linear @ ((np.asarray(SHAPE) - 1) / 2)
    return affine


def _rotation(degrees: float, axis) -> np.ndarray:
    a, (x, y, z) = np.deg2rad(degrees), np.asarray(axis) / np.linalg.norm(axis)
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k


RAS = grid_affine("RAS", (2.0, 2.0, 2.0), CENTRE, SHAPE)
LPS = grid_affine("LPS", (2.0, 2.0, 2.0), CENTRE, SHAPE)
LAS = np.diag([-1.0, 1.0, 1.0, 1.0]) @ RAS  # RAS mirrored: left and right swapped
OBLIQUE = _centred(_rotation(12.0, (1, 2, 3)) * 2.0)
_TILT = np.eye(3)
_TILT[1, 2] = np.tan(np.deg2rad(20.0))  # each slice 0.73 mm further anterior: a gantry tilt
SHEARED = _centred(2.0 * _TILT)
TILT_QFORM = SHEARED.copy()
TILT_QFORM[:3, :3] = 2.0 * np.eye(3)  # all a qform can hold: the rotation, same origin

# name: (the world the voxels were sampled in: nibabel's affine, qform, sform, pixdim);
# None: that form's code is 0
HEADERS = {
    "ras": (RAS, RAS, RAS, 2.0),
    "lps": (LPS, LPS, LPS, 2.0),
    "oblique": (OBLIQUE, OBLIQUE, OBLIQUE, 2.0),
    "sheared_sform": (SHEARED, TILT_QFORM, SHEARED, 2.0),
    "qform_only": (RAS, RAS, None, 2.0),
    "sform_only": (RAS, None, RAS, 2.0),
    "sform_only_stale_pixdim": (RAS, None, RAS, 1.0),
    "qform_las_sform_ras": (RAS, LAS, RAS, 2.0),
}
# the headers whose grid is the reference's, turned or flipped only: after Orientationd and
# Spacingd (which keeps an oblique grid's rotation) the marker is on the same model voxel
SAME_GRID = {"ras", "lps", "sheared_sform", "qform_only", "sform_only", "sform_only_stale_pixdim",
             "qform_las_sform_ras"}  # fmt: skip


def write_header(path: Path, name: str) -> str:
    world, qform, sform, pixdim = HEADERS[name]
    image = nib.Nifti1Image(sample_world(phantom, world, SHAPE), None)
    image.set_qform(qform, code=0 if qform is None else 1)
    image.set_sform(sform, code=0 if sform is None else 1)
    image.header.set_zooms((pixdim,) * 3)  # what pixdim holds, whatever the forms say
    nib.save(image, path)
    assert_allclose(nib.load(path).affine, world, atol=1e-4)  # nibabel's affine: the world
    return str(path)


@pytest.fixture(scope="module")
def pipeline():
    """The preprocessing the CPU main job (`loes cv --config configs/cpu.yaml`) runs."""
    return preprocessing_for(load_config(CPU_CONFIG))


@pytest.fixture(scope="module")
def reference(pipeline, tmp_path_factory) -> np.ndarray:
    path = write_header(tmp_path_factory.mktemp("ref") / "ras.nii.gz", "ras")
    return marker_voxel(pipeline({"image": path})["image"])


@pytest.mark.parametrize("name", HEADERS)
def test_marker_stays_at_its_world_position_whatever_the_header(
    tmp_path, pipeline, reference, name
):
    out = pipeline({"image": write_header(tmp_path / f"{name}.nii.gz", name)})["image"]
    assert out.shape == (1, 72, 88, 72)
    voxel = marker_voxel(out)
    world = (out.affine.numpy() @ np.r_[voxel, 1.0])[:3]
    # MONAI's own reader moved it 16 mm (sheared sform) and 48 mm (stale pixdim)
    assert np.linalg.norm(world - MARKER) < 1.0  # mm; the voxels are 2 mm
    if name in SAME_GRID:
        assert np.abs(voxel - reference).max() < 0.5
        assert_allclose(out.affine.numpy()[:3, :3], 2 * np.eye(3), atol=1e-6)


@pytest.mark.parametrize("name", ["sheared_sform", "sform_only_stale_pixdim"])
def test_reader_gives_nibabels_affine_and_validation_says_which(tmp_path, name):
    path = write_header(tmp_path / f"{name}.nii.gz", name)
    image = LoadImage(reader=NiftiReader(), image_only=True)(path)
    assert_allclose(image.affine.numpy(), HEADERS[name][0], atol=1e-4)
    assert_allclose(image.meta["original_affine"], HEADERS[name][0], atol=1e-4)
    assert tuple(image.shape) == SHAPE
    [(severity, message)] = check_image(path)  # what is checked is what is used
    assert severity == "warning"
    assert "loes uses the sform" in message or "which loes uses" in message


def test_reader_reads_several_files_and_pickles(tmp_path):
    paths = [write_header(tmp_path / f"{n}.nii.gz", n) for n in ("ras", "sheared_sform")]
    reader = pickle.loads(pickle.dumps(NiftiReader()))
    images = reader.read(paths)
    assert [i.affine.tolist() for i in images] == [nib.load(p).affine.tolist() for p in paths]
