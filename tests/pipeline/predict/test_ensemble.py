"""The fold ensemble of a tiny finished run: consistency with the run, the interval, the call,
bad scans, determinism."""

import gzip
import json

import numpy as np
import pandas as pd
import pytest
import torch

from loes.data import load_dataset
from loes.errors import LoesError
from loes.pipeline import load_ensemble
from loes.pipeline.predict.export import FlipEnsemble
from loes.pipeline.predict.run_profile import PROFILE_FILE
from tests._floats import assert_float32_close, float32_close

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ensemble(tiny_run):
    return load_ensemble(tiny_run)


@pytest.fixture(scope="module")
def table(tiny_manifest):
    return load_dataset(tiny_manifest)


@pytest.fixture(scope="module")
def predicted(ensemble, table):
    return ensemble.predict(table, device="cpu")


def test_every_finished_fold_is_a_member(ensemble, tiny_run):
    assert [m.name for m in ensemble.members] == ["fold_0", "fold_1"]
    run = pd.read_csv(tiny_run / "predictions.csv")
    assert ensemble.calibration.n == len(run)  # every out-of-fold prediction calibrates
    assert ensemble.score_range == (run["loes_score"].min(), run["loes_score"].max())
    assert ensemble.threshold == 9.0
    assert ensemble.profile is not None
    assert (tiny_run / PROFILE_FILE).is_file()  # kept for the next load


def test_each_test_scan_with_its_own_fold_model_reproduces_the_run_exactly(
    ensemble, table, tiny_run
):
    for fold in (0, 1):
        run = pd.read_csv(tiny_run / f"fold_{fold}" / "predictions.csv", dtype={"session": str})
        run = run[run["model"] == "network"]
        tested = table.merge(run[["subject", "session"]], on=["subject", "session"])
        # the run's own order and batches: the fold's test scans in table order
        tested = table[table["image"].isin(tested["image"])]
        out = ensemble.predict(tested, tta="flip", members=[f"fold_{fold}"], device="cpu")
        merged = out.merge(run, on=["subject", "session"], suffixes=("", "_run"))
        assert len(merged) == len(run) > 0
        # exact: the run was predicted in this process (same threads, kernels and batches)
        # and its CSV holds each float in full, so the same weights give the same bits
        assert (merged[f"member_fold_{fold}"] == merged["predicted_run"]).all()


def test_the_prediction_is_the_members_mean_with_its_interval_and_call(predicted, table):
    assert len(predicted) == len(table)
    assert (predicted["image"] == table["image"]).all()  # input order
    members = predicted[["member_fold_0", "member_fold_1"]].to_numpy()
    # the score is rounded to 0.1, once
    assert (predicted["predicted"] == members.mean(axis=1).round(1)).all()
    np.testing.assert_allclose(predicted["spread"], members.std(axis=1, ddof=1), rtol=1e-12)
    assert (predicted["lower"] <= predicted["predicted"]).all()
    assert (predicted["predicted"] <= predicted["upper"]).all()
    assert predicted["lower"].min() >= 0
    assert predicted["upper"].max() <= 34
    assert (predicted["call"] == np.where(predicted["predicted"] >= 9, ">= 9", "< 9")).all()
    assert (predicted[["lower", "upper"]] == predicted[["lower", "upper"]].round(1)).all(axis=None)
    sure = ((predicted["lower"] >= 9) | (predicted["upper"] < 9)) & (predicted["flags"] == "")
    assert (predicted["call_sure"] == sure).all()
    assert (predicted["loes_score"] == table["loes_score"]).all()
    assert (predicted["error"] == "").all()
    seconds = predicted.attrs["seconds"]
    assert seconds["scans"] == len(table)
    assert seconds["network"] > 0
    assert predicted.attrs["thumbnails"][0].shape == (32, 40)  # (D, H) of the 32x40x32 input


def test_flip_averaging_matches_the_mirrored_inputs_through_each_member(ensemble, table, predicted):
    item = ensemble.members[0].model.preprocessing()({"image": table.loc[0, "image"]})
    module = FlipEnsemble([m.model for m in ensemble.members], ensemble.lr_axis).eval()
    with torch.no_grad():
        expected = module(item["image"].as_tensor()[None]).numpy()[0]
    got = predicted.loc[0, ["member_fold_0", "member_fold_1"]].to_numpy(float)
    assert_float32_close(got, expected)  # alone, not in a batch: float32 rounding
    unflipped = ensemble.predict(table.iloc[:1], tta="none", device="cpu")
    assert not float32_close(unflipped.loc[0, "member_fold_0"], got[0])


def test_the_same_scans_give_the_same_predictions(ensemble, table, predicted):
    again = ensemble.predict(table, device="cpu", batch_size=3)
    numbers = ["predicted", "lower", "upper", "member_fold_0", "member_fold_1"]
    assert_float32_close(again[numbers], predicted[numbers])  # other batches round apart


def test_a_bad_scan_is_its_own_row_and_the_others_are_scored(ensemble, table, tmp_path):
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(gzip.compress(b"not a nifti header" * 30))
    scans = [table.loc[0, "image"], tmp_path / "missing.nii.gz", corrupt, table.loc[1, "image"]]
    out = ensemble.predict(scans, device="cpu")
    assert out["image"].tolist() == [str(s) for s in scans]
    assert out.loc[1, "error"] == "does not exist"
    assert "NIfTI" in out.loc[2, "error"] or "not" in out.loc[2, "error"]
    assert out.loc[[1, 2], "predicted"].isna().all()
    assert (out.loc[[0, 3], "error"] == "").all()
    assert out.loc[[0, 3], "predicted"].notna().all()


@pytest.mark.parametrize("voxels", ["one NaN", "all zero"])
def test_a_scan_without_an_image_is_an_error_not_a_score(ensemble, table, tmp_path, voxels):
    import nibabel as nib

    image = nib.load(table.loc[0, "image"])
    data = np.asarray(image.dataobj, dtype=np.float32)
    if voxels == "one NaN":
        data[tuple(s // 2 for s in data.shape)] = np.nan
    else:
        data[:] = 0
    path = tmp_path / "blank.nii.gz"
    nib.save(nib.Nifti1Image(data, image.affine), path)
    out = ensemble.predict([path, table.loc[1, "image"]], device="cpu")
    assert "holds no image after preprocessing" in out.loc[0, "error"]
    assert np.isnan(out.loc[0, "predicted"])
    assert out.loc[1, "error"] == ""


def test_a_post_contrast_file_is_flagged_when_the_run_trained_without_them(
    ensemble, table, tmp_path
):
    import shutil

    assert not ensemble.include_gd
    post = tmp_path / "sub-9_ses-1_ce-gadolinium_T1w.nii.gz"
    shutil.copy(table.loc[0, "image"], post)
    out = ensemble.predict([post, table.loc[0, "image"]], device="cpu")
    assert "post-contrast (ce- in the file name)" in out.loc[0, "flags"]
    assert "post-contrast" not in out.loc[1, "flags"]
    # flagged, still scored: the same voxels in one batch through the same kernels, exactly
    assert out.loc[0, "predicted"] == out.loc[1, "predicted"]


def test_a_scan_unlike_the_training_scans_is_flagged(ensemble, table, tmp_path):
    import nibabel as nib

    image = nib.load(table.loc[0, "image"])
    stretched = nib.Nifti1Image(  # the same voxels, 1.8 times larger: a huge head
        np.asarray(image.dataobj), image.affine @ np.diag([1.8, 1.8, 1.8, 1])
    )
    path = tmp_path / "huge.nii.gz"
    nib.save(stretched, path)
    out = ensemble.predict([path], device="cpu")
    assert out.loc[0, "error"] == ""
    assert "largest field of view (mm)" in out.loc[0, "flags"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tta": "rotate"}, "tta must be"),
        ({"coverage": 1.5}, "coverage"),
        ({"members": ["x"]}, "unknown member"),
    ],
)
def test_bad_arguments_are_refused(ensemble, table, kwargs, message):
    with pytest.raises(LoesError, match=message):
        ensemble.predict(table.iloc[:1], device="cpu", **kwargs)


def test_a_folder_that_is_no_run_is_refused(tmp_path):
    with pytest.raises(LoesError, match="neither a run folder"):
        load_ensemble(tmp_path)
    with pytest.raises(LoesError, match="is not a folder"):
        load_ensemble(tmp_path / "missing")


def test_a_saved_ensemble_predicts_the_same(ensemble, table, predicted, tmp_path):
    path = ensemble.save(tmp_path / "models")
    assert json.loads(path.read_text())["threshold"] == 9.0
    for member in ensemble.members:  # plain tensors and containers only
        checkpoint = torch.load(tmp_path / "models" / f"{member.name}.pt", weights_only=True)
        assert set(checkpoint) == {"spec", "model"}
    again = load_ensemble(tmp_path / "models").predict(table, device="cpu")
    pd.testing.assert_frame_equal(again, predicted)


def test_a_table_of_images_alone_is_enough(ensemble, table, predicted):
    out = ensemble.predict(table[["image"]].iloc[:2], device="cpu")
    assert out["subject"].tolist() == ["", ""]
    assert out["loes_score"].isna().all()
    assert_float32_close(out["predicted"], predicted["predicted"].iloc[:2])  # other batches
    with pytest.raises(LoesError, match="image column"):
        ensemble.predict(table[["subject"]], device="cpu")
