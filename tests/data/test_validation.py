"""Every broken image is found, named and explained; ``loes validate`` exits 0 or 2."""

from __future__ import annotations

import gzip
import os
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from loes.cli import main
from loes.data import check_image, validate_dataset

AFFINE = np.diag([4.0, 4.0, 4.0, 1.0])


def volume(seed: int = 0, shape=(12, 12, 12)) -> np.ndarray:
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def save(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def cohort(tmp_path: Path, n: int = 3) -> Path:
    """A clean manifest of ``n`` subjects with one tiny scan each."""
    rows = []
    (tmp_path / "img").mkdir(exist_ok=True)
    for i in range(n):
        save(tmp_path / "img" / f"s{i}.nii.gz", volume(i))
        rows.append({"subject": f"sub-{i}", "session": "ses-1", "image": f"img/s{i}.nii.gz",
                     "loes_score": float(i)})  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    return tmp_path / "manifest.csv"


def truncated_gz(path: Path) -> None:
    save(path, volume())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def truncated_nii(path: Path) -> None:
    plain = path.with_name("tmp.nii")
    save(plain, volume())
    data = plain.read_bytes()
    plain.unlink()
    path.write_bytes(gzip.compress(data[: len(data) - 100]))  # valid gzip, short payload


def corrupt_gz(path: Path) -> None:
    save(path, volume())
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)  # damage the deflate stream, keep the trailer
    path.write_bytes(bytes(data))


def with_header(**fields) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        image = nib.Nifti1Image(volume(), AFFINE)
        for key, value in fields.items():
            if key == "zooms":
                image.header.set_zooms(value)
            else:
                image.header[key] = value
        nib.save(image, path)

    return build


def patched(offset: int, raw: bytes) -> Callable[[Path], None]:
    """A clean image whose header bytes at ``offset`` are overwritten (what nibabel won't save)."""

    def build(path: Path) -> None:
        plain = save(path.with_name("tmp.nii"), volume())
        data = bytearray(plain.read_bytes())
        plain.unlink()
        data[offset : offset + len(raw)] = raw
        path.write_bytes(gzip.compress(bytes(data)))

    return build


def cut_nii(path: Path) -> None:
    save(path, volume())
    data = path.read_bytes()
    path.write_bytes(data[:-1000])


def filled(value: float) -> Callable[[Path], None]:
    return lambda path: save(path, np.full((12, 12, 12), value, np.float32))


def with_bad_voxels(value: float, count: int = 3) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        data = volume()
        data[0, 0, :count] = value
        save(path, data)

    return build


def _zero_srow_z(path: Path) -> None:
    data = bytearray(gzip.decompress(path.read_bytes()))
    data[312:328] = bytes(16)
    path.write_bytes(gzip.compress(bytes(data)))


# (name of the image file, how to build it, deep?, expected message)
BROKEN = [
    ("bad.nii.gz", truncated_gz, False, "is truncated (the compressed data ends early)"),
    ("bad.nii.gz", truncated_gz, True, "is truncated (the compressed data ends early)"),
    ("bad.nii.gz", truncated_nii, False,
     "is truncated: 7164 bytes of image data where its header needs 7264"),
    ("bad.nii.gz", corrupt_gz, True, "is truncated or corrupt: its voxels cannot be read"),
    ("bad.nii", cut_nii, False, "is truncated: 6264 bytes where its header needs 7264"),
    ("bad.nii.gz", lambda p: p.write_text("subject,session\n"), False,
     "is named .nii.gz but is not gzip-compressed"),
    ("bad.nii.gz", lambda p: p.write_bytes(gzip.compress(b"hello" * 99)), False,
     "is not a readable NIfTI image (ImageFileError"),
    ("bad.nii", lambda p: p.write_text("not an image\n" * 40), False,
     "is not a readable NIfTI image"),
    ("bad.png", lambda p: p.write_bytes(b"\x89PNG"), False,
     "is not an image loes reads: give NIfTI (.nii, .nii.gz), a .hdr/.img pair, FreeSurfer "
     ".mgz/.mgh, or DICOM"),
    ("bad.nii.gz", lambda p: p.write_bytes(b""), False, "is empty (0 bytes)"),
    ("bad.nii.gz", lambda p: p.write_text("/annex/objects/MD5E-s9--0a.nii.gz\n"), False,
     "is a git-annex pointer file, not the image: its content has not been fetched; run "
     "`datalad get "),
    ("bad.nii.gz", lambda p: p.write_text("version https://git-lfs.github.com/spec/v1\n"), False,
     "is a Git LFS pointer file, not the image: its content has not been fetched; run "
     "`git lfs pull` in the repository."),
    ("bad.nii", lambda p: save(p.with_name("tmp.nii.gz"), volume()).rename(p), False,
     "is gzip-compressed but named .nii; rename it to .nii.gz."),
    ("bad.nii.gz", lambda p: save(p, np.ones(16, np.float32)), False,
     "has 1 dimension (16,); a 3D volume is needed."),
    ("bad.nii.gz", with_bad_voxels(np.nan, count=1), True, "has 1 NaN or infinite voxel (0.058%)"),
    ("bad.nii.gz", lambda p: save(p, np.zeros((8, 8, 8, 3), np.float32)), False,
     "is 4D (8, 8, 8, 3); keep one 3D volume"),
    ("bad.nii.gz", lambda p: save(p, np.zeros((8, 8, 8, 1, 2), np.float32)), False,
     "is 5D (8, 8, 8, 1, 2)"),
    ("bad.nii.gz", lambda p: save(p, np.ones((16, 16), np.float32)), False,
     "has 2 dimensions (16, 16); a 3D volume is needed."),
    ("bad.nii.gz",
     lambda p: save(p, np.zeros((8, 8, 8), [("R", "u1"), ("G", "u1"), ("B", "u1")])), False,
     "has multi-component voxels"),
    ("bad.nii.gz", with_bad_voxels(np.nan), True, "has 3 NaN or infinite voxels"),
    ("bad.nii.gz", with_bad_voxels(np.inf), True, "has 3 NaN or infinite voxels"),
    ("bad.nii.gz", filled(0.0), True, "is empty: every voxel is 0"),
    ("bad.nii.gz", filled(7.0), True, "is constant: every voxel is 7"),
    ("bad.nii.gz", lambda p: save(p, volume(shape=(99, 12, 12)), np.diag([0.1, 4, 4, 1])), False,
     "has implausible voxel sizes 0.1 x 4 x 4 mm (expected 0.2-10.0 mm)"),
    ("bad.nii.gz", lambda p: save(p, volume(), np.diag([4.0, 4.0, 12.0, 1.0])), False,
     "has implausible voxel sizes 4 x 4 x 12 mm"),
    # srow_x[0] = NaN (the sform starts at byte 280)
    ("bad.nii.gz", patched(280, struct.pack("<f", np.nan)), False,
     "has a singular or non-finite affine"),
    ("bad.nii.gz", lambda p: save(p, volume(shape=(12, 12, 2))), False,
     "has an implausible shape (12, 12, 2)"),
    # qform_code 0 (byte 252), srow_z zeros (byte 312): the sform maps every voxel to z = 0
    ("bad.nii.gz", lambda p: (patched(252, b"\0\0")(p), _zero_srow_z(p)), False,
     "has a singular or non-finite affine"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "build", "deep", "message"), BROKEN)
def test_every_broken_image_is_named_with_its_row(tmp_path, name, build, deep, message):
    manifest = cohort(tmp_path)
    build(tmp_path / "img" / name)
    table = pd.read_csv(manifest)
    table.loc[1, "image"] = f"img/{name}"
    table.to_csv(manifest, index=False)
    report = validate_dataset(manifest, deep=deep)
    assert len(report.errors) == 1, report.text()
    error = report.errors[0]
    assert error.where == f"img/{name} (manifest.csv row 3 (sub-1 ses-1))"
    assert error.message.startswith(message), error.message
    assert not report.ok
    assert report.table is not None
    assert len(report.table) == 3


@pytest.mark.parametrize(
    "build", [with_bad_voxels(np.nan), filled(0.0), filled(3.0)], ids=["nan", "zeros", "constant"]
)
def test_voxel_problems_need_deep(tmp_path, build):
    build(tmp_path / "a.nii.gz")
    assert check_image(tmp_path / "a.nii.gz") == []
    assert check_image(tmp_path / "a.nii.gz", deep=True)[0][0] == "error"


def test_small_field_of_view_is_an_error(tmp_path):
    save(tmp_path / "a.nii.gz", volume(), np.eye(4))  # 12 mm across
    assert check_image(tmp_path / "a.nii.gz") == [
        (
            "error",
            "covers 12 x 12 x 12 mm (12 x 12 x 12 voxels of 1 x 1 x 1 mm), which no head fits "
            "(each axis must be 30-500 mm; a head is about 140-200 mm across); resampled to "
            "2 x 2 x 2 mm voxels it would become 6 x 6 x 6 voxels. Check the voxel sizes "
            "(pixdim, the affine and their units, xyzt_units) and that it is one whole-head "
            "volume.",
        )
    ]


def header_only(path: Path, shape, affine: np.ndarray) -> Path:
    """A .nii file with a header and no voxels: only the header may be read."""
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.int16)
    header.set_qform(affine, code=1)
    header.set_sform(affine, code=1)
    header["vox_offset"] = 352
    path.write_bytes(header.binaryblock + bytes(4))
    return path


def test_impossible_field_of_view_is_an_error_from_the_header_alone(tmp_path):
    # 9 mm voxels on a 400 x 400 x 300 matrix: 3.6 m across; resampling it took 17 GB
    path = header_only(tmp_path / "a.nii", (400, 400, 300), np.diag([9.0, 9.0, 9.0, 1.0]))
    [(severity, message)] = check_image(path)  # no truncation error: no voxel was read
    assert severity == "error"
    assert message.startswith(
        "covers 3600 x 3600 x 2700 mm (400 x 400 x 300 voxels of 9 x 9 x 9 mm), which no head "
        "fits (each axis must be 30-500 mm; a head is about 140-200 mm across); resampled to "
        "2 x 2 x 2 mm voxels it would become 1800 x 1800 x 1350 voxels (17 GB as float32)."
    )
    assert "3600 x 3600 x 2700 voxels (140 GB as float32)" in check_image(path, pixdim=1.0)[0][1]
    # a head-sized field of view with the same voxels passes: only its missing voxels are found
    head = header_only(tmp_path / "b.nii", (20, 24, 20), np.diag([9.0, 9.0, 9.0, 1.0]))
    assert [message[:13] for _, message in check_image(head)] == ["is truncated:"]


def test_field_of_view_error_uses_the_configured_voxel_size(tmp_path, capsys):
    manifest = cohort(tmp_path)
    header_only(tmp_path / "img" / "s1.nii", (400, 400, 300), np.diag([9.0, 9.0, 9.0, 1.0]))
    table = pd.read_csv(manifest)
    table.loc[1, "image"] = "img/s1.nii"
    table.to_csv(manifest, index=False)
    [error] = validate_dataset(manifest, pixdim=(4.0, 4.0, 3.0)).errors
    assert error.where == "img/s1.nii (manifest.csv row 3 (sub-1 ses-1))"
    assert "resampled to 4 x 4 x 3 mm voxels it would become 900 x 900 x 900 voxels" in (
        error.message
    )
    assert main(["validate", str(manifest), "--pixdim", "4"]) == 2
    out, err = capsys.readouterr()
    assert "error: img/s1.nii (manifest.csv row 3 (sub-1 ses-1)): covers 3600 x 3600" in out
    assert "900 x 900 x 675 voxels (2.2 GB as float32)" in out
    assert "Traceback" not in out + err
    assert main(["validate", str(manifest), "--pixdim", "1", "2"]) == 2
    assert "--pixdim takes one or three positive voxel sizes in mm, got [1.0, 2.0]." in (
        capsys.readouterr().err
    )


def test_pixdim_disagreeing_with_the_affine_is_a_warning(tmp_path):
    with_header(zooms=(1.0, 4.0, 4.0))(tmp_path / "a.nii.gz")
    assert check_image(tmp_path / "a.nii.gz") == [
        (
            "warning",
            "has voxel sizes 1 x 4 x 4 mm in pixdim but 4 x 4 x 4 mm in its sform, which loes "
            "uses (as nibabel does); tools that read pixdim will disagree: save it again with "
            "a consistent header.",
        )
    ]


def test_qform_and_sform_disagreeing_is_a_warning_saying_which_is_used(tmp_path):
    image = nib.Nifti1Image(volume(), None)
    las = np.diag([-4.0, 4.0, 4.0, 1.0])
    las[0, 3] = 44.0  # the same grid, mirrored: left and right swapped
    image.set_qform(las, code=1)
    image.set_sform(AFFINE, code=1)
    nib.save(image, tmp_path / "a.nii.gz")
    assert check_image(tmp_path / "a.nii.gz") == [
        (
            "warning",
            "has a qform (LAS) and an sform (RAS) that place it up to 44 mm apart; loes uses the "
            "sform (sform_code 1 > 0), as nibabel does, other tools may use the qform: check "
            "which is right and save the image with both set to it (nibabel: "
            "`image.set_qform(image.get_sform())`).",
        )
    ]
    image.set_qform(AFFINE, code=1)  # agreeing again
    nib.save(image, tmp_path / "b.nii.gz")
    assert check_image(tmp_path / "b.nii.gz") == []


def test_sheared_sform_is_one_warning_saying_which_is_used(tmp_path):
    sheared = AFFINE.copy()
    sheared[1, 2] = 4.0 * np.tan(np.deg2rad(20.0))  # a 20-degree gantry tilt
    image = nib.Nifti1Image(volume(), None)
    image.set_qform(AFFINE, code=1)  # a qform holds the rotation only
    image.set_sform(sheared, code=1)
    nib.save(image, tmp_path / "a.nii.gz")
    [(severity, message)] = check_image(tmp_path / "a.nii.gz")  # not a pixdim warning too
    assert severity == "warning"
    assert message.startswith(
        "has a qform (RAS) and an sform (RAS) that place it up to 16 mm apart (the sform is "
        "sheared, e.g. by a gantry tilt, and a qform can only hold a rotation); loes uses the "
        "sform (sform_code 1 > 0), as nibabel does"
    )


def test_image_without_qform_or_sform_is_a_warning(tmp_path):
    image = nib.Nifti1Image(np.zeros((64, 64, 64), np.int16), AFFINE)
    image.set_qform(None, code=0)
    image.set_sform(None, code=0)
    nib.save(image, tmp_path / "a.nii.gz")
    problems = check_image(tmp_path / "a.nii.gz")
    assert [severity for severity, _ in problems] == ["warning"]
    assert problems[0][1].startswith("has neither a qform nor an sform (both codes 0)")
    # the same image with its orientation recorded is fine
    image.set_sform(AFFINE, code=1)
    nib.save(image, tmp_path / "b.nii.gz")
    assert check_image(tmp_path / "b.nii.gz") == []


def test_broken_link_names_its_target_and_how_to_fetch_it(tmp_path):
    """A DataLad dataset before `datalad get`: `ls` shows the file, opening it fails."""
    link = tmp_path / "a.nii.gz"
    link.symlink_to("../.git/annex/objects/Xy/Zw/MD5E-s9--0a.nii.gz/MD5E-s9--0a.nii.gz")
    assert check_image(link) == [
        (
            "error",
            "is a symbolic link to ../.git/annex/objects/Xy/Zw/MD5E-s9--0a.nii.gz/MD5E-s9--0a"
            ".nii.gz, which is missing: the content has not been fetched (a DataLad or git-annex "
            f"dataset); run `datalad get {link}` (or `git annex get {link}`) in the dataset.",
        )
    ]


def test_folder_instead_of_file(tmp_path):
    (tmp_path / "a.nii.gz").mkdir()
    assert "is a folder" in check_image(tmp_path / "a.nii.gz")[0][1]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path):
    path = save(tmp_path / "a.nii.gz", volume())
    path.chmod(0)
    try:
        assert check_image(path)[0][1].startswith("cannot be read (Permission denied)")
    finally:
        path.chmod(0o644)


def test_plain_and_compressed_clean_images_pass_deep(tmp_path):
    for name in ("a.nii", "a.nii.gz"):
        save(tmp_path / name, volume())
        assert check_image(tmp_path / name, deep=True) == []
        assert check_image(tmp_path / name) == []


def test_clean_cohort_report(tmp_path):
    report = validate_dataset(cohort(tmp_path), deep=True)
    assert report.ok
    assert report.problems == []
    assert report.format == "manifest"
    assert report.text().splitlines() == [
        f"{tmp_path / 'manifest.csv'} (manifest, 3 scans of 3 subjects, every voxel read): "
        "0 errors, 0 warnings",
        "No problems found.",
    ]
    assert report.raise_for_errors()["subject"].tolist() == ["sub-0", "sub-1", "sub-2"]


def test_every_problem_reported_at_once(tmp_path):
    manifest = cohort(tmp_path, n=4)
    truncated_gz(tmp_path / "img" / "s0.nii.gz")
    (tmp_path / "img" / "s1.nii.gz").unlink()
    save(tmp_path / "img" / "s2.nii.gz", np.zeros((8, 8, 8, 2), np.float32))
    table = pd.read_csv(manifest)
    table.loc[3, "loes_score"] = 40
    table.to_csv(manifest, index=False)
    report = validate_dataset(manifest)
    assert [p.where for p in report.errors] == [
        "manifest.csv row 5 (sub-3 ses-1)",
        "manifest.csv row 3 (sub-1 ses-1)",
        "img/s0.nii.gz (manifest.csv row 2 (sub-0 ses-1))",
        "img/s2.nii.gz (manifest.csv row 4 (sub-2 ses-1))",
    ]
    text = report.text()
    assert "4 errors, 0 warnings" in text.splitlines()[0]
    assert text.endswith("Fix the errors, then run `loes validate` again.")


def test_each_image_checked_once_at_its_first_row(tmp_path):
    manifest = cohort(tmp_path, n=2)
    truncated_gz(tmp_path / "img" / "s0.nii.gz")
    table = pd.read_csv(manifest)
    table.loc[1, "image"] = "img/s0.nii.gz"  # the same broken image twice
    table.to_csv(manifest, index=False)
    report = validate_dataset(manifest)
    assert [p.where for p in report.errors] == [
        "manifest.csv row 3 (sub-1 ses-1)",  # listed twice
        "img/s0.nii.gz (manifest.csv row 2 (sub-0 ses-1))",  # truncated, once
    ]


@pytest.mark.parametrize("gd", ["", ",gd"])
def test_a_table_left_empty_is_a_report_without_scans(tmp_path, gd):
    # no rows at all, or only post-contrast rows, which are left out
    rows = "" if not gd else "sub-0,ses-1,img/s0.nii.gz,1,1\n"
    (tmp_path / "img").mkdir()
    save(tmp_path / "img" / "s0.nii.gz", volume())
    (tmp_path / "m.csv").write_text(f"subject,session,image,loes_score{gd}\n{rows}")
    report = validate_dataset(tmp_path / "m.csv")
    assert report.ok
    assert len(report.table) == 0
    # the post-contrast row is set aside, and the summary says so
    size = "no scans kept, 1 scan set aside (post-contrast scan (gd))" if gd else "no scans read"
    assert report.summary() == f"{tmp_path / 'm.csv'} (manifest, {size}): 0 errors, 0 warnings"


# --- the command line ----------------------------------------------------------------------


def test_cli_clean_exits_0(tmp_path, capsys):
    assert main(["validate", str(cohort(tmp_path)), "--deep"]) == 0
    out, err = capsys.readouterr()
    assert "0 errors, 0 warnings" in out
    assert "No problems found." in out
    assert err == ""


def test_cli_warnings_only_exits_0(tmp_path, capsys):
    manifest = cohort(tmp_path)
    table = pd.read_csv(manifest)
    table.loc[0, "loes_score"] = 1.25
    table.to_csv(manifest, index=False)
    assert main(["validate", str(manifest)]) == 0
    out, err = capsys.readouterr()
    assert "warning: manifest.csv row 2 (sub-0 ses-1): loes_score 1.25 is not a multiple" in out
    assert err == ""


def test_cli_errors_exit_2_without_traceback(tmp_path, capsys):
    manifest = cohort(tmp_path)
    truncated_gz(tmp_path / "img" / "s2.nii.gz")
    assert main(["validate", str(manifest)]) == 2
    out, err = capsys.readouterr()
    assert "error: img/s2.nii.gz (manifest.csv row 4 (sub-2 ses-1)): is truncated" in out
    assert err == f"loes validate: error: 1 error in {manifest}.\n"
    assert "Traceback" not in out + err


def test_cli_missing_source_and_lab_format(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.csv")]) == 2
    assert "not found" in capsys.readouterr().out
    images = tmp_path / "images"
    images.mkdir()
    save(images / "subject-00_session-00_space-MNI_brain_mprage_RAVEL.nii.gz", volume())
    (tmp_path / "lab.csv").write_text(
        "anonymized_subject_id,anonymized_session_id,scan,loes-score,Gd-enhanced\n"
        "subject-00,session-00,mprage.nii.gz,2.0,0\n"
        "subject-00,session-01,mprage_Gd.nii.gz,2.0,1\n"
    )
    args = ["validate", str(tmp_path / "lab.csv"), "--images-dir", str(images)]
    assert main([*args, "--format", "lab"]) == 0
    assert (
        "(lab, 2 rows read: 1 scan of 1 subject kept, 1 scan set aside (post-contrast scan "
        "(gd)), headers checked)"
    ) in capsys.readouterr().out
    assert main([*args, "--include-gd"]) == 2
    assert "image file not found" in capsys.readouterr().out


def test_a_scan_or_a_folder_of_scans_is_validated_as_predict_takes_it(tiny_manifest, tmp_path):
    scan = next(tiny_manifest.parent.glob("sub-001/ses-01/anat/*.nii.gz"))
    good = shutil.copy(scan, tmp_path / "good.nii.gz")
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(scan.read_bytes()[:2000])
    one = validate_dataset(cut)
    assert one.format == "scans"
    assert [p.severity for p in one.problems] == ["error"]
    assert "truncated" in one.problems[0].message
    assert validate_dataset(good).ok
    folder = validate_dataset(tmp_path)
    assert len(folder.table) == 2
    assert [p.where for p in folder.errors] == ["cut.nii.gz"]
