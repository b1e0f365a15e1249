"""Whole-head synthetic scans: the shipped head, the brain masks, the background, the layout."""

from __future__ import annotations

import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from loes.cli import main as cli_main
from loes.data import load_dataset
from loes.data.synthetic import (
    BRAIN_MASK_COLUMN,
    BRAIN_MASK_DERIVATIVE,
    MANIFEST_COLUMNS,
    anatomy_for,
    load_anatomy,
    load_head,
    make_tiny_cohort,
)
from loes.data.synthetic.acquisition import draw_subject_geometry, session_pose
from loes.data.synthetic.head import head_contrast
from loes.errors import LoesError

HEAD_DIR = Path(__file__).resolve().parents[2] / "loes" / "data" / "synthetic" / "head"
SEED = 4

# ---------------------------------------------------------------- the shipped head


def _mm_to_index(head, points_mm) -> tuple:
    inv = np.linalg.inv(head.affine)
    idx = np.rint(np.asarray(points_mm) @ inv[:3, :3].T + inv[:3, 3]).astype(int)
    return tuple(idx.T)


def test_shipped_head_surrounds_the_mni_brain():
    anat, head = load_anatomy(2), load_head(2)
    assert np.allclose(head.affine[:3, :3], anat.affine[:3, :3])
    # anatomy voxel v is head voxel v + offset, at the same MNI millimetres
    np.testing.assert_allclose(
        head.affine[:3, :3] @ head.offset + head.affine[:3, 3], anat.affine[:3, 3], atol=1e-6
    )
    brain = anat.brain > 0.5
    ijk = np.argwhere(brain)
    in_head = tuple((ijk + head.offset.astype(int)).T)  # every brain voxel is on the head grid
    # the registered head's brain matches the MNI brain
    assert np.corrcoef(head.t1[in_head], anat.t1[brain])[0, 1] > 0.6
    assert np.median(head.t1[in_head][anat.wm[brain] > 0.9]) == pytest.approx(0.87, rel=0.1)
    # skull and scalp all round: 4-20 mm beyond the brain mask is mostly tissue
    on_head = np.zeros(head.t1.shape, bool)
    on_head[in_head] = True
    beyond = ndimage.distance_transform_edt(~on_head, sampling=2.0)
    shell = (beyond > 4) & (beyond < 20)
    assert np.mean(head.t1[shell] > 0.2) > 0.6
    assert head.t1[0].max() < 0.05  # air at the grid's sides
    assert head.fluid.min() >= 0.0
    assert head.fluid.max() <= 1.0


def test_head_contrasts_show_fluid_and_fat_as_each_contrast_does():
    head = load_head(2)
    eyes = _mm_to_index(head, json.loads((HEAD_DIR / "head.json").read_text())["eyes_mm"])
    t1w, t2w, flair = (head_contrast(c, 1.0, 2) for c in ("t1w", "t2w", "flair"))
    assert (t1w[eyes] < 0.35).all()  # vitreous: dark on T1w
    assert (t2w[eyes] > 0.7).all()  # bright on T2w
    assert (flair[eyes] < 0.3).all()  # suppressed on FLAIR
    fat = (head.t1 > 1.0) & (head.fluid < 0.05)  # scalp fat: bright everywhere
    assert fat.sum() > 100
    assert np.median(t2w[fat]) > 0.7
    assert np.median(flair[fat]) > 0.6
    np.testing.assert_allclose(head_contrast("t1w", 1.25, 2), head.t1**1.25, rtol=1e-5)


def test_shipped_head_records_its_source():
    record = json.loads((HEAD_DIR / "head.json").read_text())
    assert "MIT" in (HEAD_DIR / "NOTICE").read_text()
    assert record["source"] == "pydeface/data/mean_reg2mean.nii.gz"
    assert sum(p.stat().st_size for p in HEAD_DIR.iterdir()) < 4_000_000  # a small repository
    resources = pytest.importorskip("importlib.resources")
    pytest.importorskip("pydeface")
    import hashlib

    source = resources.files("pydeface") / "data" / "mean_reg2mean.nii.gz"
    assert hashlib.sha256(source.read_bytes()).hexdigest() == record["source_sha256"]


# ---------------------------------------------------------------- the tiny whole-head cohort


@pytest.fixture(scope="module")
def heads(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("heads")
    return make_tiny_cohort(out, subjects=3, sessions=2, seed=SEED, whole_head=True, preview=True)


@pytest.fixture(scope="module")
def stripped(tmp_path_factory) -> Path:
    return make_tiny_cohort(tmp_path_factory.mktemp("stripped"), subjects=3, sessions=2, seed=SEED)


def _rows(manifest: Path):
    return pd.read_csv(manifest).itertuples()


def _data(path: Path) -> tuple[np.ndarray, nib.Nifti1Image]:
    image = nib.load(path)
    return np.asanyarray(image.dataobj), image


def test_layout_records_the_option_and_lists_the_brain_masks(heads, stripped):
    root = heads.parent
    manifest = pd.read_csv(heads)
    assert tuple(manifest.columns) == (*MANIFEST_COLUMNS, BRAIN_MASK_COLUMN)
    params = json.loads((root / "cohort.json").read_text())
    assert params["whole_head"] is True
    assert "whole_head" not in json.loads((stripped.parent / "cohort.json").read_text())
    for row in manifest.itertuples():
        stem = row.image.rsplit("/", 1)[1].removesuffix("_T1w.nii.gz")
        anat = f"{row.subject}/{row.session}/anat"
        assert row.brain_mask == f"{BRAIN_MASK_DERIVATIVE}/{anat}/{stem}_desc-brain_mask.nii.gz"
        assert (root / row.brain_mask).is_file()
        sidecar = json.loads((root / row.image.replace(".nii.gz", ".json")).read_text())
        assert sidecar["whole_head"] is True
    derivative = json.loads((root / BRAIN_MASK_DERIVATIVE / "dataset_description.json").read_text())
    assert derivative["DatasetType"] == "derivative"
    assert (root / "preview.png").read_bytes()[:4] == b"\x89PNG"
    # the lesion truth is the stripped cohort's: same table, same labels in every mask
    other = pd.read_csv(stripped)
    pd.testing.assert_frame_equal(manifest[list(MANIFEST_COLUMNS)], other)
    for a, b in zip(manifest.itertuples(), other.itertuples(), strict=True):
        sa = json.loads((root / a.image.replace(".nii.gz", ".json")).read_text())
        sb = json.loads((stripped.parent / b.image.replace(".nii.gz", ".json")).read_text())
        assert sa["lesion_labels_in_mask"] == sb["lesion_labels_in_mask"] == sb["lesion_labels"]
        assert sa["voxel_size"] == sb["voxel_size"]
        assert np.prod(sa["matrix"]) > 1.8 * np.prod(sb["matrix"])  # a field of view for a head


@pytest.mark.parametrize("include_gd", [False, True])
def test_bids_and_manifest_readings_give_the_same_brain_masks(heads, include_gd):
    by_manifest = load_dataset(heads, include_gd=include_gd)
    by_bids = load_dataset(heads.parent, include_gd=include_gd)
    assert len(by_bids) == len(by_manifest) > 0
    columns = ["subject", "session", "image", "loes_score", "lesion_mask", BRAIN_MASK_COLUMN]
    pd.testing.assert_frame_equal(by_bids[columns], by_manifest[columns])
    assert by_manifest[BRAIN_MASK_COLUMN].map(lambda p: Path(p).is_file()).all()


def test_loes_validate_accepts_whole_heads(heads, capsys):
    for source in (heads.parent, heads):
        assert cli_main(["validate", str(source)]) == 0
        assert capsys.readouterr().out.splitlines()[0].endswith(": 0 errors, 0 warnings")


def test_brain_masks_lie_on_the_scans_and_hold_the_warped_mni_brain(heads):
    """Each mask voxel, taken back through affine, pose and warp, is in the MNI brain mask."""
    root = heads.parent
    anat = anatomy_for(4.0)
    brain = anat.brain > 0.5
    near = ndimage.binary_dilation(brain, iterations=2)
    deep = ndimage.binary_erosion(brain, iterations=2)
    to_anat = np.linalg.inv(anat.affine)
    for row in _rows(heads):
        mask, mask_image = _data(root / row.brain_mask)
        image = nib.load(root / row.image)
        assert mask.dtype == np.uint8
        assert set(np.unique(mask)) == {0, 1}
        assert mask.shape == image.shape
        np.testing.assert_allclose(mask_image.affine, image.affine)
        voxel_ml = float(np.prod(image.header.get_zooms())) / 1000
        # the MNI brain mask (1883 ml) scaled by the subject's head size (0.88-1.0, +-3%)
        assert 1000 < mask.sum() * voxel_ml < 2200
        subject = int(row.subject.split("-")[1]) - 1
        session = int(row.session.split("-")[1])
        geometry = draw_subject_geometry(
            np.random.default_rng(np.random.SeedSequence([SEED, subject]))
        )
        pose = session_pose(
            geometry, np.random.default_rng(np.random.SeedSequence([SEED, subject, session]))
        )
        ijk = np.indices(mask.shape).reshape(3, -1).T
        world = ijk @ image.affine[:3, :3].T + image.affine[:3, 3]
        inv = np.linalg.inv(pose)
        sub = world @ inv[:3, :3].T + inv[:3, 3]
        field_idx = ((sub - geometry.field_origin) / geometry.field_spacing).T
        shift = [
            ndimage.map_coordinates(f, field_idx, order=1, mode="nearest") for f in geometry.field
        ]
        mni = sub + np.stack(shift, axis=1)
        idx = np.rint(mni @ to_anat[:3, :3].T + to_anat[:3, 3]).astype(int)
        idx = tuple(np.clip(idx, 0, np.array(brain.shape) - 1).T)
        inside = mask.reshape(-1) == 1
        assert near[idx][inside].mean() > 0.97, row.image
        assert deep[idx][~inside].mean() < 0.01, row.image


def test_heads_have_tissue_outside_the_brain_and_noise_in_the_air(heads):
    root = heads.parent
    for row in _rows(heads):
        data, image = _data(root / row.image)
        mask, _ = _data(root / row.brain_mask)
        sidecar = json.loads((root / row.image.replace(".nii.gz", ".json")).read_text())
        sigma = sidecar["noise"] * sidecar["scale"]
        zooms = image.header.get_zooms()
        beyond = ndimage.distance_transform_edt(mask == 0, sampling=zooms)
        scalp = (beyond > 6) & (beyond < 20)  # skull and scalp
        brain = np.median(data[mask == 1])
        assert np.mean(data[scalp] > 0.25 * brain) > 0.35, row.image
        tissue = np.sum(data[beyond > 3] > 6 * sigma)  # well above the noise
        assert tissue > 0.5 * np.sum(mask), row.image  # a head is more than its brain
        # air: Rayleigh noise of the sidecar's sigma, never zeroed (median sigma * sqrt(2 ln 2))
        air = data[(beyond > 10) & (data < 4 * sigma)]
        assert air.size > 500
        assert np.median(air) == pytest.approx(sigma * math.sqrt(2 * math.log(2)), rel=0.15)
        assert np.mean(data == 0) < 0.01


def test_whole_heads_are_byte_identical_whatever_the_workers(tmp_path):
    one = make_tiny_cohort(tmp_path / "one", subjects=2, sessions=1, seed=7, whole_head=True)
    two = make_tiny_cohort(
        tmp_path / "two", subjects=2, sessions=1, seed=7, whole_head=True, workers=2
    )
    files = sorted(p.relative_to(one.parent) for p in one.parent.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(two.parent) for p in two.parent.rglob("*") if p.is_file())
    assert [
        f for f in files if (one.parent / f).read_bytes() != (two.parent / f).read_bytes()
    ] == []
    assert sum(str(f).endswith("_desc-brain_mask.nii.gz") for f in files) == 2


def test_a_stripped_folder_refuses_whole_heads_and_back(tmp_path, capsys):
    folder = tmp_path / "synth"
    args = ["synth", str(folder), "--subjects", "1", "--resolution", "4", "--no-progress"]
    assert cli_main([*args, "--whole-head"]) == 0
    capsys.readouterr()
    manifest = pd.read_csv(folder / "manifest.csv")
    assert manifest[BRAIN_MASK_COLUMN].map(lambda p: (folder / p).is_file()).all()
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert "other parameters (whole_head: True there vs False now)" in err
    make_tiny_cohort(tmp_path / "tiny", subjects=1, seed=1)
    with pytest.raises(LoesError, match="whole_head: False there vs True now"):
        make_tiny_cohort(tmp_path / "tiny", subjects=1, seed=1, whole_head=True)
