"""The project's manifest: columns kept, ids as text, paths made absolute, rows located."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from loes.data import detect_format, load_dataset
from loes.data.readers import TableReading
from loes.data.readers.manifest import read_manifest
from loes.errors import LoesError
from tests.data.readers._helpers import errors_of, manifest_rows, write_manifest, write_nifti


@pytest.mark.parametrize("name", ["manifest.csv", "manifest.tsv"])
def test_manifest_csv_and_tsv(tmp_path, name):
    path = write_manifest(tmp_path, manifest_rows(), name)
    table = load_dataset(path)
    assert detect_format(path) == "manifest"
    assert list(table.columns[:5]) == ["subject", "session", "image", "loes_score", "gd"]
    assert table["subject"].tolist() == ["sub-007", "sub-007", "sub-012"]
    assert table["loes_score"].tolist() == [0.0, 4.5, 12.0]
    assert table["image"][0] == os.path.abspath(tmp_path / "images/sub-007_ses-01.nii.gz")
    assert all(Path(image).is_absolute() for image in table["image"])
    # optional columns kept, numbers as numbers
    assert table["age"].tolist() == [6.5, 7.0, 9.0]
    assert table["site"].tolist() == ["A", "A", "B"]
    assert table["pattern"][2] == "anterior"
    assert table["corpus_callosum_splenium"].tolist() == [0.0, 1.0, 0.5]
    assert not table["gd"].any()


def test_manifest_ids_stay_strings_and_absolute_paths_kept(tmp_path):
    image = write_nifti(tmp_path / "elsewhere" / "a.nii.gz")
    pd.DataFrame(
        [{"subject": "007", "session": "01", "image": str(image), "loes_score": "3"}]
    ).to_csv(tmp_path / "m.csv", index=False)
    table = load_dataset(tmp_path / "m.csv")
    assert table.loc[0, "subject"] == "007"
    assert table.loc[0, "session"] == "01"
    assert table.loc[0, "image"] == str(image)


def test_manifest_images_dir_is_the_base_of_relative_paths(tmp_path):
    write_nifti(tmp_path / "data" / "a.nii.gz")
    (tmp_path / "tables").mkdir()
    pd.DataFrame([{"subject": "s1", "session": "t1", "image": "a.nii.gz", "loes_score": 1}]).to_csv(
        tmp_path / "tables" / "m.csv", index=False
    )
    table = load_dataset(tmp_path / "tables" / "m.csv", images_dir=tmp_path / "data")
    assert table.loc[0, "image"] == os.path.abspath(tmp_path / "data" / "a.nii.gz")
    with pytest.raises(LoesError, match=r"image file not found: .*tables/a\.nii\.gz"):
        load_dataset(tmp_path / "tables" / "m.csv")


def test_manifest_gd_rows_dropped_unless_included(tmp_path):
    rows = manifest_rows()
    for row, gd in zip(rows, [0, 1, 0], strict=True):
        row["gd"] = gd
    path = write_manifest(tmp_path, rows)
    assert load_dataset(path)["session"].tolist() == ["ses-01", "ses-01"]
    table = load_dataset(path, include_gd=True)
    assert table["gd"].tolist() == [False, True, False]


def test_missing_manifest_columns_are_named(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("subject,image\ns1,a.nii.gz\n")
    with pytest.raises(LoesError) as error:
        load_dataset(path)
    assert "m.csv: missing column session (found subject, image)" in str(error.value)


# --- what the reader hands to the checks ---------------------------------------------------


def test_read_manifest_gives_raw_rows_and_where_they_are(tmp_path):
    (tmp_path / "m.csv").write_text(
        "subject,session,image,loes_score,lesion_mask\n"
        "007,01,a.nii.gz, 3 ,masks/a.nii.gz\n"
        "008,01,/abs/b.nii.gz,n/a,\n"
    )
    reading = TableReading("m.csv", "manifest")
    raw = read_manifest(tmp_path / "m.csv", None, reading)
    assert reading.problems == []
    assert raw.where == ("m.csv row 2 (007 01)", "m.csv row 3 (008 01)")
    assert raw.table["image"].tolist() == [os.path.abspath(tmp_path / "a.nii.gz"), "/abs/b.nii.gz"]
    assert raw.table["lesion_mask"].tolist() == [os.path.abspath(tmp_path / "masks/a.nii.gz"), ""]
    # scores stay as written (stripped) for the checks to parse and quote
    assert raw.table["loes_score"].tolist() == ["3", "n/a"]
    assert raw.image_hint == f"relative paths are read from the manifest's folder {tmp_path}"
    assert raw.score_column == "loes_score"
    assert (raw.score_where, raw.unscored, raw.guessed_images_dir) == (None, None, None)


def test_read_manifest_with_images_dir_says_so_in_its_hint(tmp_path):
    (tmp_path / "m.csv").write_text("subject,session,image,loes_score\ns1,t1,a.nii.gz,1\n")
    raw = read_manifest(tmp_path / "m.csv", tmp_path / "data", TableReading("m.csv", "manifest"))
    assert raw.table["image"][0] == os.path.abspath(tmp_path / "data" / "a.nii.gz")
    assert (
        raw.image_hint == f"relative paths are read from --images-dir's folder {tmp_path / 'data'}"
    )


def test_read_manifest_without_required_columns_returns_none(tmp_path):
    (tmp_path / "m.csv").write_text("subject,image\ns1,a.nii.gz\n")
    reading = TableReading("m.csv", "manifest")
    assert read_manifest(tmp_path / "m.csv", None, reading) is None
    assert [str(p) for p in reading.problems] == [
        "error: m.csv: missing column session (found subject, image); a manifest needs "
        "subject, session, image, and loes_score to train on."
    ]


@pytest.mark.parametrize(
    ("sep", "score"), [(";", "7,5"), ("\t", "7,5"), ("\t", "7.5"), (",", "7.5")]
)
def test_manifest_from_a_spreadsheet_in_any_locale(tmp_path, sep, score):
    """Excel in a European locale saves ``;`` and decimal commas; ids keep their zeros."""
    write_nifti(tmp_path / "a.nii.gz")
    write_nifti(tmp_path / "b.nii.gz", seed=1)
    lines = [
        ["subject", "session", "image", "loes_score", "age"],
        ["004", "01", "a.nii.gz", score, "6"],
        ["004", "02", "b.nii.gz", "0", score],
    ]
    path = tmp_path / "manifest.csv"
    path.write_bytes(("\ufeff" + "".join(sep.join(line) + "\r\n" for line in lines)).encode())
    table = load_dataset(path)
    assert table["subject"].tolist() == ["004", "004"]
    assert table["session"].tolist() == ["01", "02"]
    assert table["loes_score"].tolist() == [7.5, 0.0]
    assert table["age"].tolist() == [6.0, 7.5]


def test_manifest_rows_are_named_by_their_row_in_the_file(tmp_path):
    write_nifti(tmp_path / "a.nii.gz")
    (tmp_path / "m.csv").write_text(
        "subject,session,image,loes_score\n\ns,1,a.nii.gz,x\n,,,\ns,2,gone.nii.gz,1\n"
    )
    assert errors_of(tmp_path / "m.csv") == [
        "m.csv row 3 (s 1): loes_score 'x' is not a number; write the total Loes score as a "
        "number from 0 to 34.",
        f"m.csv row 5 (s 2): image file not found: {tmp_path / 'gone.nii.gz'}; fix the path "
        f"(relative paths are read from the manifest's folder {tmp_path}).",
    ]


def test_manifest_behind_a_broken_link(tmp_path):
    (tmp_path / "m.csv").symlink_to(".git/annex/objects/m.csv")
    with pytest.raises(LoesError, match=r"m\.csv: is a symbolic link to \.git/annex/objects/m"):
        load_dataset(tmp_path / "m.csv")
    with pytest.raises(LoesError, match="run `datalad get"):
        load_dataset(tmp_path / "m.csv", format="manifest")


def test_a_manifest_without_a_score_column_is_read_unscored_with_one_error(tmp_path):
    (tmp_path / "m.csv").write_text("subject,session,image\ns1,t1,a.nii.gz\ns2,t1,b.nii.gz\n")
    reading = TableReading("m.csv", "manifest")
    raw = read_manifest(tmp_path / "m.csv", None, reading)
    assert [str(p) for p in reading.problems] == [
        "error: m.csv: no loes_score column (found subject, session, image); a manifest to "
        "train on needs one (loes predict scores scans without it)."
    ]
    assert raw.table["loes_score"].tolist() == ["", ""]
    assert raw.unscored == (True, True)  # the checks do not report each row's score again


@pytest.mark.parametrize("name", ["Loes Score", "LOES_SCORE", "score", "loes"])
def test_a_misspelt_score_column_is_refused_not_read_unscored(tmp_path, name):
    (tmp_path / "m.csv").write_text(f"subject,session,image,{name}\ns1,t1,a.nii.gz,4\n")
    with pytest.raises(LoesError, match=f"column '{name}' looks like the score; name it"):
        read_manifest(tmp_path / "m.csv", None, TableReading("m.csv", "manifest"))
