"""BIDS: images found under sub-*/[ses-*/]anat/, scores from the most specific TSV."""

from __future__ import annotations

import os

import pytest

from loes.data import NO_SESSION, detect_format, load_dataset, validate_dataset
from loes.data.readers import TableReading
from loes.data.readers.bids import read_bids
from loes.errors import LoesError
from tests.data.readers._helpers import errors_of, write_nifti


def test_bids_session_with_two_runs_asks_which_to_use(tmp_path):
    root = tmp_path / "bids"
    write_nifti(root / "sub-01/ses-01/anat/sub-01_ses-01_run-1_T1w.nii.gz")
    write_nifti(root / "sub-01/ses-01/anat/sub-01_ses-01_run-2_T1w.nii.gz")
    (root / "phenotype").mkdir(parents=True)
    (root / "phenotype/loes.tsv").write_text(
        "participant_id\tsession_id\tloes_score\nsub-01\tses-01\t2\n"
    )
    problems = validate_dataset(root).problems
    assert [(p.severity, p.where) for p in problems] == [
        ("error", "sub-01/ses-01/anat/sub-01_ses-01_run-2_T1w.nii.gz")
    ]
    assert problems[0].message == (
        "is a second image of sub-01 ses-01 (first: sub-01/ses-01/anat/sub-01_ses-01_run-1_T1w"
        ".nii.gz); loes uses one scan per session: move the other runs out of anat/ (e.g. into "
        "sourcedata/), or list the scans to use in a manifest."
    )


def test_bids_with_phenotype_scores(tmp_path):
    root = tmp_path / "bids"
    write_nifti(root / "sub-01/ses-01/anat/sub-01_ses-01_T1w.nii.gz")
    write_nifti(root / "sub-01/ses-02/anat/sub-01_ses-02_T1w.nii.gz")
    write_nifti(root / "sub-01/ses-02/anat/sub-01_ses-02_ce-gadolinium_T1w.nii.gz")
    write_nifti(root / "sub-02/ses-01/anat/sub-02_ses-01_T1w.nii.gz")
    write_nifti(root / "sub-02/ses-01/anat/sub-02_ses-01_FLAIR.nii.gz")
    (root / "participants.tsv").write_text(
        "participant_id\tage\tsite\nsub-01\t7\tA\nsub-02\t9\tB\n"
    )
    (root / "phenotype").mkdir()
    (root / "phenotype/loes.tsv").write_text(
        "participant_id\tsession_id\tloes_score\n"
        "sub-01\tses-01\t2\nsub-01\tses-02\t3.5\nsub-02\tses-01\t0\n"
    )
    assert detect_format(root) == "bids"
    table = load_dataset(root)
    assert list(zip(table["subject"], table["session"], table["loes_score"], strict=True)) == [
        ("sub-01", "ses-01", 2.0),
        ("sub-01", "ses-02", 3.5),
        ("sub-02", "ses-01", 0.0),
    ]
    assert table["image"][0] == os.path.abspath(
        root / "sub-01/ses-01/anat/sub-01_ses-01_T1w.nii.gz"
    )
    assert table["site"].tolist() == ["A", "A", "B"]
    assert table["age"].tolist() == [7.0, 7.0, 9.0]
    with_gd = load_dataset(root, include_gd=True)
    assert with_gd["gd"].tolist() == [False, False, True, False]
    flair = load_dataset(root, suffix="FLAIR")
    assert flair["image"].str.endswith("_FLAIR.nii.gz").all()


def test_bids_with_sessions_tsv(tmp_path):
    root = tmp_path / "bids"
    for session in ("ses-1", "ses-2"):
        write_nifti(root / f"sub-A/{session}/anat/sub-A_{session}_T1w.nii")
    (root / "sub-A/sub-A_sessions.tsv").write_text(
        "session_id\tloes_score\tage\nses-1\t1\t5.5\nses-2\tn/a\t6.5\n"
    )
    errors = errors_of(root)
    assert errors == [
        "sub-A/ses-2/anat/sub-A_ses-2_T1w.nii: no Loes score for sub-A ses-2: add a row with "
        "session_id and loes_score to sub-A/sub-A_sessions.tsv (or with participant_id, "
        "session_id and loes_score to phenotype/loes.tsv)."
    ]
    (root / "sub-A/sub-A_sessions.tsv").write_text(
        "session_id\tloes_score\tage\nses-1\t1\t5.5\nses-2\t2.5\t6.5\n"
    )
    table = load_dataset(root)
    assert table["loes_score"].tolist() == [1.0, 2.5]
    assert table["age"].tolist() == [5.5, 6.5]


def test_bids_without_sessions_uses_participants(tmp_path):
    root = tmp_path / "bids"
    write_nifti(root / "sub-01/anat/sub-01_T1w.nii.gz")
    write_nifti(root / "sub-02/anat/sub-02_T1w.nii.gz")
    (root / "participants.tsv").write_text("participant_id\tloes_score\nsub-01\t0\nsub-02\t9\n")
    table = load_dataset(root)
    assert table["session"].tolist() == [NO_SESSION, NO_SESSION]
    assert table["loes_score"].tolist() == [0.0, 9.0]


def test_bids_participant_score_with_several_sessions_is_an_error(tmp_path):
    root = tmp_path / "bids"
    write_nifti(root / "sub-01/ses-1/anat/sub-01_ses-1_T1w.nii.gz")
    write_nifti(root / "sub-01/ses-2/anat/sub-01_ses-2_T1w.nii.gz")
    (root / "participants.tsv").write_text("participant_id\tloes_score\nsub-01\t4\n")
    errors = errors_of(root)
    assert errors[0].startswith("participants.tsv row 2 (sub-01): gives one loes_score for sub-01")
    assert "2 sessions" in errors[0]


def test_bids_folder_without_images(tmp_path):
    (tmp_path / "bids").mkdir()
    with pytest.raises(LoesError, match=r"no sub-\*/\[ses-\*/\]anat/\*_T1w\.nii\[\.gz\] images"):
        load_dataset(tmp_path / "bids")


def test_bids_file_name_must_match_its_folders(tmp_path):
    root = tmp_path / "bids"
    write_nifti(root / "sub-01/anat/sub-02_T1w.nii.gz")
    errors = errors_of(root)
    assert errors == [
        "sub-01/anat/sub-02_T1w.nii.gz: the file name does not match its folders (sub-01); "
        "rename it."
    ]


# --- what the reader hands to the checks ---------------------------------------------------


def test_read_bids_says_where_each_score_came_from(tmp_path):
    root = tmp_path / "bids"
    write_nifti(root / "sub-01/ses-01/anat/sub-01_ses-01_T1w.nii.gz")
    write_nifti(root / "sub-01/ses-02/anat/sub-01_ses-02_ce-gd_T1w.nii.gz")
    write_nifti(root / "sub-02/ses-01/anat/sub-02_ses-01_T1w.nii.gz")
    (root / "phenotype").mkdir()
    (root / "phenotype/loes.tsv").write_text(
        "participant_id\tsession_id\tloes_score\nsub-01\tses-01\t2\nsub-01\tses-02\tx\n"
    )
    reading = TableReading(str(root), "bids")
    raw = read_bids(root, "T1w", reading)
    assert raw.where == (
        "sub-01/ses-01/anat/sub-01_ses-01_T1w.nii.gz",
        "sub-01/ses-02/anat/sub-01_ses-02_ce-gd_T1w.nii.gz",
        "sub-02/ses-01/anat/sub-02_ses-01_T1w.nii.gz",
    )
    assert raw.score_where == (
        "phenotype/loes.tsv row 2 (sub-01 ses-01)",
        "phenotype/loes.tsv row 3 (sub-01 ses-02)",
        "sub-02/ses-01/anat/sub-02_ses-01_T1w.nii.gz",  # no score: the image itself
    )
    assert raw.unscored == (False, False, True)
    # scores stay as written for the checks to parse and quote; a missing one is ""
    assert raw.table["loes_score"].tolist() == ["2", "x", ""]
    assert raw.table["gd"].tolist() == [False, True, False]
    assert raw.image_hint == f"images are found under {root}"
    assert raw.score_column == "loes_score"
    assert raw.guessed_images_dir is None
    assert [p.where for p in reading.problems] == ["sub-02/ses-01/anat/sub-02_ses-01_T1w.nii.gz"]


def test_read_bids_of_a_file_is_an_error(tmp_path):
    (tmp_path / "x.tsv").write_text("a\n")
    with pytest.raises(LoesError, match="is not a folder; a BIDS dataset is a folder"):
        read_bids(tmp_path / "x.tsv", "T1w", TableReading("x.tsv", "bids"))


def test_bids_without_sessions_never_shows_the_placeholder_session(tmp_path):
    root = tmp_path / "bids"
    write_nifti(root / "sub-01/anat/sub-01_run-1_T1w.nii.gz")
    write_nifti(root / "sub-01/anat/sub-01_run-2_T1w.nii.gz", seed=1)
    write_nifti(root / "sub-02/anat/sub-02_T1w.nii.gz", seed=2)
    write_nifti(root / "sub-03/anat/sub-04_T1w.nii.gz", seed=3)
    (root / "participants.tsv").write_text("participant_id\tloes_score\nsub-01\t1\n")
    problems = [f"{p.where}: {p.message}" for p in validate_dataset(root).problems]
    assert problems == [
        "sub-03/anat/sub-04_T1w.nii.gz: the file name does not match its folders (sub-03); "
        "rename it.",
        "sub-02/anat/sub-02_T1w.nii.gz: no Loes score for sub-02: add a row with participant_id "
        "and loes_score to phenotype/loes.tsv (or a loes_score column to participants.tsv).",
        "sub-01/anat/sub-01_run-2_T1w.nii.gz: is a second image of sub-01 (first: "
        "sub-01/anat/sub-01_run-1_T1w.nii.gz); loes uses one scan per session: move the other "
        "runs out of anat/ (e.g. into sourcedata/), or list the scans to use in a manifest.",
    ]
    assert not any("none" in problem for problem in problems)


def test_bids_dataset_before_datalad_get(tmp_path):
    """Images are links into .git/annex whose content is not there: say how to fetch it."""
    root = tmp_path / "bids"
    image = root / "sub-01/anat/sub-01_T1w.nii.gz"
    image.parent.mkdir(parents=True)
    image.symlink_to("../../.git/annex/objects/Xy/Zw/MD5E-s9--0a.nii.gz/MD5E-s9--0a.nii.gz")
    (root / "participants.tsv").write_text("participant_id\tloes_score\nsub-01\t1\n")
    assert errors_of(root) == [
        f"sub-01/anat/sub-01_T1w.nii.gz: image {image} is a symbolic link to "
        "../../.git/annex/objects/Xy/Zw/MD5E-s9--0a.nii.gz/MD5E-s9--0a.nii.gz, which is missing: "
        f"the content has not been fetched (a DataLad or git-annex dataset); run `datalad get "
        f"{image}` (or `git annex get {image}`) in the dataset."
    ]
