"""Never a confident wrong answer: what a run knows travels with its models (its warnings, the
profile of its scans), scans upside down, back to front or trained on are flagged, a flagged
prediction is never a sure call, and none of it depends on the folder loes is started from."""

import dataclasses
import gzip
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml

from loes.data import load_dataset
from loes.pipeline import load_config, load_ensemble
from loes.pipeline.predict.orientation import COARSE_SHAPE
from loes.pipeline.predict.run_profile import PROFILE_FILE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def table(tiny_manifest):
    return load_dataset(tiny_manifest)


def _rewritten(source: str, path, change) -> str:
    """``source``'s voxels through ``change``, with its header, saved at ``path``."""
    image = nib.load(source)
    data = change(np.asanyarray(image.dataobj))
    nib.save(nib.Nifti1Image(np.ascontiguousarray(data), image.affine, image.header), path)
    return str(path)


def _axis(image_path: str, letters: str) -> int:
    codes = nib.aff2axcodes(nib.load(image_path).affine)
    return next(i for i, c in enumerate(codes) if c in letters)


@pytest.fixture(scope="module")
def scans(table, tmp_path_factory):
    """A training scan copied byte for byte, the same scan re-acquired (other bytes), flipped
    head to foot, flipped front to back, and a training scan cropped to a third of its height."""
    folder = tmp_path_factory.mktemp("scans")
    first = table.loc[0, "image"]
    si, ap = _axis(first, "SI"), _axis(first, "AP")
    copied = folder / "copied.nii.gz"
    shutil.copy(first, copied)

    def crop(d):
        n = d.shape[si]
        return np.take(d, range(n // 3, 2 * n // 3), axis=si)

    decompressed = folder / "renamed.nii"  # the same voxels, uncompressed, under another name
    decompressed.write_bytes(gzip.decompress(Path(first).read_bytes()))
    return {
        "copied": str(copied),
        "decompressed": str(decompressed),
        "again": _rewritten(first, folder / "again.nii.gz", lambda d: d * 1.01),
        "upside_down": _rewritten(first, folder / "si.nii.gz", lambda d: np.flip(d, si)),
        "back_to_front": _rewritten(first, folder / "ap.nii.gz", lambda d: np.flip(d, ap)),
        "cropped": _rewritten(first, folder / "crop.nii.gz", crop),
    }


@pytest.fixture(scope="module")
def rows(tiny_run, scans):
    table = load_ensemble(tiny_run).predict(list(scans.values()), device="cpu")
    return dict(zip(scans, table.to_dict("records"), strict=True))


def test_the_run_folder_keeps_the_profile_of_every_scan_it_trained_on(tiny_run, table):
    profile = load_ensemble(tiny_run).profile
    assert (tiny_run / PROFILE_FILE).is_file()
    assert len(profile.fingerprints) == len(table)  # every scan, not only the profiled ones
    assert set(profile.fingerprints.values()) == {
        f"{r.subject} {r.session}" for r in table.itertuples()
    }
    assert np.asarray(profile.template).shape == COARSE_SHAPE
    assert profile.spread_p95 is not None  # the fold models' spread, added when the run ended
    assert set(profile.scans) <= set(table["image"])


def test_a_smoke_runs_warning_is_in_every_prediction_and_no_call_is_sure(tiny_run, rows):
    ensemble = load_ensemble(tiny_run)
    assert ensemble.card.warnings[0].startswith("Smoke run: 2 training epochs")
    for row in rows.values():
        assert "run: Smoke run: 2 training epochs" in row["flags"]
        assert row["call_sure"] is False


def test_a_scan_upside_down_or_back_to_front_against_its_header_is_flagged(rows):
    # one flag each, whole: the page splits the flags at "; "
    flags = rows["upside_down"]["flags"].split("; ")
    assert any(f.startswith("looks upside down") and f.endswith("to NIfTI") for f in flags)
    flags = rows["back_to_front"]["flags"].split("; ")
    assert any(f.startswith("looks back to front") and f.endswith("to NIfTI") for f in flags)
    for name in ("copied", "again"):
        assert "looks " not in rows[name]["flags"]


def test_a_scan_the_run_trained_on_is_flagged_in_sample(rows, table):
    first = table.loc[0]
    in_sample = f"in-sample: the run trained on this very scan ({first.subject} {first.session})"
    for name in ("copied", "decompressed"):  # byte for byte, or the same voxels re-saved
        flags = rows[name]["flags"].split("; ")  # one flag, whole: the page splits at "; "
        assert any(f.startswith(in_sample) and f.endswith("out-of-fold prediction)") for f in flags)
    assert "in-sample" not in rows["again"]["flags"]  # other voxels: a new acquisition


def test_a_flagged_prediction_never_gets_a_sure_call(tiny_run, scans):
    ensemble = load_ensemble(tiny_run)
    # the same run without its smoke warning: only the scans' own flags remain
    ensemble.card = dataclasses.replace(ensemble.card, warnings=())
    table = ensemble.predict(list(scans.values()), device="cpu")
    flagged = table["flags"] != ""
    assert flagged.sum() >= 5  # in-sample twice, upside down, back to front, cropped
    assert not table.loc[flagged, "call_sure"].any()
    one_side = (table["lower"] >= 9) | (table["upper"] < 9)
    assert (table["call_sure"] == (one_side & ~flagged)).all()


def test_flags_do_not_depend_on_the_folder_loes_starts_in_nor_on_the_training_data(
    tiny_run, scans, tmp_path, monkeypatch
):
    """A copy of the run whose data is gone, used from another folder, flags what the run
    flags: what it knows is in its folder."""
    moved = shutil.copytree(tiny_run, tmp_path / "moved")
    config = yaml.safe_load((moved / "config.yaml").read_text())
    config["data"]["source"] = str(tmp_path / "gone" / "manifest.csv")
    (moved / "config.yaml").write_text(yaml.safe_dump(config))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    here = load_ensemble(tiny_run).predict(list(scans.values()), device="cpu")
    there = load_ensemble(moved).predict(list(scans.values()), device="cpu")
    assert there["flags"].tolist() == here["flags"].tolist()
    assert "far from the training scans" in there.loc[5, "flags"]  # the cropped scan


def test_relative_data_folders_are_saved_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(overrides=["data.cache_dir=cache/loes"])
    assert config.data.cache_dir == str(tmp_path / "cache" / "loes")


def test_a_profile_from_an_older_loes_says_what_it_cannot_screen(tiny_run, scans, tmp_path):
    run = shutil.copytree(tiny_run, tmp_path / "old")
    profile = json.loads((run / PROFILE_FILE).read_text())
    for key in ("template", "fingerprints", "scans", "slice_max"):
        del profile[key]
    (run / PROFILE_FILE).write_text(json.dumps(profile))
    table = load_ensemble(run).predict([scans["copied"], scans["upside_down"]], device="cpu")
    for flags in table["flags"]:
        assert "partly screened: the run's training_profile.json predates" in flags
        assert "the orientation and in-sample and thick-slice screens" in flags
        assert "in-sample:" not in flags
        assert "looks upside down" not in flags


def test_a_run_that_never_saw_the_threshold_says_so_in_every_row(tiny_run, scans):
    ensemble = load_ensemble(tiny_run)
    ensemble.card = dataclasses.replace(ensemble.card, warnings=())
    ensemble.score_range = (0.0, 6.0)  # as a run on a cohort of mild cases
    table = ensemble.predict([scans["again"]], device="cpu")
    assert (
        "run: it trained on no scan at or above 9 (its highest score is 6)"
        in (table.loc[0, "flags"])
    )
    assert not table.loc[0, "call_sure"]
