"""Every format opens as the NIfTI it was written from: same RAS affine, same voxels."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from loes.data.readers.scans import (
    ScanError,
    as_nifti,
    find_scans,
    format_by_name,
    load_scan,
    open_scan,
    scan_format,
    scan_stem,
    squeezed_shape,
)
from tests.data._scan_copies import (
    COPIES,
    SHAPE,
    grid,
    volume,
    write_analyze,
    write_copy,
    write_dicom,
    write_mgz,
    write_nifti,
    write_pair,
)

# MGH stores its geometry as float32 and DICOM as decimal strings: 1e-4 mm on a 100 mm grid
ATOL_MM = 1e-4


@pytest.mark.parametrize("kind", COPIES)
def test_each_copy_loads_as_its_nifti(tmp_path, kind):
    affine = grid()
    data = volume(affine)
    reference = nib.load(write_nifti(tmp_path / "reference.nii.gz", data, affine))
    image = load_scan(write_copy(kind, tmp_path, data, affine))
    assert image.shape == SHAPE
    assert_allclose(image.affine, reference.affine, atol=ATOL_MM)
    assert nib.aff2axcodes(image.affine) == ("L", "P", "S")
    assert_array_equal(np.asanyarray(image.dataobj), np.asanyarray(reference.dataobj))
    nifti = as_nifti(image)
    assert type(nifti) is nib.Nifti1Image
    assert_allclose(nifti.affine, reference.affine, atol=ATOL_MM)
    assert_allclose(nifti.header.get_zooms()[:3], [2.0, 2.0, 2.0], atol=ATOL_MM)


def test_a_four_d_series_is_not_squeezed(tmp_path):
    affine = grid()
    stack = np.stack([volume(affine, seed) for seed in (0, 1)], axis=-1)
    image = load_scan(write_nifti(tmp_path / "bold.nii.gz", stack, affine))
    assert image.shape == (*SHAPE, 2)
    assert squeezed_shape((4, 5, 6, 1, 1)) == (4, 5, 6)
    assert squeezed_shape((4, 5, 6, 2)) == (4, 5, 6, 2)
    assert squeezed_shape((4, 5)) == (4, 5)


def test_an_analyze_pair_opens_with_nibabels_default_orientation(tmp_path):
    """ANALYZE 7.5 keeps voxel sizes only: the oblique LPS grid comes back axis-aligned, its
    first axis right to left (nibabel's radiological default), voxels unchanged."""
    affine = grid()
    data = volume(affine)
    image = open_scan(write_analyze(tmp_path / "old.hdr", data, affine))
    assert isinstance(image, nib.AnalyzeImage)
    assert not isinstance(image, nib.Nifti1Pair)
    assert nib.aff2axcodes(image.affine) == ("L", "A", "S")
    assert_allclose(nib.affines.voxel_sizes(image.affine), [2.0, 2.0, 2.0])
    assert_array_equal(np.asanyarray(image.dataobj), data)


def test_formats_are_told_by_name_then_by_content(tmp_path):
    affine = grid()
    assert [format_by_name(n) for n in ("a.NII.GZ", "b.img", "c.mgh", "d.DCM", "e.csv")] == [
        "nifti", "pair", "mgh", "dicom", None,
    ]  # fmt: skip
    folder = write_dicom(tmp_path / "series", volume(affine), affine)
    assert scan_format(folder) == "dicom"
    assert scan_format(folder / "IM0001") == "dicom"  # no extension: its DICM marker
    assert scan_format(tmp_path) is None  # holds a DICOM folder, not DICOM files
    assert [scan_stem(p) for p in ("x/orig.mgz", "x/T1.hdr", "x/a.b.nii.gz", folder)] == [
        "orig", "T1", "a.b", "series",
    ]  # fmt: skip


def test_find_scans_lists_each_scan_once(tmp_path):
    affine = grid()
    data = volume(affine)
    write_nifti(tmp_path / "a.nii.gz", data, affine)
    write_pair(tmp_path / "b.hdr", data, affine)  # with b.img: one scan
    (tmp_path / "c.img").write_bytes(b"\0" * 8)  # an .img without its .hdr: reported
    (tmp_path / "s1" / "mri").mkdir(parents=True)
    write_mgz(tmp_path / "s1" / "mri" / "orig.mgz", data, affine)
    write_dicom(tmp_path / "dicom" / "t1", data, affine)
    (tmp_path / "dicom" / "DICOMDIR").write_bytes(bytes(128) + b"DICM")  # an index, no image
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "._a.nii.gz").write_bytes(b"\0")  # macOS' AppleDouble shadow
    assert [p.relative_to(tmp_path).as_posix() for p in find_scans(tmp_path)] == [
        "a.nii.gz", "b.hdr", "c.img", "dicom/t1", "s1/mri/orig.mgz",
    ]  # fmt: skip


def test_what_cannot_be_opened_says_why(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ScanError) as caught:
        open_scan(tmp_path / "notes.txt")
    assert caught.value.reason.startswith("is not an image loes reads: give NIfTI (.nii,")
    assert str(caught.value) == f"{tmp_path / 'notes.txt'} {caught.value.reason}"
    with pytest.raises(ScanError, match="is a folder, not an image file, and holds no DICOM"):
        open_scan(tmp_path)
    with pytest.raises(ScanError, match=r"missing\.mgz does not exist$"):
        open_scan(tmp_path / "missing.mgz")
    write_pair(tmp_path / "p.hdr", volume(grid()), grid())
    (tmp_path / "p.hdr").unlink()
    with pytest.raises(ScanError, match=r"p.img has no p.hdr beside it; a .hdr/.img pair needs"):
        open_scan(tmp_path / "p.img")
    (tmp_path / "p.img").rename(tmp_path / "q.hdr")  # a header without its voxels
    with pytest.raises(ScanError, match=r"q.hdr has no q.img beside it"):
        load_scan(tmp_path / "q.hdr")
    (tmp_path / "bad.mgz").write_bytes(b"\x1f\x8b not really")
    with pytest.raises(ScanError, match=r"bad.mgz is not a readable MGH image \("):
        open_scan(tmp_path / "bad.mgz")
