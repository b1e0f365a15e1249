"""DICOM scans read with SimpleITK: geometry in RAS, one series per folder, the errors named."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from loes.data.readers.dicom import (
    DicomReadError,
    dicom_series,
    has_dicom_files,
    is_dicom_file,
    read_dicom,
)
from tests.data._scan_copies import grid, volume, write_dicom, write_multiframe

# DICOM stores positions and orientations as decimal strings (16 characters): 1e-4 mm is far
# below their precision loss on a 100 mm grid and far above float noise
ATOL_MM = 1e-4


@pytest.mark.parametrize("suffix", ["", ".dcm"])
def test_a_series_reads_back_as_the_nifti_it_was_written_from(tmp_path, suffix):
    affine = grid()  # LPS, oblique
    data = volume(affine)
    folder = write_dicom(tmp_path / "series", data, affine, suffix=suffix)
    image = read_dicom(folder)
    assert_allclose(image.affine, affine, atol=ATOL_MM)
    assert nib.aff2axcodes(image.affine) == ("L", "P", "S")
    assert_allclose(nib.affines.voxel_sizes(image.affine), [2.0, 2.0, 2.0], atol=ATOL_MM)
    assert image.get_data_dtype() == np.int16
    assert_array_equal(np.asarray(image.dataobj), data)
    assert int(image.header["sform_code"]) == 1


def test_a_left_handed_grid_comes_back_in_slice_order_on_the_same_world_positions(tmp_path):
    """A LAS grid (FSL's radiological order): GDCM sorts the slices along the normal of the
    rows and columns, the reverse of the file's third axis; every voxel keeps its place."""
    affine = grid(axes=(-1.0, 1.0, 1.0))
    data = volume(affine)
    image = read_dicom(write_dicom(tmp_path / "series", data, affine))
    assert_allclose(image.affine[:, 2], -affine[:, 2] * [1, 1, 1, 0], atol=ATOL_MM)
    assert_array_equal(np.asarray(image.dataobj), data[:, :, ::-1])
    canonical = nib.as_closest_canonical(nib.Nifti1Image(data, affine))
    read_canonical = nib.as_closest_canonical(image)
    assert_allclose(read_canonical.affine, canonical.affine, atol=ATOL_MM)
    assert_array_equal(np.asarray(read_canonical.dataobj), np.asarray(canonical.dataobj))


def test_a_folder_with_two_series_lists_both(tmp_path):
    affine = grid()
    data = volume(affine)
    write_dicom(tmp_path, data, affine, uid="1.2.3.4.10", description="T1 MPRAGE", prefix="A")
    write_dicom(tmp_path, data[:, :, :30], affine, uid="1.2.3.4.20", description="FLAIR",
                prefix="B")  # fmt: skip
    assert [(s.uid, s.description, len(s.files)) for s in dicom_series(tmp_path)] == [
        ("1.2.3.4.10", "T1 MPRAGE", 40),
        ("1.2.3.4.20", "FLAIR", 30),
    ]
    with pytest.raises(DicomReadError) as caught:
        read_dicom(tmp_path)
    assert str(caught.value).startswith(
        'holds 2 DICOM series (1.2.3.4.10 "T1 MPRAGE" (40 files); 1.2.3.4.20 "FLAIR" (30 '
        "files)); a scan is one series: move each series into a folder of its own"
    )


def test_a_single_slice_is_recognised_by_its_preamble_and_refused_naming_its_folder(tmp_path):
    affine = grid()
    folder = write_dicom(tmp_path / "series", volume(affine), affine)
    one = folder / "IM0007"
    assert is_dicom_file(one)
    assert has_dicom_files(folder)
    assert not is_dicom_file(tmp_path)
    assert not has_dicom_files(tmp_path)
    with pytest.raises(DicomReadError, match=r"^is one 2D DICOM slice \(40 x 48\), not a 3D scan; "
                       rf"give the folder that holds its series \({folder}\)\.$"):  # fmt: skip
        read_dicom(one)


def test_a_folder_holding_one_slice_asks_for_the_others(tmp_path):
    affine = grid()
    write_dicom(tmp_path / "series", volume(affine)[:, :, :1], affine)
    with pytest.raises(DicomReadError, match=r"^holds one 2D DICOM slice \(40 x 48\), not a 3D "
                       r"scan; copy every slice of its series into this folder\.$"):  # fmt: skip
        read_dicom(tmp_path / "series")


def test_a_missing_slice_is_an_error(tmp_path):
    affine = grid()
    folder = write_dicom(tmp_path / "series", volume(affine), affine)
    (folder / "IM0020").unlink()
    with pytest.raises(DicomReadError, match=r"^has slices that are missing or unevenly spaced "
                       r"\(gaps of 2 to 4 mm between"):  # fmt: skip
        read_dicom(folder)


def test_a_multiframe_file_is_one_scan(tmp_path):
    affine = grid()
    data = volume(affine)
    image = read_dicom(write_multiframe(tmp_path / "volume", data, affine))
    assert_allclose(image.affine, affine, atol=ATOL_MM)
    assert_array_equal(np.asarray(image.dataobj), data)


def test_a_folder_without_dicom_and_an_unreadable_file_are_named(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DicomReadError, match=r"^holds no DICOM image series"):
        read_dicom(tmp_path)
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(bytes(128) + b"DICM" + b"\x02\x00" * 10)
    with pytest.raises(DicomReadError, match=r"^cannot be read as DICOM \("):
        read_dicom(broken)
