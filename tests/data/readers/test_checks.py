"""The checks every format's rows go through: scores, ids, duplicates, gd flags, items, masks."""

from __future__ import annotations

import math
import os

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
