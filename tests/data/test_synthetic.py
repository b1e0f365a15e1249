"""The synthetic ALD cohort: clinical table, truth by construction, geometry, determinism."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from loes.cli import main as cli_main
from loes.data import detect_format, load_dataset
from loes.data.loes_items import (
    ITEM_COLUMNS,
    ITEMS,
    LESION_ITEMS,
    MAX_SCORE,
    lesion_label,
    lesion_label_names,
)
from loes.data.synthetic import (
    MANIFEST_COLUMNS,
    anatomy_for,
    draw_cohort_table,
    generate_cohort,
    load_anatomy,
    make_tiny_cohort,
)
from loes.data.synthetic.acquisition import draw_subject_geometry, session_pose
from loes.data.synthetic.layout import BIDS_VERSION, LESION_DERIVATIVE
from loes.errors import LoesError

# ---------------------------------------------------------------- the items table


def test_items_add_up_to_34_with_unique_columns():
    assert MAX_SCORE == 34.0
    assert len(set(ITEM_COLUMNS)) == len(ITEM_COLUMNS) == 34 - 2  # global atrophy counts 3
    assert {i.area for i in ITEMS} >= {"parieto_occipital", "corpus_callosum", "global_atrophy"}
    names = lesion_label_names()
    assert sorted(names) == list(range(1, 2 * len(LESION_ITEMS) + 1))
    assert (
        names[lesion_label("corpus_callosum_splenium", "left")] == "corpus_callosum_splenium_left"
    )


# ---------------------------------------------------------------- the clinical table


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return draw_cohort_table(66, seed=0)


def test_item_sums_equal_scores(table):
    np.testing.assert_allclose(table[list(ITEM_COLUMNS)].sum(axis=1), table["loes_score"])
    for column in ITEM_COLUMNS:
        values = table[column]
        top = 3.0 if column == "global_atrophy" else 1.0
        assert values.between(0, top).all(), column
        step = 1.0 if column == "global_atrophy" else 0.5
        np.testing.assert_allclose(values / step, np.round(values / step))


def test_default_table_matches_reference_cohort(table):
    scores = table["loes_score"]
    per_subject = table.groupby("subject").size()
    assert table["subject"].nunique() == 66
    assert len(table) == 253
    assert per_subject.min() >= 1
    assert per_subject.max() <= 12
    np.testing.assert_allclose(scores * 2, np.round(scores * 2))  # steps of 0.5
    assert 0.24 <= (scores == 0).mean() <= 0.34  # reference 29%
    assert 2.0 <= scores.median() <= 4.0  # reference 3
    assert 3.8 <= scores.mean() <= 5.3  # reference 4.56
    assert 4.3 <= scores.std() <= 5.9  # reference 5.10
    assert 17 <= scores.max() <= 24  # reference 21
    assert 0.08 <= (scores >= 10).mean() <= 0.22  # reference about 15%


def test_pooled_seeds_match_reference_cohort():
    pooled = pd.concat([draw_cohort_table(66, seed=s) for s in range(1, 9)])["loes_score"]
    assert abs((pooled == 0).mean() - 0.29) < 0.04
    assert abs(pooled.mean() - 4.56) < 0.6
    assert abs(pooled.std() - 5.10) < 0.6


def test_course_patterns_and_sessions(table):
    patterns = table.groupby("subject")["pattern"].first().value_counts(normalize=True)
    assert patterns["posterior"] == pytest.approx(0.80, abs=0.03)
    assert patterns["anterior"] == pytest.approx(0.15, abs=0.03)
    assert patterns["projection"] == pytest.approx(0.05, abs=0.03)
    for _, rows in table.groupby("subject"):
        assert rows["session"].is_monotonic_increasing
        assert rows["age"].is_monotonic_increasing
        assert rows["loes_score"].is_monotonic_increasing  # never decreases
    last = table.groupby("subject")["loes_score"].max()
    assert (last == 0).sum() >= 5  # some boys stay lesion-free
    assert set(table["gd"]) == {0, 1}
    assert table["site"].nunique() >= 3
    # posterior subjects start in the splenium / parieto-occipital white matter
    first = (
        table[(table.pattern == "posterior") & (table.loes_score > 0)].groupby("subject").first()
    )
    posterior = first[["corpus_callosum_splenium", "parieto_occipital_periventricular"]].sum(axis=1)
    assert (posterior > 0).mean() > 0.8


def test_tables_are_seeded():
    pd.testing.assert_frame_equal(
        draw_cohort_table(10, 3).drop(columns="_state"),
        draw_cohort_table(10, 3).drop(columns="_state"),
    )
    assert not draw_cohort_table(10, 3)["loes_score"].equals(draw_cohort_table(10, 4)["loes_score"])


# ---------------------------------------------------------------- the MNI anatomy


def _area_centres(anat) -> dict[int, np.ndarray]:
    ijk = np.argwhere(anat.lesion_atlas)
    labels = anat.lesion_atlas[tuple(ijk.T)]
    mm = ijk @ anat.low_affine[:3, :3].T + anat.low_affine[:3, 3]
    return {int(label): mm[labels == label] for label in np.unique(labels)}


@pytest.mark.slow
def test_both_anatomy_resolutions_hold_every_area_on_its_side():
    fine, coarse = load_anatomy(1), load_anatomy(2)
    assert (fine.field_mm, coarse.field_mm) == (2.0, 4.0)
    assert anatomy_for(1.0) is fine
    assert anatomy_for(4.0) is coarse
    assert coarse.t1.shape == tuple((s + 1) // 2 for s in fine.t1.shape)
    names = lesion_label_names()
    fine_areas, coarse_areas = _area_centres(fine), _area_centres(coarse)
    assert set(fine_areas) == set(coarse_areas) == set(names)
    for label, name in names.items():
        for areas in (fine_areas, coarse_areas):
            assert len(areas[label]) >= 20, name  # enough voxels to survive resampling
            x = areas[label][:, 0]
            assert (x < 0).all() if name.endswith("_left") else (x > 0).all(), name
        # the same place: within a 4 mm voxel plus a fifth of the area's size (the lobes'
        # depth thirds follow coarser distance maps)
        shift = np.linalg.norm(fine_areas[label].mean(0) - coarse_areas[label].mean(0))
        size = (len(fine_areas[label]) * fine.field_mm**3) ** (1 / 3)
        assert shift < 4.0 + size / 5, (name, shift, size)


def test_anatomy_resolution_is_checked():
    with pytest.raises(ValueError, match="anatomy resolution"):
        load_anatomy(3)


# ---------------------------------------------------------------- the tiny rendered cohort


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_cohort(tmp_path_factory.mktemp("tiny"), preview=True)


@pytest.fixture(scope="module")
def manifest(tiny) -> pd.DataFrame:
    return pd.read_csv(tiny)


def test_the_preview_leaves_matplotlib_s_backend_alone(tiny, manifest, tmp_path, monkeypatch):
    import matplotlib

    from loes.data.synthetic.preview import write_preview

    calls = []
    monkeypatch.setattr(matplotlib, "use", lambda *args, **kwargs: calls.append(args))
    write_preview(tiny.parent, manifest, tmp_path / "preview.png")
    assert calls == []
    assert (tmp_path / "preview.png").read_bytes() == (tiny.parent / "preview.png").read_bytes()


def _anatomy_of(manifest_path: Path):
    """The anatomy a cohort was drawn from, by the resolution its cohort.json records."""
    params = json.loads((manifest_path.parent / "cohort.json").read_text())
    return anatomy_for(params["resolution"])


def _sidecar(root: Path, image: str) -> dict:
    return json.loads((root / image.replace(".nii.gz", ".json")).read_text())


def test_tiny_layout_and_manifest(tiny, manifest):
    root = tiny.parent
    assert tuple(manifest.columns) == MANIFEST_COLUMNS
    assert manifest["subject"].nunique() == 6
    assert manifest.groupby("subject").size().between(2, 3).all()
    assert manifest["loes_score"].min() == 0
    assert manifest["loes_score"].max() >= 15
    np.testing.assert_allclose(manifest[list(ITEM_COLUMNS)].sum(axis=1), manifest["loes_score"])
    for name in ("cohort.json", "preview.png", "dataset_description.json", "README.md"):
        assert (root / name).is_file(), name
    assert (root / "preview.png").read_bytes()[:4] == b"\x89PNG"
    assert manifest["image"].iloc[0] == "sub-001/ses-01/anat/sub-001_ses-01_T1w.nii.gz"
    assert manifest["lesion_mask"].iloc[0] == (
        "derivatives/lesions/sub-001/ses-01/anat/sub-001_ses-01_desc-lesion_dseg.nii.gz"
    )
    participants = pd.read_csv(root / "participants.tsv", sep="\t")
    assert list(participants["participant_id"]) == sorted(manifest["subject"].unique())


def test_tiny_cohort_is_a_bids_dataset(tiny, manifest):
    """BIDS names (post-contrast scans with a ce- entity), scores per session in
    sessions.tsv, lesion label maps in a derivative dataset, described columns."""
    root = tiny.parent
    description = json.loads((root / "dataset_description.json").read_text())
    assert description["BIDSVersion"] == BIDS_VERSION
    assert description["DatasetType"] == "raw"
    derivative = json.loads((root / LESION_DERIVATIVE / "dataset_description.json").read_text())
    assert derivative["DatasetType"] == "derivative"
    assert derivative["GeneratedBy"][0]["Name"] == "loes synth"
    assert (root / ".bidsignore").read_text().split() == [
        "/cohort.json",
        "/manifest.csv",
        "/preview.png",
    ]
    assert manifest["gd"].sum() >= 2
    for row in manifest.itertuples():
        name = f"{row.subject}_{row.session}{'_ce-gadolinium' if row.gd else ''}"
        assert row.image == f"{row.subject}/{row.session}/anat/{name}_T1w.nii.gz"
        assert row.lesion_mask == (
            f"derivatives/lesions/{row.subject}/{row.session}/anat/{name}_desc-lesion_dseg.nii.gz"
        )
        sidecar = _sidecar(root, row.image)
        assert sidecar.get("ContrastBolusIngredient") == ("GADOLINIUM" if row.gd else None)
    # nothing in anat/ but the scans and their sidecars
    in_anat = {str(p.relative_to(root)) for p in root.glob("sub-*/ses-*/anat/*")}
    assert in_anat == set(manifest["image"]) | {
        i.replace(".nii.gz", ".json") for i in manifest["image"]
    }
    # per-session values where BIDS keeps them, every column described
    described = json.loads((root / "sessions.json").read_text())
    for subject, rows in manifest.groupby("subject"):
        sessions = pd.read_csv(root / subject / f"{subject}_sessions.tsv", sep="\t")
        assert list(sessions["session_id"]) == list(rows["session"])
        columns = ["loes_score", *ITEM_COLUMNS, "age", "site"]
        assert list(sessions.columns) == ["session_id", *columns]
        pd.testing.assert_frame_equal(
            sessions[columns].reset_index(drop=True), rows[columns].reset_index(drop=True)
        )
    assert set(described) == {"loes_score", *ITEM_COLUMNS, "age", "site"}
    participants = pd.read_csv(root / "participants.tsv", sep="\t")
    assert set(json.loads((root / "participants.json").read_text())) == set(
        participants.columns[1:]
    )
    labels = pd.read_csv(root / LESION_DERIVATIVE / "desc-lesion_dseg.tsv", sep="\t")
    assert dict(zip(labels["index"], labels["name"], strict=True)) == lesion_label_names()


@pytest.mark.parametrize("include_gd", [False, True])
def test_bids_and_manifest_readings_agree(tiny, include_gd):
    """The folder read as BIDS and its manifest give the same scans, images, values and lesion
    masks."""
    by_manifest = load_dataset(tiny, include_gd=include_gd)
    by_bids = load_dataset(tiny.parent, include_gd=include_gd)
    assert detect_format(tiny.parent) == "bids"
    assert detect_format(tiny) == "manifest"
    expected = pd.read_csv(tiny)
    if not include_gd:
        expected = expected[expected["gd"] == 0]
    assert len(by_bids) == len(by_manifest) == len(expected)
    assert by_manifest["gd"].any() == include_gd
    columns = ["subject", "session", "image", "loes_score", "gd", *ITEM_COLUMNS]
    columns += ["age", "site", "pattern", "lesion_mask"]  # the masks from the BIDS derivative
    pd.testing.assert_frame_equal(by_bids[columns], by_manifest[columns])
    assert by_manifest["lesion_mask"].map(os.path.isfile).all()


@pytest.mark.parametrize("options", [[], ["--include-gd", "--deep"]])
def test_loes_validate_passes_the_folder_and_its_manifest(tiny, options, capsys):
    for source, what in ((tiny.parent, "bids"), (tiny, "manifest")):
        assert cli_main(["validate", str(source), *options]) == 0
        first = capsys.readouterr().out.splitlines()[0]
        assert first.startswith(f"{source} ({what}, ")
        assert first.endswith(": 0 errors, 0 warnings")


def test_images_have_sane_values_and_affines(tiny, manifest):
    root = tiny.parent
    for row in manifest.itertuples():
        image, mask = nib.load(root / row.image), nib.load(root / row.lesion_mask)
        data = np.asanyarray(image.dataobj)
        assert data.dtype == np.int16
        assert np.isfinite(data).all()
        assert data.max() > 100
        assert int(image.header["qform_code"]) == 1
        assert int(image.header["sform_code"]) == 1
        np.testing.assert_allclose(image.get_qform(), image.get_sform(), atol=1e-4)
        np.testing.assert_allclose(mask.affine, image.affine)
        assert mask.shape == image.shape
        assert np.asanyarray(mask.dataobj).dtype == np.uint8
        assert 1000 < data.size < 400_000  # tiny volumes for other test suites


def test_lesion_masks_show_exactly_the_scored_items(tiny, manifest):
    root = tiny.parent
    names = lesion_label_names()
    for row in manifest.itertuples():
        labels = set(np.unique(np.asanyarray(nib.load(root / row.lesion_mask).dataobj))) - {0}
        assert labels == set(_sidecar(root, row.image)["lesion_labels"]), row.image
        for item in LESION_ITEMS:
            present = sum(names[label].startswith(item.column + "_") for label in labels)
            assert present == 2 * getattr(row, item.column), (row.image, item.column)
        if row.loes_score == 0:
            assert not labels


def _atlas_index(anat, mni: np.ndarray) -> tuple:
    to_atlas = np.linalg.inv(anat.low_affine)
    idx = np.rint(mni @ to_atlas[:3, :3].T + to_atlas[:3, 3]).astype(int)
    return tuple(np.clip(idx, 0, np.array(anat.low_shape) - 1).T)


def _lesion_voxels(tiny: Path, manifest: pd.DataFrame):
    """(row, world mm of every lesion voxel, its label) for each scan with lesions."""
    for row in manifest[manifest.loes_score > 0].itertuples():
        mask = nib.load(tiny.parent / row.lesion_mask)
        data = np.asanyarray(mask.dataobj)
        ijk = np.argwhere(data > 0)
        world = ijk @ mask.affine[:3, :3].T + mask.affine[:3, 3]
        yield row, world, data[tuple(ijk.T)]


def test_lesions_land_in_their_areas_through_the_subject_warp(tiny, manifest):
    """Each lesion voxel, taken back through affine, pose and warp, is in its item's area."""
    anat = _anatomy_of(tiny)
    checked = 0
    for row, world, labels in _lesion_voxels(tiny, manifest):
        subject = int(row.subject.split("-")[1]) - 1
        session = int(row.session.split("-")[1])
        geometry = draw_subject_geometry(
            np.random.default_rng(np.random.SeedSequence([0, subject]))
        )
        rng = np.random.default_rng(np.random.SeedSequence([0, subject, session]))
        inv = np.linalg.inv(session_pose(geometry, rng))
        mni_subject = world @ inv[:3, :3].T + inv[:3, 3]
        field_idx = ((mni_subject - geometry.field_origin) / geometry.field_spacing).T
        shift = [
            ndimage.map_coordinates(f, field_idx, order=1, mode="nearest") for f in geometry.field
        ]
        index = _atlas_index(anat, mni_subject + np.stack(shift, axis=1))
        for label in np.unique(labels):
            # two field voxels of tolerance: labels are drawn nearest-neighbour from that grid
            area = ndimage.binary_dilation(anat.lesion_atlas == label, iterations=2)
            inside = area[tuple(i[labels == label] for i in index)].mean()
            assert inside > 0.9, (row.image, label, inside)
            checked += 1
    assert checked > 20


def test_affines_keep_world_coordinates(tiny, manifest):
    """By the affines alone (no registration) lesions sit near their MNI area, on their side."""
    anat = _anatomy_of(tiny)
    grid = np.indices(anat.low_shape).reshape(3, -1).T
    centres = {}
    for row, world, labels in _lesion_voxels(tiny, manifest):
        for label in np.unique(labels):
            if label not in centres:
                ijk = grid[(anat.lesion_atlas == label).ravel()]
                centres[label] = (ijk @ anat.low_affine[:3, :3].T + anat.low_affine[:3, 3]).mean(0)
            centre = world[labels == label].mean(0)
            assert np.linalg.norm(centre - centres[label]) < 25.0, (row.image, label)
            if abs(centres[label][0]) > 15:  # lateral areas: a flipped axis would show here
                x = centre[0]
                assert (x < 0) if label % 2 else (x > 0), (row.image, label, x)  # odd = left


def test_lesions_are_hypointense_on_t1w(tiny, manifest):
    row = manifest[manifest.loes_score >= 10].iloc[0]
    image = np.asanyarray(nib.load(tiny.parent / row["image"]).dataobj).astype(float)
    mask = np.asanyarray(nib.load(tiny.parent / row["lesion_mask"]).dataobj) > 0
    brain = image > 0.35 * np.percentile(image, 99)
    assert image[mask].mean() < 0.8 * np.median(image[brain & ~mask])


def test_orientations_and_spacings_vary(tiny, manifest):
    codes, spacings = set(), set()
    for row in manifest.itertuples():
        image = nib.load(tiny.parent / row.image)
        codes.add("".join(nib.aff2axcodes(image.affine)))
        spacings.add(tuple(np.round(image.header.get_zooms(), 2)))
        assert _sidecar(tiny.parent, row.image)["site"] == row.site
    assert len(codes) >= 4
    assert len(spacings) == len(manifest)


def test_flair_lesions_are_hyperintense(tmp_path):
    path = make_tiny_cohort(tmp_path, subjects=3, sessions=1, contrast="flair")
    row = pd.read_csv(path).sort_values("loes_score").iloc[-1]
    assert row["image"].endswith("_FLAIR.nii.gz")
    image = np.asanyarray(nib.load(tmp_path / row["image"]).dataobj).astype(float)
    mask = np.asanyarray(nib.load(tmp_path / row["lesion_mask"]).dataobj) > 0
    brain = image > 0.35 * np.percentile(image, 99)
    assert image[mask].mean() > 1.2 * np.median(image[brain & ~mask])


# ---------------------------------------------------------------- determinism, resumption, errors


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_same_seed_gives_byte_identical_files_in_parallel(tmp_path):
    one = make_tiny_cohort(tmp_path / "one", subjects=2, seed=5, workers=1, preview=True)
    two = make_tiny_cohort(tmp_path / "two", subjects=2, seed=5, workers=2, preview=True)
    first, second = _tree(one.parent), _tree(two.parent)
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []
    other = make_tiny_cohort(tmp_path / "three", subjects=2, seed=6)
    images = [pd.read_csv(m).set_index(["subject", "session"])["image"] for m in (one, other)]
    scan = ("sub-002", "ses-01")  # named with ce-gadolinium when post-contrast
    assert _tree(other.parent)[images[1][scan]] != first[images[0][scan]]


def test_resumes_missing_scans_and_refuses_other_parameters(tmp_path):
    manifest = make_tiny_cohort(tmp_path, subjects=2, seed=1)
    before = _tree(tmp_path)
    table = pd.read_csv(manifest)
    lost, kept = table["image"].iloc[1], table["image"].iloc[0]
    (tmp_path / lost).unlink()
    (tmp_path / lost.replace(".nii.gz", ".json")).unlink()
    kept_time = os.stat(tmp_path / kept).st_mtime_ns
    make_tiny_cohort(tmp_path, subjects=2, seed=1)
    assert _tree(tmp_path) == before
    assert os.stat(tmp_path / kept).st_mtime_ns == kept_time  # reused, not rewritten
    with pytest.raises(LoesError, match=r"other parameters.*seed"):
        make_tiny_cohort(tmp_path, subjects=2, seed=2)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"subjects": -3}, "positive whole number"),
        ({"subjects": 0}, "positive whole number"),
        ({"contrast": "pd"}, "unknown contrast 'pd'"),
        ({"resolution": 0.0}, "resolution"),
        ({"workers": 0}, "workers"),
    ],
)
def test_bad_options_raise_clear_errors(tmp_path, options, message):
    with pytest.raises(LoesError, match=message):
        generate_cohort(tmp_path / "out", progress=False, **options)
    assert not (tmp_path / "out").exists()


def test_a_folder_of_other_files_is_never_overwritten(tmp_path):
    (tmp_path / "manifest.csv").write_text("mine\n")
    with pytest.raises(LoesError, match=r"not empty and holds no cohort\.json"):
        make_tiny_cohort(tmp_path, subjects=1, seed=1)
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.csv"]
    assert (tmp_path / "manifest.csv").read_text() == "mine\n"


def test_unwritable_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(LoesError, match="cannot write to"):
        make_tiny_cohort(blocker / "cohort", subjects=1)
    if os.geteuid() != 0:  # root can write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(LoesError, match="cannot write to"):
            make_tiny_cohort(locked / "cohort", subjects=1)


def test_cli_reports_bad_options_in_one_line(tmp_path, capsys):
    assert cli_main(["synth", str(tmp_path / "out"), "--subjects", "-2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("loes synth: error: subjects must be a positive whole number")
    assert cli_main(["synth", str(tmp_path / "out"), "--contrast", "dwi"]) == 2


@pytest.mark.slow
def test_one_millimetre_scans_keep_truth(tmp_path):
    """Two subjects at the default resolution: masks still show exactly the scored items."""
    manifest = pd.read_csv(generate_cohort(tmp_path, subjects=2, seed=3, workers=2, progress=False))
    for row in manifest.itertuples():
        sidecar = _sidecar(tmp_path, row.image)
        assert sidecar["lesion_labels_in_mask"] == sidecar["lesion_labels"]
        zooms = nib.load(tmp_path / row.image).header.get_zooms()
        assert min(zooms) >= 0.75
        assert max(zooms) <= 4.0
