"""ScanReader: a scan in any format preprocesses to the tensor its NIfTI gives."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.transforms import LoadImage
from numpy.testing import assert_allclose

from loes.pipeline import load_config
from loes.pipeline.run.data import preprocessing_for
from loes.transforms import NiftiReader, ScanReader
from tests.data._scan_copies import (
    COPIES,
    SHAPE,
    grid,
    volume,
    write_copy,
    write_dicom,
    write_nifti,
)

CPU_CONFIG = Path(__file__).parents[2] / "configs" / "cpu.yaml"
# DICOM keeps positions as decimal strings and MGH its geometry as float32: the copies' affines
# differ from the NIfTI's by up to 1e-5 mm, which moves interpolated values by far less than
# this (z-scored intensities, of order 1)
ATOL = 1e-3


@pytest.fixture(scope="module")
def pipeline():
    """The preprocessing the CPU main job (`loes cv --config configs/cpu.yaml`) runs."""
    return preprocessing_for(load_config(CPU_CONFIG))


@pytest.mark.parametrize("kind", [*COPIES, "dicom_las"])
def test_every_format_preprocesses_to_the_tensor_of_its_nifti(tmp_path, pipeline, kind):
    """LPS turned 10 degrees (and, for ``dicom_las``, a LAS grid whose slices GDCM reads in the
    reverse order): an axis flipped or swapped anywhere would move the phantom's marker."""
    affine = grid(axes=(-1.0, 1.0, 1.0)) if kind == "dicom_las" else grid()
    data = volume(affine)
    reference = pipeline({"image": str(write_nifti(tmp_path / "ref.nii.gz", data, affine))})
    if kind == "dicom_las":
        path = write_dicom(tmp_path / "las", data, affine)
    else:
        path = write_copy(kind, tmp_path, data, affine)
    out = pipeline({"image": str(path)})["image"]
    expected = reference["image"]
    assert out.shape == expected.shape == (1, 72, 88, 72)
    assert_allclose(out.affine.numpy(), expected.affine.numpy(), atol=1e-4)
    assert float(expected.abs().max()) > 1.0  # a phantom, not an empty box
    assert_allclose(out.as_tensor().numpy(), expected.as_tensor().numpy(), atol=ATOL)
    assert out.meta["filename_or_obj"] == str(path)


@pytest.mark.parametrize("kind", COPIES)
def test_the_reader_gives_the_scans_affine_and_grid(tmp_path, kind):
    affine = grid()
    data = volume(affine)
    path = write_copy(kind, tmp_path, data, affine)
    image = LoadImage(reader=ScanReader(), image_only=True)(path)
    assert tuple(image.shape) == SHAPE  # (X, Y, Z, 1) squeezed: no channel axis
    assert math.isnan(image.meta["original_channel_dim"])
    assert_allclose(image.affine.numpy(), affine, atol=1e-4)
    assert_allclose(image.meta["original_affine"], affine, atol=1e-4)
    assert image.meta["spatial_shape"].tolist() == list(SHAPE)
    assert_allclose(image.meta["pixdim"][1:4], [2.0, 2.0, 2.0], atol=1e-4)
    # exact: integer voxels, which float32 holds exactly, read without any arithmetic
    assert torch.equal(image.as_tensor(), torch.as_tensor(data, dtype=torch.float32))
    assert image.meta["filename_or_obj"] == str(path)


def test_the_old_name_is_the_same_reader_and_unknown_files_are_not_claimed(tmp_path):
    assert NiftiReader is ScanReader
    (tmp_path / "notes.txt").write_text("x")
    reader = ScanReader()
    assert not reader.verify_suffix(tmp_path / "notes.txt")
    assert reader.verify_suffix(["a.nii.gz", "b.mgz", "c.hdr"])
    folder = write_dicom(tmp_path / "series", volume(grid()), grid())
    assert reader.verify_suffix(folder)
    assert not reader.verify_suffix(tmp_path)  # holds a DICOM folder, not DICOM files
    np.testing.assert_array_equal(
        reader.read([folder, folder])[1].affine, reader.read(folder).affine
    )
