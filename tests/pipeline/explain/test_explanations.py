"""``explain`` on a tiny finished run: every scan by its own fold model, the files it writes
(the native-space map on the scan's own grid), the truth metrics, resuming, new scans with the
ensemble, and bad input."""

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from loes.errors import LoesError
from loes.pipeline.explain.explanations import EXPLANATIONS_FILE, PAGE_FILE, SUMMARY_FILE, explain
from loes.pipeline.explain.saliency import SaliencySettings
from tests.browser import measure_page, needs_chromium

pytestmark = pytest.mark.slow

METHODS = ["gradcam", "vanillagrad"]


@pytest.fixture(scope="module")
def explained(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("explain") / "out"
    return explain(tiny_run, methods=METHODS, scans=4, out=out, device="cpu"), out


def test_each_scan_is_explained_by_the_fold_that_tested_it(explained, tiny_run):
    table, _ = explained
    assert len(table) == 4 * len(METHODS)
    assert (table["error"] == "").all()
    assert list(table["method"].unique()) == METHODS
    for row in table.itertuples():
        fold = pd.read_csv(tiny_run / row.fold / "predictions.csv", dtype={"session": str})
        tested = fold[(fold["subject"] == row.subject) & (fold["session"] == row.session)]
        assert len(tested), (row.subject, row.session, row.fold)
        # the prediction is the same model's on the same input (without the flip of cv.tta)
        assert abs(row.predicted - tested["predicted"].iloc[0]) < 3.0
    scores = table.drop_duplicates("image")["loes_score"]
    assert scores.is_monotonic_increasing  # in score order
    assert scores.nunique() == 4  # spread over the range, not four healthy scans


def test_the_native_map_lies_on_the_scans_own_grid(explained):
    table, out = explained
    for row in table.drop_duplicates("image").itertuples():
        folder = out / "scans" / f"{row.subject}_{row.session}"
        scan = nib.load(row.image)
        native = nib.load(folder / f"{row.method}_native.nii.gz")
        assert native.shape == scan.shape[:3]
        np.testing.assert_allclose(native.affine, scan.affine, atol=1e-4)
        model_space = nib.load(folder / f"{row.method}.nii.gz")
        assert model_space.shape == (32, 40, 32)
        assert np.asarray(model_space.dataobj).min() >= 0
        # the peak written in the row is the model-space map's, in millimetres
        data = np.asarray(model_space.dataobj)
        peak = nib.affines.apply_affine(
            model_space.affine, np.unravel_index(data.argmax(), data.shape)
        )
        if data.max() > 0:
            np.testing.assert_allclose(peak, [row.peak_x, row.peak_y, row.peak_z], atol=1e-4)
        assert (folder / f"{row.method}.png").stat().st_size > 10_000


def test_the_native_map_carries_the_model_space_map(explained):
    """Resampled back, the map keeps where its mass is: its centre of mass in millimetres
    lies within a voxel of the model input (4 mm) of the model-space map's."""
    table, out = explained
    row = table[(table["method"] == "vanillagrad") & (table["loes_score"] > 0)].iloc[0]
    folder = out / "scans" / f"{row.subject}_{row.session}"

    def centre(image):
        data = np.asarray(image.dataobj, dtype=np.float64)
        voxel = (np.indices(data.shape) * data).reshape(3, -1).sum(axis=1) / data.sum()
        return nib.affines.apply_affine(image.affine, voxel)

    native, model_space = (nib.load(folder / f"vanillagrad{s}.nii.gz") for s in ("_native", ""))
    assert np.linalg.norm(centre(native) - centre(model_space)) < 4.0


def test_scans_with_lesions_get_truth_metrics_and_baselines(explained):
    table, _ = explained
    lesioned = table[table["loes_score"] > 0]
    assert len(lesioned)
    assert lesioned["lesion_share"].between(0, 1, inclusive="neither").all()
    np.testing.assert_allclose(
        lesioned["brain_mask_relevance_mass_accuracy"], lesioned["lesion_share"]
    )
    assert (lesioned["brain_mask_auc"] == 0.5).all()
    assert lesioned["random_auc"].between(0.4, 0.6).all()
    correlation = lesioned["random_weights_rank_correlation"]
    assert correlation.dropna().between(-1, 1).all()
    # NaN only where a map is flat over the brain (a GradCAM the ReLU zeroed)
    gradients = lesioned["method"] == "vanillagrad"
    assert correlation[gradients].notna().all()
    healthy = table[table["loes_score"] == 0]
    assert healthy["auc"].isna().all()
    assert (healthy["mass"] >= 0).all()


def test_the_synthetic_scans_lie_in_mni_space_and_get_area_shares(explained):
    table, _ = explained
    assert (table["mni_overlap"] > 0.7).all()
    assert table["in_mni"].all()
    areas = table[[c for c in table.columns if c.startswith("area_")]]
    with_mass = table["mass"] > 0
    np.testing.assert_allclose(areas[with_mass].sum(axis=1), 1.0)


def test_the_files_agree_with_the_table(explained):
    table, out = explained
    written = pd.read_csv(out / EXPLANATIONS_FILE, dtype={"session": str}, keep_default_na=False)
    assert list(written.columns) == list(table.columns)
    np.testing.assert_allclose(written["predicted"], table["predicted"])
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert summary == table.attrs["summary"]
    for method in METHODS:
        entry = summary["methods"][method]
        assert entry["scans"] == 4
        rows = table[(table["method"] == method) & table["lesion_share"].notna()]
        assert entry["scans_with_lesions"] == len(rows)
        assert entry["map"]["auc"] == pytest.approx(rows["auc"].mean())
        assert entry["baselines"]["random"]["auc"] == pytest.approx(rows["random_auc"].mean())
        assert sum(e["scans"] for e in entry["by_fold"].values()) == 4
    page = (out / PAGE_FILE).read_text()
    # what the models learned from, and the tiny run's own warning (a smoke run)
    assert summary["provenance"]["trained"].startswith("trained on ")
    assert "The models were trained on " in page
    assert "own report warns:</strong> Smoke run: 2 training epochs" in page
    figures = [
        line.split('src="')[1].split('"')[0] for line in page.splitlines() if "<img " in line
    ]
    assert len(figures) == len(table)
    assert all((out / f).is_file() for f in figures)


@needs_chromium
def test_the_page_shows_every_figure_without_overflow(explained):
    _, out = explained
    measured = measure_page((out / PAGE_FILE).read_text(), out)
    assert len(measured["images"]) == 4 * len(METHODS)
    assert all(image["width"] > 0 for image in measured["images"]), measured["images"]
    assert measured["overflowing"] == [], measured["overflowing"]


def test_a_second_run_reuses_finished_maps_and_redoes_changed_ones(tiny_run, tmp_path):
    def run(samples: int):
        settings = SaliencySettings(smoothgrad_samples=samples)
        return explain(
            tiny_run, methods=["smoothgrad"], scans=2, out=tmp_path / "out", settings=settings
        )

    first = run(2)
    records = sorted((tmp_path / "out").glob("scans/*/smoothgrad.json"))
    stamps = [p.stat().st_mtime_ns for p in records]
    again = run(2)
    assert [p.stat().st_mtime_ns for p in records] == stamps
    pd.testing.assert_frame_equal(first, again)
    run(3)
    assert all(p.stat().st_mtime_ns != s for p, s in zip(records, stamps, strict=True))


def test_new_scans_are_explained_by_the_ensemble(tiny_run, tiny_manifest, tmp_path):
    table = explain(
        tiny_run,
        [tiny_manifest],
        methods=["gradcam"],
        scans=2,
        out=tmp_path / "new",
        device="cpu",
        sanity=False,
    )
    assert len(table) == 2
    assert (table["fold"] == "ensemble").all()
    assert table["random_weights_rank_correlation"].isna().all()
    assert table["lesion_share"].notna().sum() == (table["loes_score"] > 0).sum()


def test_an_unreadable_or_blank_scan_is_its_own_row(tiny_run, tiny_manifest, tmp_path):
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"not a nifti file")
    good = next(tiny_manifest.parent.glob("sub-002/ses-*/anat/*_T1w.nii.gz"))
    scan = nib.load(good)
    blank = tmp_path / "blank.nii.gz"
    nib.save(nib.Nifti1Image(np.full(scan.shape, np.nan, np.float32), scan.affine), blank)
    table = explain(tiny_run, [bad, blank, good], out=tmp_path / "out", device="cpu")
    assert len(table) == 3
    assert "broken.nii.gz" in table["error"].iloc[0] or table["error"].iloc[0]
    assert "holds no image after preprocessing" in table["error"].iloc[1]
    assert table["error"].iloc[2] == ""
    assert (tmp_path / "out" / "index.html").is_file()


def test_a_retrained_model_is_explained_again(tiny_run, tmp_path):
    import shutil

    import torch

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("explanations"))
    out = tmp_path / "out"
    first = explain(run, scans=2, out=out, sanity=False)
    checkpoint = torch.load(run / "fold_0" / "best.pt", weights_only=True)
    checkpoint["model"] = {
        k: v * 1.01 if v.is_floating_point() else v for k, v in checkpoint["model"].items()
    }
    torch.save(checkpoint, run / "fold_0" / "best.pt")
    again = explain(run, scans=2, out=out, sanity=False)
    redone = again["fold"] == "fold_0"
    assert redone.any()
    assert not np.allclose(again.loc[redone, "mass"], first.loc[redone, "mass"])


def test_a_mask_off_its_scans_grid_is_refused(tiny_run, tiny_manifest, tmp_path):
    manifest = pd.read_csv(tiny_manifest)
    row = manifest[manifest["loes_score"] > 0].iloc[0]
    folder = tiny_manifest.parent
    mask = nib.load(folder / row["lesion_mask"])
    shifted = mask.affine.copy()
    shifted[:3, 3] += 5.0  # the same voxels, 5 mm away
    moved = tmp_path / "moved_dseg.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(mask.dataobj), shifted), moved)
    table = pd.DataFrame(
        {
            "subject": [row["subject"]],
            "session": [row["session"]],
            "image": [str(folder / row["image"])],
            "loes_score": [row["loes_score"]],
            "lesion_mask": [str(moved)],
        }
    )
    path = tmp_path / "manifest.csv"
    table.to_csv(path, index=False)
    with pytest.raises(LoesError, match=r"moved_dseg\.nii\.gz\): the mask's affine differs"):
        explain(tiny_run, [path], out=tmp_path / "out", device="cpu")
    cropped = tmp_path / "cropped_dseg.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(mask.dataobj)[1:], mask.affine), cropped)
    table.assign(lesion_mask=str(cropped)).to_csv(path, index=False)
    with pytest.raises(LoesError, match=r"the mask's grid .* is not the scan's"):
        explain(tiny_run, [path], out=tmp_path / "out", device="cpu")
    single = tmp_path / "single_dseg.nii.gz"  # (X, Y, Z, 1), as FSL and ITK write them
    nib.save(nib.Nifti1Image(np.asarray(mask.dataobj)[..., None], mask.affine), single)
    table.assign(lesion_mask=str(single)).to_csv(path, index=False)
    explained = explain(tiny_run, [path], out=tmp_path / "single", sanity=False)
    assert explained["error"].iloc[0] == ""
    assert explained["lesion_share"].iloc[0] > 0
    stacked = tmp_path / "stacked_dseg.nii.gz"
    data = np.asarray(mask.dataobj)
    nib.save(nib.Nifti1Image(np.stack([data, data], axis=-1), mask.affine), stacked)
    table.assign(lesion_mask=str(stacked)).to_csv(path, index=False)
    with pytest.raises(LoesError, match=r"stacked_dseg\.nii\.gz\): the mask is 4D"):
        explain(tiny_run, [path], out=tmp_path / "out", device="cpu")


def test_bad_arguments_are_refused_before_any_work(tiny_run, tmp_path):
    with pytest.raises(LoesError, match="unknown method 'lime'; choose from gradcam"):
        explain(tiny_run, methods=["lime"], out=tmp_path / "a")
    with pytest.raises(LoesError, match=r"holds config\.yaml: its files are not explain's"):
        explain(tiny_run, out=tiny_run)
    with pytest.raises(LoesError, match=r"holds metrics\.json: its files are not explain's"):
        explain(tiny_run, out=tiny_run / "fold_0")
    with pytest.raises(
        LoesError, match=r"occlusion cube \(40 voxels\) is larger than the model's input 32x40x32"
    ):
        explain(
            tiny_run,
            methods="occlusion",
            settings=SaliencySettings(occlusion_size=40, occlusion_stride=40),
            out=tmp_path / "c",
        )
    with pytest.raises(
        LoesError,
        match=r"no 3D convolution 'nope'; its 3D convolutions are network\.features\.0 \(32x40x32",
    ):
        explain(
            tiny_run, methods="gradcam", settings=SaliencySettings(layer="nope"), out=tmp_path / "d"
        )
    with pytest.raises(LoesError, match="scans must be a number of scans, at least 1, or 'all'"):
        explain(tiny_run, scans=0, out=tmp_path / "b")
    assert not any((tmp_path / name).exists() for name in "abcd")


@pytest.mark.parametrize(
    ("scores", "n", "expected"),
    [
        ([0, 0, 0, 0, 1, 2, 5, 10, 20], 1, [7]),  # a mid-range score, not the lowest
        ([0, 0, 0, 0, 1, 2, 5, 10, 20], 3, [5, 7, 8]),  # nearest 3.3, 10 and 16.7
        ([0, 0, 0, 0], 2, [0, 1]),  # each scan once
    ],
)
def test_the_runs_scans_are_spread_over_the_range_of_scores(scores, n, expected):
    from loes.pipeline.explain.scans import _spread

    assert _spread(np.array(scores, dtype=float), n) == expected


def test_the_python_api_takes_one_method_and_all(tiny_run, tmp_path):
    table = explain(tiny_run, methods="GradCAM", scans="all", out=tmp_path / "o", sanity=False)
    assert (table["method"] == "gradcam").all()
    assert len(table) == len(pd.read_csv(tiny_run / "predictions.csv"))


def test_a_run_without_a_finished_fold_is_refused(tiny_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("metrics.json", "explanations"))
    with pytest.raises(LoesError, match="holds no finished fold model"):
        explain(run, out=tmp_path / "out")


def test_a_bundle_needs_scans(tiny_run, tmp_path):
    from loes.pipeline.predict.members import load_ensemble

    load_ensemble(tiny_run).save(tmp_path / "bundle")
    with pytest.raises(LoesError, match="exported ensemble, not a run folder"):
        explain(tmp_path / "bundle", out=tmp_path / "out")
