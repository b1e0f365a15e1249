"""The lab's CSV: columns renamed, images found by name, post-contrast told by flag or name."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from loes.data import LAB_IMAGE_PATTERN, detect_format, load_dataset
from loes.data.readers import TableReading
from loes.data.readers.lab import read_lab
from loes.errors import LoesError
from tests.data.readers._helpers import errors_of, write_nifti

LAB_NAME = "{}_{}_space-MNI_brain_mprage_RAVEL.nii.gz"


def write_lab(tmp_path: Path) -> tuple[Path, Path]:
    images = tmp_path / "images"
    rows = [
        ("subject-00", "session-00", "mprage.nii.gz", "1.0", "0"),
        ("subject-00", "session-01", "mprage.nii.gz", "0.0", "0"),
        ("subject-01", "session-00", "mprage.nii.gz", "6.5", "0"),
        ("subject-01", "session-01", "mprage_Gd.nii.gz", "6.5", "1"),
        ("subject-02", "session-00", "mprage_Gd.nii.gz", "15.0", "0"),  # named Gd, flag unset
        ("subject-02", "session-01", "mprage.nii.gz", "15.0", "1"),  # flag set, name plain
    ]
    for i, (subject, session, *_) in enumerate(rows):
        write_nifti(images / LAB_NAME.format(subject, session), seed=i)
    header = "anonymized_subject_id,anonymized_session_id,scan,loes-score,Gd-enhanced\n"
    csv = tmp_path / "tables" / "regression.csv"
    csv.parent.mkdir()
    csv.write_text(header + "".join(",".join(row) + "\n" for row in rows))
    return csv, images


def test_lab_image_pattern_names_the_files():
    assert LAB_IMAGE_PATTERN.format(subject="a", session="b") == LAB_NAME.format("a", "b")


def test_lab_csv_with_images_folder(tmp_path):
    csv, images = write_lab(tmp_path)
    assert detect_format(csv) == "lab"
    table = load_dataset(csv, images_dir=images)
    assert table["subject"].tolist() == ["subject-00", "subject-00", "subject-01"]
    assert table["session"].tolist() == ["session-00", "session-01", "session-00"]
    assert table["loes_score"].tolist() == [1.0, 0.0, 6.5]
    assert table["image"][2] == os.path.abspath(
        images / LAB_NAME.format("subject-01", "session-00")
    )
    assert table["scan"].tolist() == ["mprage.nii.gz"] * 3


def test_lab_csv_include_gd_keeps_post_contrast_rows(tmp_path):
    csv, images = write_lab(tmp_path)
    table = load_dataset(csv, images_dir=images, include_gd=True)
    assert len(table) == 6
    assert table["gd"].tolist() == [False, False, False, True, True, True]


def test_lab_csv_without_images_dir_says_to_pass_it(tmp_path):
    csv, _ = write_lab(tmp_path)
    errors = errors_of(csv)
    assert len(errors) == 1
    assert "--images-dir" in errors[0]
    assert "none of the 3 images" in errors[0]


def test_lab_csv_missing_image_names_the_row(tmp_path):
    csv, images = write_lab(tmp_path)
    (images / LAB_NAME.format("subject-00", "session-01")).unlink()
    errors = errors_of(csv, images_dir=images)
    assert errors == [
        "regression.csv row 3 (subject-00 session-01): image file not found: "
        f"{os.path.abspath(images / LAB_NAME.format('subject-00', 'session-01'))}; fix the path "
        f"(the lab's images are named {{subject}}_{{session}}_space-MNI_brain_mprage_RAVEL.nii.gz"
        f" in --images-dir {images})."
    ]


def test_lab_csv_missing_column(tmp_path):
    csv = tmp_path / "lab.csv"
    csv.write_text("anonymized_subject_id,anonymized_session_id,scan\nsubject-00,session-00,x\n")
    with pytest.raises(LoesError, match=r"lab\.csv: missing column loes-score"):
        load_dataset(csv, images_dir=tmp_path)


def test_lab_score_messages_name_the_labs_column(tmp_path):
    csv, images = write_lab(tmp_path)
    csv.write_text(
        csv.read_text().replace(
            "subject-00,session-00,mprage.nii.gz,1.0", "subject-00,session-00,mprage.nii.gz,"
        )
    )
    assert errors_of(csv, images_dir=images) == [
        "regression.csv row 2 (subject-00 session-00): loes-score is missing; fill in the total "
        "Loes score (0-34) or drop the row."
    ]


# --- what the reader hands to the checks ---------------------------------------------------


def test_read_lab_gives_our_columns_and_the_gd_of_each_row(tmp_path):
    csv, _ = write_lab(tmp_path)
    raw = read_lab(csv, None, TableReading(str(csv), "lab"))
    assert list(raw.table.columns) == ["subject", "session", "scan", "loes_score", "gd", "image"]
    # flag or name: set on rows 4-6 only
    assert raw.table["gd"].tolist() == [False, False, False, True, True, True]
    assert raw.table["image"][0] == os.path.abspath(
        csv.parent / LAB_NAME.format("subject-00", "session-00")
    )
    assert raw.where[0] == "regression.csv row 2 (subject-00 session-00)"
    assert raw.score_column == "loes-score"
    assert raw.guessed_images_dir == str(csv.parent)
    assert raw.image_hint == (
        f"the lab's images are named {LAB_IMAGE_PATTERN} in the CSV folder {csv.parent}"
    )


def test_read_lab_with_images_dir_guesses_nothing(tmp_path):
    csv, images = write_lab(tmp_path)
    raw = read_lab(csv, images, TableReading(str(csv), "lab"))
    assert raw.guessed_images_dir is None
    assert raw.image_hint.endswith(f" in --images-dir {images}")


def test_read_lab_keeps_an_unreadable_gd_flag_as_text(tmp_path):
    csv = tmp_path / "lab.csv"
    csv.write_text(
        "anonymized_subject_id,anonymized_session_id,scan,loes-score,Gd-enhanced\n"
        "s1,t1,mprage,1,maybe\ns1,t2,post_gd_mprage,1,\ns1,t3,agdx,1,no\n"
    )
    raw = read_lab(csv, tmp_path, TableReading(str(csv), "lab"))
    # "gd" as a token of the scan name counts, inside a word it does not
    assert raw.table["gd"].tolist() == ["maybe", True, False]
