"""``loes validate``'s checks hold for every format: clean copies pass, broken ones are named."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from loes.data import check_image, load_scan, validate_dataset
from tests.data._scan_copies import (
    COPIES,
    grid,
    volume,
    write_analyze,
    write_copy,
    write_dicom,
    write_mgz,
    write_nifti,
    write_pair,
)


@pytest.mark.parametrize("kind", COPIES)
def test_a_clean_copy_passes_every_check(tmp_path, kind):
    affine = grid()
    path = write_copy(kind, tmp_path, volume(affine), affine)
    assert check_image(path) == []
    assert check_image(path, deep=True) == []


@pytest.mark.parametrize("kind", COPIES)
def test_the_header_checks_apply_to_every_format(tmp_path, kind):
    """0.5 mm voxels on 40 x 48 x 40: 20 mm across, which no head fits."""
    affine = grid(voxel=0.5)
    [(severity, message)] = check_image(write_copy(kind, tmp_path, volume(affine), affine))
    assert severity == "error"
    assert message.startswith("covers 20 x 24 x 20 mm (40 x 48 x 40 voxels of 0.5 x 0.5 x 0.5 mm)")


def test_constant_voxels_are_found_in_every_format_with_deep(tmp_path):
    affine = grid()
    flat = np.full((40, 48, 40), 7, np.int16)
    for kind in COPIES:
        (tmp_path / kind).mkdir()
        path = write_copy(kind, tmp_path / kind, flat, affine)
        assert check_image(path) == [], kind
        assert check_image(path, deep=True) == [
            ("error", "is constant: every voxel is 7; re-run the preprocessing.")
        ], kind


def test_an_analyze_pair_is_read_with_a_warning_that_it_holds_no_orientation(tmp_path):
    affine = grid()
    [(severity, message)] = check_image(write_analyze(tmp_path / "a.hdr", volume(affine), affine))
    assert severity == "warning"
    assert message.startswith(
        "is an ANALYZE 7.5 pair, which holds no orientation: loes reads it as nibabel does, LAS "
        "(the first axis taken as right to left, the radiological convention), which may swap "
        "left and right;"
    )


def test_an_spm_analyze_pair_with_its_mat_file_has_its_orientation(tmp_path):
    """SPM writes the orientation of an ANALYZE pair into a .mat file beside it; nibabel reads
    it, so nothing is assumed."""
    affine = grid()
    nib.save(nib.Spm2AnalyzeImage(volume(affine), affine), tmp_path / "spm.hdr")
    assert (tmp_path / "spm.mat").is_file()
    assert check_image(tmp_path / "spm.hdr") == []
    assert_allclose(load_scan(tmp_path / "spm.hdr").affine, affine, atol=1e-6)


def test_a_series_of_volumes_stays_an_error(tmp_path):
    affine = grid()
    stack = np.stack([volume(affine), volume(affine, 1)], axis=-1)
    [(severity, message)] = check_image(write_nifti(tmp_path / "a.nii.gz", stack, affine))
    assert (severity, message[:28]) == ("error", "is 4D (40, 48, 40, 2); keep ")


def test_broken_copies_are_named(tmp_path):
    affine = grid()
    data = volume(affine)
    mgz = write_mgz(tmp_path / "cut.mgz", data, affine)
    raw = gzip.decompress(mgz.read_bytes())
    mgz.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    assert check_image(mgz) == [
        ("error", "is truncated: 76952 bytes of image data where its header needs 153884; copy "
                  "it again.")
    ]  # fmt: skip
    pair = write_pair(tmp_path / "p.hdr", data, affine)
    (tmp_path / "p.img").write_bytes((tmp_path / "p.img").read_bytes()[:1000])
    assert check_image(pair) == [
        ("error", "is truncated: 1000 bytes where its header needs 153600; copy it again.")
    ]
    (tmp_path / "p.img").unlink()
    assert check_image(pair) == [
        ("error", "has no p.img beside it; a .hdr/.img pair needs both files: copy it.")
    ]


def test_dicom_problems_are_the_scans_errors(tmp_path):
    affine = grid()
    data = volume(affine)
    both = tmp_path / "both"
    write_dicom(both, data, affine, uid="1.2.3.4.10", description="T1 MPRAGE", prefix="A")
    write_dicom(both, data[:, :, :30], affine, uid="1.2.3.4.20", description="FLAIR", prefix="B")
    [(severity, message)] = check_image(both)
    assert severity == "error"
    assert message.startswith(
        'holds 2 DICOM series (1.2.3.4.10 "T1 MPRAGE" (40 files); 1.2.3.4.20 "FLAIR" (30 files))'
    )
    [(severity, message)] = check_image(both / "A0003")
    assert message.startswith("is one 2D DICOM slice (40 x 48), not a 3D scan; give the folder")
    (tmp_path / "empty").mkdir()
    assert check_image(tmp_path / "empty")[0][1].startswith(
        "is a folder, not an image file, and holds no DICOM file"
    )


def test_a_manifest_of_every_format_validates(tmp_path):
    affine = grid()
    data = volume(affine)
    rows = []
    for i, kind in enumerate(COPIES):
        path = write_copy(kind, tmp_path, data, affine)
        rows.append({"subject": f"sub-{i}", "session": "ses-1", "loes_score": float(i),
                     "image": path.relative_to(tmp_path).as_posix()})  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    report = validate_dataset(tmp_path / "manifest.csv", deep=True)
    assert report.problems == [], report.text()
    assert len(report.table) == len(COPIES)
