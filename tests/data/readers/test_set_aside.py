"""Rows the readers set aside on purpose (post-contrast scans without ``include_gd``) are
recorded with the reason, so that rows read = rows kept + rows set aside."""

import math

from loes.data import validate_dataset
from loes.data.readers import SET_ASIDE_COLUMNS, read_table
from loes.data.readers.checks import POST_CONTRAST

from ._helpers import manifest_rows, write_manifest


def _rows_with_gd():
    rows = manifest_rows()
    for row in rows:
        row["gd"] = 0
    extra = [
        {**rows[1], "session": "ses-03", "image": "images/sub-007_ses-03_ce.nii.gz", "gd": 1},
        {"subject": "sub-020", "session": "ses-01", "image": "images/sub-020_ses-01_ce.nii.gz"},
    ]
    extra[1] |= {"loes_score": 9.5, "gd": 1}
    return rows + extra


def test_post_contrast_rows_are_set_aside_with_the_reason(tmp_path):
    path = write_manifest(tmp_path, _rows_with_gd())
    reading = read_table(path)
    assert reading.errors == []
    assert len(reading.table) == 3
    aside = reading.set_aside
    assert list(aside.columns) == list(SET_ASIDE_COLUMNS)
    assert len(reading.table) + len(aside) == 5  # every row read is kept or set aside
    assert aside[["subject", "session"]].values.tolist() == [
        ["sub-007", "ses-03"],
        ["sub-020", "ses-01"],
    ]
    assert aside["loes_score"].tolist() == [4.5, 9.5]
    assert aside["image"].tolist() == [
        str(tmp_path / "images/sub-007_ses-03_ce.nii.gz"),
        str(tmp_path / "images/sub-020_ses-01_ce.nii.gz"),
    ]
    assert set(aside["reason"]) == {POST_CONTRAST}
    assert "data.include_gd" in POST_CONTRAST
    # sub-020 had only a post-contrast scan: it is not in the table at all
    assert "sub-020" not in set(reading.table["subject"])


def test_with_include_gd_nothing_is_set_aside(tmp_path):
    reading = read_table(write_manifest(tmp_path, _rows_with_gd()), include_gd=True)
    assert len(reading.table) == 5
    assert reading.set_aside.empty
    assert list(reading.set_aside.columns) == list(SET_ASIDE_COLUMNS)


def test_an_unreadable_score_of_a_row_set_aside_is_nan(tmp_path):
    rows = _rows_with_gd()
    rows[-1]["loes_score"] = "n/a"
    aside = read_table(write_manifest(tmp_path, rows)).set_aside
    assert aside["loes_score"].tolist()[0] == 4.5
    assert math.isnan(aside["loes_score"].tolist()[1])


def test_validate_says_how_many_were_set_aside_and_why(tmp_path):
    path = write_manifest(tmp_path, _rows_with_gd())
    report = validate_dataset(path)
    assert len(report.set_aside) == 2
    assert report.summary() == (
        f"{path} (manifest, 5 rows read: 3 scans of 2 subjects kept, 2 scans set aside "
        "(post-contrast scan (gd)), headers checked): 0 errors, 0 warnings"
    )
    # every row post-contrast: none kept, and the summary says why
    only_gd = [{**row, "gd": 1} for row in manifest_rows()]
    folder = tmp_path / "only_gd"
    report = validate_dataset(write_manifest(folder, only_gd))
    assert report.table.empty
    assert "no scans kept, 3 scans set aside (post-contrast scan (gd))" in report.summary()
