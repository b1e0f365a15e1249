"""The scans to predict: NIfTI files, folders of them and tables, scores optional."""

import math
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from loes.data import check_image, load_dataset
from loes.data.scan_sources import SCAN_COLUMNS, read_scans
from loes.errors import LoesError
from tests.data._scan_copies import (
    COPIES,
    grid,
    volume,
    write_copy,
    write_dicom,
    write_mgz,
    write_nifti,
)


def _nifti(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4)), path)
    return path


def test_files_and_folders_give_one_row_each_with_ids_from_bids_names(tmp_path):
    bids_named = _nifti(tmp_path / "scans" / "sub-07_ses-2_T1w.nii.gz")
    plain = _nifti(tmp_path / "scans" / "nested" / "patient A.nii")
    (tmp_path / "scans" / "ignored.txt").write_text("not NIfTI by name")
    alone = _nifti(tmp_path / "sub-09_T1w.nii.gz")
    table = read_scans([tmp_path / "scans", alone])
    assert list(table.columns[:4]) == list(SCAN_COLUMNS)
    assert table["image"].tolist() == [str(plain), str(bids_named), str(alone)]
    assert table["subject"].tolist() == ["patient A", "sub-07", "sub-09"]
    assert table["session"].tolist() == ["", "ses-2", ""]
    assert table["loes_score"].isna().all()


@pytest.mark.parametrize("name", ["slice.dcm", "preview.png", "brain.mgz"])
def test_a_file_that_is_no_table_is_a_scan_of_its_own(tmp_path, name):
    """Not read as a spreadsheet: predicting gives it its own row saying it is not NIfTI."""
    other = tmp_path / name
    other.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    scan = _nifti(tmp_path / "sub-01_T1w.nii.gz")
    table = read_scans([other, scan])
    assert table["image"].tolist() == [str(other), str(scan)]


def test_a_manifest_with_blank_scores_is_read_with_the_scores_it_has(tiny_manifest, tmp_path):
    shutil.copytree(tiny_manifest.parent, tmp_path / "cohort")
    path = tmp_path / "cohort" / tiny_manifest.name
    manifest = pd.read_csv(path, dtype=str)
    manifest.loc[[0, 2], "loes_score"] = ""
    manifest.to_csv(path, index=False)
    table = read_scans([path])
    expected = load_dataset(tiny_manifest)
    assert len(table) == len(expected)
    assert math.isnan(table.loc[0, "loes_score"])
    assert table.loc[1, "loes_score"] == expected.loc[1, "loes_score"]


def test_a_bids_root_reads_the_same_scans_as_its_manifest(tiny_manifest):
    table = read_scans([tiny_manifest.parent])
    expected = load_dataset(tiny_manifest)
    assert sorted(table["image"]) == sorted(expected["image"])
    assert table["loes_score"].sum() == pytest.approx(expected["loes_score"].sum())


def test_a_table_with_errors_other_than_scores_is_refused_naming_the_row(tiny_manifest, tmp_path):
    path = tmp_path / "manifest.csv"
    manifest = pd.read_csv(tiny_manifest, dtype=str)
    manifest.loc[1, "subject"] = ""
    manifest.to_csv(path, index=False)
    with pytest.raises(LoesError, match=r"row 3.*subject is empty"):
        read_scans([path], images_dir=tiny_manifest.parent)


@pytest.mark.parametrize("name", ["missing.csv", "missing_folder"])
def test_a_missing_source_is_named(tmp_path, name):
    with pytest.raises(LoesError, match=f"{name} does not exist"):
        read_scans([tmp_path / name])


def test_a_folder_without_scans_is_named(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(LoesError, match="is not a BIDS dataset and holds no scan loes reads"):
        read_scans([tmp_path])


def test_no_source_is_refused():
    with pytest.raises(LoesError, match="no SOURCE"):
        read_scans([])


def test_a_dicom_slice_or_binary_file_without_extension_is_a_scan_not_a_table(tmp_path):
    """Neither stops the call: each is its own row, whose check says why it cannot be scored,
    and the NIfTI beside them is checked clean."""
    affine = grid()
    series = write_dicom(tmp_path / "series", volume(affine), affine)
    blob = tmp_path / "export"
    blob.write_bytes(b"\0\1\2" * 100)
    good = write_nifti(tmp_path / "sub-01_T1w.nii.gz", volume(affine), affine)
    table = read_scans([series / "IM0001", blob, good])
    assert table["image"].tolist() == [str(series / "IM0001"), str(blob), str(good)]
    assert table["subject"].tolist() == ["IM0001", "export", "sub-01"]
    checked = [check_image(image) for image in table["image"]]
    assert checked[0][0][1].startswith("is one 2D DICOM slice (40 x 48), not a 3D scan")
    assert checked[1][0][1].startswith("is not an image loes reads")
    assert checked[2] == []


def test_a_folder_of_scans_in_every_format_gives_one_row_per_scan(tmp_path):
    affine = grid()
    data = volume(affine)
    (tmp_path / "scans").mkdir()
    for kind in COPIES.keys() - {"multiframe"}:  # a DICOM file in it makes a folder a series
        write_copy(kind, tmp_path / "scans", data, affine)
    (tmp_path / "scans" / "notes.txt").write_text("read me")  # not a scan, left out
    table = read_scans([tmp_path / "scans"])
    names = [Path(p).relative_to(tmp_path / "scans").as_posix() for p in table["image"]]
    assert names == [
        "dicom_dcm", "dicom_series", "enhanced", "four_d.nii.gz", "orig.mgz", "pair.hdr",
    ]  # fmt: skip
    assert table["subject"].tolist() == [
        "dicom_dcm", "dicom_series", "enhanced", "four_d", "orig", "pair",
    ]  # fmt: skip
    assert [check_image(p) for p in table["image"]] == [[]] * 6


def test_a_dicom_series_folder_is_one_scan(tmp_path):
    affine = grid()
    series = write_dicom(tmp_path / "sub-03_ses-1_T1w", volume(affine), affine)
    table = read_scans([series])
    assert table[["subject", "session", "image"]].values.tolist() == [
        ["sub-03", "ses-1", str(series)]
    ]


def test_scans_sharing_a_name_are_named_by_their_path(tmp_path):
    """FreeSurfer's layout: every subject's scan is mri/orig.mgz."""
    affine = grid()
    for subject in ("bert", "ernie"):
        (tmp_path / subject / "mri").mkdir(parents=True)
        write_mgz(tmp_path / subject / "mri" / "orig.mgz", volume(affine), affine)
    write_nifti(tmp_path / "other.nii.gz", volume(affine), affine)
    table = read_scans([tmp_path])
    assert table["subject"].tolist() == ["bert/mri/orig", "ernie/mri/orig", "other"]


def test_a_row_set_aside_is_never_dropped_without_a_word(tiny_manifest, tmp_path, capsys):
    shutil.copytree(tiny_manifest.parent, tmp_path / "cohort")
    path = tmp_path / "cohort" / tiny_manifest.name
    manifest = pd.read_csv(path, dtype=str)
    manifest["gd"] = ["1", "1"] + ["0"] * (len(manifest) - 2)
    manifest.to_csv(path, index=False)
    from loes.cli import _show_transform_decisions

    _show_transform_decisions()  # what the loes command does: reading's notes on stderr
    table = read_scans([path])
    assert len(table) == len(manifest) - 2
    err = capsys.readouterr().err
    assert f"{path}: 2 scans set aside: post-contrast scan (gd)" in err
    assert "--include-gd" in err
    assert len(read_scans([path], include_gd=True)) == len(manifest)


def test_images_in_formats_loes_does_not_read_are_named_not_dropped(
    tiny_manifest, tmp_path, capsys
):
    scan = next(tiny_manifest.parent.glob("sub-001/ses-01/anat/*.nii.gz"))
    shutil.copy(scan, tmp_path)
    (tmp_path / "old.nrrd").write_bytes(b"NRRD0004")
    (tmp_path / "series.PAR").write_text("# PAR")
    from loes.cli import _show_transform_decisions

    _show_transform_decisions()
    assert len(read_scans([tmp_path])) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path}: 2 files skipped, in a format loes does not read (1 .nrrd, 1 .par)" in err


def test_a_manifest_without_a_score_column_is_read_unscored(tiny_manifest, tmp_path):
    shutil.copytree(tiny_manifest.parent, tmp_path / "cohort")
    path = tmp_path / "cohort" / tiny_manifest.name
    pd.read_csv(path, dtype=str).drop(columns="loes_score").to_csv(path, index=False)
    table = read_scans([path])
    expected = load_dataset(tiny_manifest)
    assert [Path(p).name for p in table["image"]] == [Path(p).name for p in expected["image"]]
    assert table["loes_score"].isna().all()
    with pytest.raises(LoesError, match="no loes_score column"):  # training needs the scores
        load_dataset(path)
