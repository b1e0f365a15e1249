"""``loes cv`` records the scans it read but did not use (``set_aside.csv``), and its report
says how many and why: the tiny cohort's 7 post-contrast scans, 2 of its subjects wholly."""

import pandas as pd
import pytest

from loes.data.readers import SET_ASIDE_COLUMNS
from loes.errors import LoesError
from loes.pipeline.run.set_aside import (
    SET_ASIDE_FILE,
    read_set_aside,
    set_aside_of,
    write_set_aside,
)


@pytest.mark.slow
def test_a_cross_validation_records_the_scans_it_set_aside(tiny_run, tiny_manifest):
    manifest = pd.read_csv(tiny_manifest, dtype={"subject": str, "session": str})
    post_contrast = manifest[manifest["gd"] == 1]
    assert len(post_contrast) == 7  # the tiny cohort's post-contrast scans
    kept = pd.read_csv(tiny_run / "scans.csv", dtype={"subject": str, "session": str})
    aside = read_set_aside(tiny_run)
    assert len(kept) + len(aside) == len(manifest)  # rows read = kept + set aside
    assert sorted(zip(aside["subject"], aside["session"], strict=True)) == sorted(
        zip(post_contrast["subject"], post_contrast["session"], strict=True)
    )
    assert aside["loes_score"].tolist() == post_contrast["loes_score"].tolist()
    assert aside["reason"].str.startswith("post-contrast scan (gd)").all()
    only_gd = sorted(set(post_contrast["subject"]) - set(kept["subject"]))
    assert only_gd == ["sub-003", "sub-006"]
    report = pd.read_json(tiny_run / "report.json", typ="series")
    s = report["set_aside"]
    assert (s["n_read"], s["n_kept"], s["n_set_aside"]) == (22, 15, 7)
    assert s["subjects_left_out"] == only_gd
    assert (s["subjects_read"], s["subjects_kept"]) == (8, 6)
    md = (tiny_run / "report.md").read_text()
    assert (
        "- **Set aside**: 7 of 22 scans read: post-contrast scan (gd) (7 scans of 5 subjects); "
        "2 subjects had no other scan and are not in the run: sub-003, sub-006"
    ) in md


def test_the_file_round_trips_and_says_nothing_was_set_aside(tmp_path):
    table = pd.DataFrame({"subject": ["s1"], "session": ["a"]})
    table.attrs["set_aside"] = [
        {
            "image": "/x/s2.nii.gz",
            "subject": "s2",
            "session": "",
            "loes_score": 4.0,
            "reason": "post-contrast scan (gd)",
        }
    ]
    write_set_aside(tmp_path, table)
    back = read_set_aside(tmp_path)
    assert back.to_dict("records") == set_aside_of(table).to_dict("records")
    assert back["session"].tolist() == [""]
    # a table that carries no record: a header alone, an empty frame with every column
    write_set_aside(tmp_path, pd.DataFrame({"subject": ["s1"]}))
    assert (tmp_path / SET_ASIDE_FILE).read_text() == ",".join(SET_ASIDE_COLUMNS) + "\n"
    assert read_set_aside(tmp_path).empty
    assert read_set_aside(tmp_path / "nowhere") is None


def test_a_broken_file_is_named(tmp_path):
    (tmp_path / SET_ASIDE_FILE).write_text("subject,session\ns1,a\n")
    with pytest.raises(LoesError, match=r"set_aside.csv lacks the column\(s\) image, "):
        read_set_aside(tmp_path)
