"""loes.data.readers itself: telling the format, dispatching to its reader, raising once."""

from __future__ import annotations

import re

import pytest

from loes.data import FORMATS, detect_format, load_dataset
from loes.data.readers import read_table
from loes.errors import LoesError
from tests.data.readers._helpers import manifest_rows, write_manifest, write_nifti


def test_unknown_columns_cannot_be_detected(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(
        LoesError, match=r"t\.csv: cannot tell the format from the columns \(a, b\)"
    ):
        detect_format(path)
    with pytest.raises(LoesError, match="pass --format"):
        load_dataset(path)


def test_missing_source_and_unknown_format(tmp_path):
    with pytest.raises(LoesError, match="not found"):
        load_dataset(tmp_path / "nope.csv")
    with pytest.raises(LoesError, match="unknown format 'xml'"):
        load_dataset(tmp_path / "nope.csv", format="xml")


def test_explicit_format_overrides_detection(tmp_path):
    path = write_manifest(tmp_path, manifest_rows())
    with pytest.raises(LoesError, match="missing columns anonymized_subject_id"):
        load_dataset(path, format="lab")


def test_load_dataset_lists_every_error_and_points_to_validate(tmp_path):
    rows = manifest_rows()
    for row in rows:
        row["loes_score"] = "x"
    path = write_manifest(tmp_path, rows)
    with pytest.raises(LoesError) as error:
        load_dataset(path)
    message = str(error.value)
    assert message.startswith(f"{path}: 3 errors in the data:")
    assert "loes_score 'x' is not a number" in message  # once, or once per row
    assert re.search(rf"Run `loes validate (--verbose )?{re.escape(str(path))}`", message)


# --- read_table: the reading behind load_dataset and validate_dataset ----------------------


def test_read_table_gives_the_format_the_table_and_each_rows_place(tmp_path):
    path = write_manifest(tmp_path, manifest_rows())
    reading = read_table(path)
    assert FORMATS == ("manifest", "lab", "bids")
    assert (reading.source, reading.format) == (str(path), "manifest")
    assert reading.problems == []
    assert reading.where == (
        "manifest.csv row 2 (sub-007 ses-01)",
        "manifest.csv row 3 (sub-007 ses-02)",
        "manifest.csv row 4 (sub-012 ses-01)",
    )
    assert reading.table.equals(load_dataset(path))
    assert not any(str(column).startswith("_") for column in reading.table.columns)


def test_read_table_of_an_unreadable_source_has_no_table(tmp_path):
    reading = read_table(tmp_path, images_dir=tmp_path)
    assert (reading.format, reading.table, reading.where) == ("bids", None, ())
    assert [str(p) for p in reading.errors] == [
        f"error: {tmp_path}: --images-dir is for a manifest or the lab's CSV; a BIDS dataset "
        "holds its own images: leave it out."
    ]
    reading = read_table(tmp_path, format="manifest")
    assert [p.message for p in reading.errors] == [
        "is not a file; the manifest format is a CSV or TSV table."
    ]


def test_read_table_of_an_empty_manifest_is_an_empty_table(tmp_path):
    (tmp_path / "m.csv").write_text("subject,session,image,loes_score,gd\n")
    reading = read_table(tmp_path / "m.csv")
    assert reading.problems == []
    assert list(reading.table.columns) == ["subject", "session", "image", "loes_score", "gd"]
    assert len(reading.table) == 0


def test_read_table_keeps_post_contrast_rows_only_when_asked(tmp_path):
    write_nifti(tmp_path / "a.nii.gz")
    write_nifti(tmp_path / "b.nii.gz")
    (tmp_path / "m.csv").write_text(
        "subject,session,image,loes_score,gd\ns,1,a.nii.gz,1,1\ns,2,b.nii.gz,2,0\n"
    )
    assert read_table(tmp_path / "m.csv").where == ("m.csv row 3 (s 2)",)
    assert read_table(tmp_path / "m.csv", include_gd=True).where == (
        "m.csv row 2 (s 1)",
        "m.csv row 3 (s 2)",
    )


@pytest.mark.parametrize("format", ["manifest", "lab"])
def test_a_missing_images_dir_is_one_error(tmp_path, format):
    path = write_manifest(tmp_path, manifest_rows())
    reading = read_table(path, format=format, images_dir=tmp_path / "missing")
    assert [p.message for p in reading.errors] == [
        f"--images-dir {tmp_path / 'missing'} is not a folder; give the folder that holds the "
        "images."
    ]
    assert reading.table is None
