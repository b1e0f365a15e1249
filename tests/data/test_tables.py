"""Reading the three input formats into one table, and every bad table with its message."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from loes.data import NO_SESSION, detect_format, load_dataset, validate_dataset
from loes.errors import LoesError

LAB_NAME = "{}_{}_space-MNI_brain_mprage_RAVEL.nii.gz"


def write_nifti(path: Path, seed: int = 0) -> Path:
    """A tiny random 3D volume at 4 mm (a 48 mm cube)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(seed).random((12, 12, 12)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.diag([4.0, 4.0, 4.0, 1.0])), path)
    return path


def write_manifest(folder: Path, rows: list[dict], name: str = "manifest.csv") -> Path:
    """Write ``rows`` as a manifest, creating every image named in them."""
    for i, row in enumerate(rows):
        image = Path(row["image"])
        write_nifti(image if image.is_absolute() else folder / image, seed=i)
    path = folder / name
    pd.DataFrame(rows).to_csv(path, index=False, sep="\t" if name.endswith(".tsv") else ",")
    return path


def manifest_rows() -> list[dict]:
    return [
        {
            "subject": "sub-007",
            "session": "ses-01",
            "image": "images/sub-007_ses-01.nii.gz",
            "loes_score": 0,
            "age": 6.5,
            "site": "A",
            "pattern": "posterior",
            "corpus_callosum_splenium": 0.0,
        },
        {
            "subject": "sub-007",
            "session": "ses-02",
            "image": "images/sub-007_ses-02.nii.gz",
            "loes_score": 4.5,
            "age": 7.0,
            "site": "A",
            "pattern": "posterior",
            "corpus_callosum_splenium": 1.0,
        },
        {
            "subject": "sub-012",
            "session": "ses-01",
            "image": "images/sub-012_ses-01.nii.gz",
            "loes_score": 12,
            "age": 9.0,
            "site": "B",
            "pattern": "anterior",
            "corpus_callosum_splenium": 0.5,
        },
    ]


def errors_of(source: Path, **options) -> list[str]:
    return [f"{p.where}: {p.message}" for p in validate_dataset(source, **options).errors]


# --- manifest ------------------------------------------------------------------------------


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


# --- the lab's CSV -------------------------------------------------------------------------


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


# --- BIDS ----------------------------------------------------------------------------------


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
        "participant_id, session_id and loes_score to phenotype/loes.tsv (or a loes_score "
        "column to sub-A/sub-A_sessions.tsv)."
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


# --- detection and bad tables --------------------------------------------------------------


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


def test_missing_manifest_columns_are_named(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("subject,image\ns1,a.nii.gz\n")
    with pytest.raises(LoesError) as error:
        load_dataset(path)
    assert "m.csv: missing columns session, loes_score (found subject, image)" in str(error.value)


def test_unreadable_table(tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes(b"\xff\xfe\x00binary\x00")
    assert "cannot be read as a CSV/TSV table" in errors_of(path, format="manifest")[0]


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


def test_load_dataset_lists_every_error_and_points_to_validate(tmp_path):
    rows = manifest_rows()
    for row in rows:
        row["loes_score"] = "x"
    path = write_manifest(tmp_path, rows)
    with pytest.raises(LoesError) as error:
        load_dataset(path)
    message = str(error.value)
    assert message.count("is not a number") == 3
    assert f"Run `loes validate {path}`" in message


def test_item_subscores_and_lesion_masks(tmp_path):
    from loes.data.loes_items import ITEMS

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
