"""The checks every format's rows go through: scores, ids, duplicates, gd flags, items, masks."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd
import pytest

from loes.data import MAX_LOES_SCORE, load_dataset, validate_dataset
from loes.data.loes_items import ITEMS
from loes.data.readers import RawTable, TableReading
from loes.data.readers.checks import FIRST_COLUMNS, check_rows
from loes.errors import LoesError
from tests.data.readers._helpers import errors_of, manifest_rows, write_manifest, write_nifti


@pytest.mark.parametrize(
    ("score", "message"),
    [
        ("", "loes_score is missing; fill in the total Loes score (0-34) or drop the row."),
        ("abc", "loes_score 'abc' is not a number"),
        ("nan", "loes_score is 'nan'; write the total Loes score (0-34)."),
        ("inf", "loes_score is 'inf'"),
        ("35", "loes_score 35 is outside 0-34"),
        ("-0.5", "loes_score -0.5 is outside 0-34"),
    ],
)
def test_bad_scores(tmp_path, score, message):
    rows = manifest_rows()
    path = write_manifest(tmp_path, rows)
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table.loc[1, "loes_score"] = score
    table.to_csv(path, index=False)
    errors = errors_of(path)
    assert len(errors) == 1
    assert errors[0].startswith(f"manifest.csv row 3 (sub-007 ses-02): {message}")
    with pytest.raises(LoesError, match=r"manifest\.csv row 3 \(sub-007 ses-02\)"):
        load_dataset(path)


def test_score_off_the_half_grid_is_a_warning(tmp_path):
    rows = manifest_rows()
    rows[2]["loes_score"] = 3.25
    path = write_manifest(tmp_path, rows)
    report = validate_dataset(path)
    assert report.ok
    assert [str(w) for w in report.warnings] == [
        "warning: manifest.csv row 4 (sub-012 ses-01): loes_score 3.25 is not a multiple of 0.5 "
        "(items score 0, 0.5 or 1); check for a typo (an average of several readers is fine)."
    ]
    assert load_dataset(path)["loes_score"][2] == 3.25


def test_duplicates_and_same_image_twice(tmp_path):
    rows = manifest_rows()
    rows.append(dict(rows[0], image="images/other.nii.gz"))  # same subject/session again
    rows.append(dict(rows[2], session="ses-02"))  # same image as row 4
    path = write_manifest(tmp_path, rows)
    errors = errors_of(path)
    assert errors == [
        "manifest.csv row 5 (sub-007 ses-01): sub-007 ses-01 is listed again (first at "
        "manifest.csv row 2 (sub-007 ses-01)); keep one row per scan.",
        f"manifest.csv row 6 (sub-012 ses-02): image "
        f"{os.path.abspath(tmp_path / 'images/sub-012_ses-01.nii.gz')} is also listed at "
        "manifest.csv row 4 (sub-012 ses-01); each scan needs its own file (a copy-paste slip?).",
    ]


def test_empty_ids_and_bad_gd_flag(tmp_path):
    rows = manifest_rows()
    rows[0]["subject"] = ""
    rows[1]["gd"] = "maybe"
    path = write_manifest(tmp_path, rows)
    errors = errors_of(path, include_gd=True)
    assert (
        "manifest.csv row 3 (sub-007 ses-02): gd is 'maybe'; write 1 for post-contrast" in errors[0]
    )
    assert (
        errors[1] == "manifest.csv row 2 ( ses-01): subject is empty; every row needs a subject id."
    )


def test_item_subscores_and_lesion_masks(tmp_path):
    rows = manifest_rows()[:2]
    for row in rows:
        row.pop("corpus_callosum_splenium")
        row |= {item.column: 0.0 for item in ITEMS}
        row["lesion_mask"] = row["image"].replace(".nii.gz", "_mask.nii.gz")
    rows[1]["corpus_callosum_splenium"] = 1.0  # items sum to 1, total says 4.5
    rows[0]["global_atrophy"] = 9  # scored 0-3
    path = write_manifest(tmp_path, rows)
    write_nifti(tmp_path / rows[0]["lesion_mask"])
    report = validate_dataset(path)
    assert [str(p) for p in report.problems] == [
        "error: manifest.csv row 2 (sub-007 ses-01): global_atrophy is '9.0'; this item scores "
        "from 0 to 3.",
        "warning: manifest.csv row 2 (sub-007 ses-01): the item subscores sum to 9 but "
        "loes_score is 0; one of them is wrong (the total is what the model learns).",
        "warning: manifest.csv row 3 (sub-007 ses-02): the item subscores sum to 1 but "
        "loes_score is 4.5; one of them is wrong (the total is what the model learns).",
        "warning: manifest.csv row 3 (sub-007 ses-02): lesion_mask not found: "
        f"{tmp_path / 'images/sub-007_ses-02_mask.nii.gz'}; fix the path or clear it.",
    ]
    assert report.table["lesion_mask"][0] == str(tmp_path / "images/sub-007_ses-01_mask.nii.gz")


# --- check_rows on a RawTable made by hand -------------------------------------------------


def raw_rows(tmp_path, scores, **fields) -> RawTable:
    """Rows ``a``, ``b``, ... of subject ``s`` with existing images and these score cells."""
    names = [chr(ord("a") + i) for i in range(len(scores))]
    images = [str(write_nifti(tmp_path / f"{name}.nii.gz")) for name in names]
    table = pd.DataFrame(
        {"subject": "s", "session": names, "image": images, "loes_score": scores} | fields
    )
    return RawTable(table, tuple(f"row {name}" for name in names), image_hint="hint")


def problems(reading: TableReading) -> list[str]:
    return [str(p) for p in reading.problems]


def test_the_score_range_is_that_of_the_items(tmp_path):
    assert sum(item.max for item in ITEMS) == MAX_LOES_SCORE == 34.0
    reading = TableReading("t", "manifest")
    raw = raw_rows(tmp_path, [f"{MAX_LOES_SCORE:g}", f"{MAX_LOES_SCORE + 0.5:g}", "0"])
    table, _ = check_rows(raw, reading, include_gd=False)
    assert table["loes_score"].tolist() == [34.0, 34.5, 0.0]
    assert problems(reading) == [
        "error: row b: loes_score 34.5 is outside 0-34, the range of the Loes score; check for "
        "a typo or a score on another scale."
    ]


def test_check_rows_orders_columns_and_parses_numbers(tmp_path):
    raw = raw_rows(tmp_path, [" 1 ", "2.5"], age=["7", ""], _private=["x", "y"], site=["A", "2"])
    reading = TableReading("t", "manifest")
    table, where = check_rows(raw, reading, include_gd=False)
    assert reading.problems == []
    assert tuple(table.columns) == (*FIRST_COLUMNS, "age", "site")  # _private dropped
    assert table["loes_score"].tolist() == [1.0, 2.5]
    assert table["gd"].tolist() == [False, False]
    assert table["age"][0] == 7.0
    assert math.isnan(table["age"][1])
    assert table["site"].tolist() == ["A", "2"]  # not every cell a number: left as text
    assert where == ("row a", "row b")


def test_check_rows_drops_post_contrast_rows_with_their_places(tmp_path):
    raw = raw_rows(tmp_path, ["1", "x", "3"], gd=["0", "1", "0"])
    reading = TableReading("t", "manifest")
    table, where = check_rows(raw, reading, include_gd=False)
    assert table["session"].tolist() == ["a", "c"]
    assert where == ("row a", "row c")
    assert reading.problems == []  # the bad score was on a dropped row
    reading = TableReading("t", "manifest")
    table, where = check_rows(raw, reading, include_gd=True)
    assert table["gd"].tolist() == [False, True, False]
    assert where == ("row a", "row b", "row c")
    assert problems(reading) == [
        "error: row b: loes_score 'x' is not a number; write the total Loes score as a number "
        "from 0 to 34."
    ]


def test_check_rows_reports_scores_where_they_came_from_and_once(tmp_path):
    raw = raw_rows(tmp_path, ["x", "", "2"])
    raw = RawTable(
        raw.table,
        raw.where,
        image_hint="hint",
        score_column="score",
        score_where=("scores.tsv row 2", "scores.tsv row 3", "scores.tsv row 4"),
        unscored=(False, True, False),
    )
    reading = TableReading("t", "bids")
    table, _ = check_rows(raw, reading, include_gd=False)
    assert problems(reading) == [
        "error: scores.tsv row 2: score 'x' is not a number; write the total Loes score as a "
        "number from 0 to 34."
    ]
    assert math.isnan(table["loes_score"][0])
    assert math.isnan(table["loes_score"][1])  # already reported by the reader
    assert table["loes_score"][2] == 2.0


def test_check_rows_missing_images(tmp_path):
    raw = raw_rows(tmp_path, ["1", "2"])
    os.remove(raw.table["image"][1])
    reading = TableReading("t", "manifest")
    check_rows(raw, reading, include_gd=False)
    assert problems(reading) == [
        f"error: row b: image file not found: {raw.table['image'][1]}; fix the path (hint)."
    ]
    # a guessed folder holding none of the images: one error asking for the folder
    guessed = RawTable(raw.table, raw.where, "hint", guessed_images_dir="/guess")
    os.remove(raw.table["image"][0])
    reading = TableReading("lab.csv", "lab")
    check_rows(guessed, reading, include_gd=False)
    assert problems(reading) == [
        "error: lab.csv: none of the 2 images is in /guess; pass the folder holding "
        "{subject}_{session}_space-MNI_brain_mprage_RAVEL.nii.gz files with --images-dir."
    ]


def test_a_decimal_comma_or_a_typo_is_not_a_score(tmp_path):
    path = tmp_path / "m.csv"
    write_nifti(tmp_path / "a.nii.gz")
    write_nifti(tmp_path / "b.nii.gz", seed=1)
    path.write_text('subject,session,image,loes_score\ns,1,a.nii.gz,"7,5"\ns,2,b.nii.gz,1_0\n')
    assert errors_of(path) == [
        "m.csv row 2 (s 1): loes_score '7,5' is not a number; write it with a decimal point (7.5).",
        "m.csv row 3 (s 2): loes_score '1_0' is not a number; write the total Loes score as a "
        "number from 0 to 34.",
    ]


# (the first id, its other spelling, what tells them apart)
SPELLINGS = [
    ("004", "4", "leading zeros"),
    ("sub-004", "004", "a sub- prefix"),
    ("sub-01", "SUB-01", "case"),
    ("sub 01", "sub01", "blanks"),
    ("Sub-004", "4", "case, a sub- prefix and leading zeros"),
    ("P007a", "p7A", "case and leading zeros"),
]


@pytest.mark.parametrize(("first", "other", "difference"), SPELLINGS)
def test_one_subject_under_two_ids_is_a_warning(tmp_path, first, other, difference):
    rows = manifest_rows()
    rows[0]["subject"] = rows[1]["subject"] = first
    rows[2]["subject"] = other
    report = validate_dataset(write_manifest(tmp_path, rows))
    assert report.ok
    assert [str(p) for p in report.warnings] == [
        f"warning: manifest.csv row 4 ({other} ses-01): subject {other!r} (1 row) and subject "
        f"{first!r} (first at manifest.csv row 2 ({first} ses-01)) differ only by {difference}, "
        "so loes counts two subjects and may put the same brain in training and test. If they "
        "are one person, write the id the same way in every row; if not, make the ids clearly "
        "different."
    ]
    assert report.table["subject"].tolist() == [first, first, other]  # kept as written


@pytest.mark.parametrize(("a", "b"), [("sub-01", "sub-10"), ("1", "10"), ("0", "00a"), ("A", "B")])
def test_different_ids_are_not_taken_for_one_subject(tmp_path, a, b):
    rows = manifest_rows()
    rows[0]["subject"], rows[2]["subject"] = a, b
    assert validate_dataset(write_manifest(tmp_path, rows)).problems == []


def test_check_rows_names_why_an_image_cannot_be_reached(tmp_path):
    raw = raw_rows(tmp_path, ["1", "2", "3", "4"])
    images = [Path(image) for image in raw.table["image"]]
    annexed = ".git/annex/objects/Xy/Zw/MD5E-s9--0a.nii.gz/MD5E-s9--0a.nii.gz"
    images[0].unlink()
    images[0].symlink_to(annexed)  # a DataLad dataset before `datalad get`
    images[1].unlink()
    images[1].symlink_to(tmp_path / "gone.nii.gz")
    images[2].unlink()
    images[2].symlink_to(images[2])  # a loop
    file = tmp_path / "file"
    file.write_text("")
    frame = raw.table.assign(image=[*raw.table["image"][:3], str(file / "x.nii.gz")])
    reading = TableReading("t", "manifest")
    check_rows(RawTable(frame, raw.where, "hint"), reading, include_gd=False)
    assert problems(reading) == [
        f"error: row a: image {images[0]} is a symbolic link to {annexed}, which is missing: the "
        "content has not been fetched (a DataLad or git-annex dataset); run `datalad get "
        f"{images[0]}` (or `git annex get {images[0]}`) in the dataset.",
        f"error: row b: image {images[1]} is a symbolic link to {tmp_path / 'gone.nii.gz'}, "
        "which is missing; fix the link or put the file in its place (in a DataLad or git-annex "
        f"dataset, fetch the content with `datalad get {images[1]}`).",
        f"error: row c: image {images[2]} is a symbolic link that leads back to itself (a loop); "
        "fix or replace the link.",
        f"error: row d: image {file / 'x.nii.gz'} cannot exist: {file} is a file, not a folder; "
        "fix the path.",
    ]


def test_check_rows_lab_folder_holding_the_only_image_not(tmp_path):
    raw = raw_rows(tmp_path, ["1"])
    os.remove(raw.table["image"][0])
    guessed = RawTable(raw.table, raw.where, "hint", guessed_images_dir="/guess")
    reading = TableReading("lab.csv", "lab")
    check_rows(guessed, reading, include_gd=False)
    assert problems(reading) == [
        "error: lab.csv: the image is not in /guess; pass the folder holding "
        "{subject}_{session}_space-MNI_brain_mprage_RAVEL.nii.gz files with --images-dir."
    ]


def test_check_rows_lesion_mask_behind_a_broken_link(tmp_path):
    raw = raw_rows(tmp_path, ["1"])
    mask = tmp_path / "mask.nii.gz"
    mask.symlink_to("../.git/annex/objects/a/b/c")
    reading = TableReading("t", "manifest")
    check_rows(RawTable(raw.table.assign(lesion_mask=str(mask)), raw.where, "h"), reading, False)
    assert problems(reading) == [
        f"warning: row a: lesion_mask {mask} is a symbolic link to ../.git/annex/objects/a/b/c, "
        f"which is missing: the content has not been fetched (a DataLad or git-annex dataset); "
        f"run `datalad get {mask}` (or `git annex get {mask}`) in the dataset."
    ]
