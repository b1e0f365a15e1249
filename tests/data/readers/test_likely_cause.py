"""A path in a table that does not exist is diagnosed from what exists around it."""

import pandas as pd
import pytest

from loes.data.readers import read_table
from loes.data.readers.files import likely_cause


@pytest.fixture
def folder(tmp_path):
    for name in ("sub-004_ses-01_T1w.nii", "Sub-005_T1w.nii.gz", "sub-006_ses-baseline_T1w.nii.gz"):
        (tmp_path / name).write_bytes(b"x")
    return tmp_path


@pytest.mark.parametrize(
    ("name", "cause"),
    [
        (
            "sub-004_ses-01_T1w.nii.gz",
            "the same scan with another extension: {}/sub-004_ses-01_T1w.nii exists",
        ),
        ("sub-005_T1w.nii.gz", "the same name in other letter case: {}/Sub-005_T1w.nii.gz exists"),
        (
            "sub-006_ses-baselne_T1w.nii.gz",
            "a typo: the closest file there is {}/sub-006_ses-baseline_T1w.nii.gz",
        ),
    ],
)
def test_a_missing_file_beside_its_likely_self(folder, name, cause):
    assert likely_cause(folder / name) == cause.format(folder)


def test_a_missing_folder_and_a_windows_path(folder):
    gone = folder / "mounted" / "study" / "scan.nii.gz"
    assert likely_cause(gone) == (
        f"a folder missing on this machine: {folder / 'mounted'} does not exist (a drive not "
        "mounted, or a path from another computer)"
    )
    assert likely_cause(r"D:\ALD\scan.nii.gz").startswith("a Windows path")
    assert likely_cause(folder / "unrelated.nii.gz") is None


def test_the_table_error_says_what_the_missing_path_most_likely_is(folder):
    table = folder / "scores.csv"
    pd.DataFrame(
        {
            "subject": ["sub-004"],
            "session": ["ses-01"],
            "image": ["sub-004_ses-01_T1w.nii.gz"],
            "loes_score": [2.0],
        }
    ).to_csv(table, index=False)
    errors = [p.message for p in read_table(table).errors]
    assert any(
        "image file not found" in m and "most likely the same scan with another extension" in m
        for m in errors
    ), errors
