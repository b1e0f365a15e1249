"""`loes export`: a MONAI bundle that loads safely and predicts what `loes predict` does."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from loes.data import load_dataset
from loes.pipeline import load_ensemble
from loes.pipeline.predict.export import export_bundle
from tests._floats import NETWORK_RTOL, assert_float32_close

pytestmark = pytest.mark.slow

#: the keys MONAI's bundle metadata schema (monai/bundle/meta_schema.json) requires, with types
REQUIRED = {
    "schema": str,
    "version": str,
    "monai_version": str,
    "pytorch_version": str,
    "numpy_version": str,
    "required_packages_version": dict,
    "task": str,
    "description": str,
    "authors": str,
    "copyright": str,
    "network_data_format": dict,
}
TENSOR = {
    "type": str,
    "format": str,
    "num_channels": int,
    "spatial_shape": list,
    "dtype": str,
    "value_range": list,
}


@pytest.fixture(scope="module")
def bundle(tiny_run, tmp_path_factory):
    return export_bundle(tiny_run, tmp_path_factory.mktemp("export") / "bundle")


def test_the_bundle_carries_the_license(bundle):
    assert "Apache License" in (bundle / "LICENSE").read_text()


def test_the_metadata_has_what_the_bundle_schema_requires(bundle):
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    for key, kind in REQUIRED.items():
        assert isinstance(meta[key], kind), key
    formats = meta["network_data_format"]
    for tensor in (formats["inputs"]["image"], formats["outputs"]["pred"]):
        for key, kind in TENSOR.items():
            assert isinstance(tensor[key], kind), key
    assert formats["inputs"]["image"]["spatial_shape"] == [32, 40, 32]
    assert meta["required_packages_version"]["fire"]  # MONAI's bundle command line needs it
    # MONAI reads the metadata as the bundle's users will: the required packages stay listed
    # (a deprecated optional_packages_version, even empty, would replace them)
    from monai.bundle import ConfigParser

    read = ConfigParser()
    read.read_meta(bundle / "configs" / "metadata.json")
    assert set(read.get("_meta_")["required_packages_version"]) >= {"loes", "fire", "nibabel"}


def test_every_weight_file_loads_with_weights_only(bundle):
    files = sorted((bundle / "models").glob("*.pt"))
    assert [f.name for f in files] == [
        "fold_0.pt",
        "fold_0_change.pt",
        "fold_1.pt",
        "fold_1_change.pt",
    ]  # the scan models and the paired change models
    for path in files:
        assert set(torch.load(path, weights_only=True)) == {"spec", "model"}


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_the_torchscript_gives_the_members_flip_averaged(bundle, tiny_manifest):
    table = load_dataset(tiny_manifest).iloc[:2]
    ensemble = load_ensemble(bundle)
    expected = ensemble.predict(table, device="cpu")
    scripted = torch.jit.load(str(bundle / "models" / "model.ts"))
    inputs = torch.stack(
        [
            ensemble.members[0].model.preprocessing()({"image": p})["image"].as_tensor()
            for p in table["image"]
        ]
    )
    with torch.no_grad():
        got = scripted(inputs).numpy()
    assert got.shape == (2, 2)
    members = expected[["member_fold_0", "member_fold_1"]].to_numpy()
    assert_float32_close(got, members)  # TorchScript and eager modules round apart


#: configs/inference.json as `loes export` wrote it before the pipeline was split into rooms
#: (kept verbatim): it imports ``loes.pipeline.prediction_page``, which must keep working
OLD_INFERENCE = Path(__file__).parent / "data" / "inference-0.1.json"


@pytest.mark.parametrize("written_by", ["today", "loes 0.1 before the rooms"])
def test_monai_bundle_run_writes_what_loes_predict_writes(
    bundle, tiny_run, tiny_manifest, tmp_path, written_by
):
    if written_by != "today":
        bundle = Path(shutil.copytree(bundle, tmp_path / "old"))
        shutil.copy(OLD_INFERENCE, bundle / "configs" / "inference.json")
        assert "loes.pipeline.prediction_page" in OLD_INFERENCE.read_text()
    scans = tmp_path / "scans"
    scans.mkdir()
    for image in load_dataset(tiny_manifest)["image"].iloc[:4]:
        shutil.copy(image, scans)
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file"]
    command += [str(bundle / "configs" / "inference.json"), "--bundle_root", str(bundle)]
    command += [
        "--dataset_dir",
        str(scans),
        "--output_dir",
        str(tmp_path / "eval"),
        "--device",
        "cpu",
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[:3000]
    from_bundle = pd.read_csv(tmp_path / "eval" / "predictions.csv")
    from loes.cli import main

    assert main(["predict", str(tiny_run), str(scans), "--out", str(tmp_path / "p.csv")]) == 0
    # another process, maybe other threads: float32 rounding, relative to each value and to
    # the 34-point scale every number column (scores, interval, spread, members) is on
    pd.testing.assert_frame_equal(
        from_bundle, pd.read_csv(tmp_path / "p.csv"), rtol=NETWORK_RTOL, atol=NETWORK_RTOL * 34
    )
    assert len(from_bundle) == 4
    if written_by == "today":  # and the changes between sub-001's three sessions
        changes = pd.read_csv(tmp_path / "eval" / "changes.csv")
        pd.testing.assert_frame_equal(
            changes,
            pd.read_csv(tmp_path / "p_changes.csv"),
            rtol=NETWORK_RTOL,
            atol=NETWORK_RTOL * 34,
        )
        assert changes[["from_session", "to_session"]].values.tolist() == [
            ["ses-01", "ses-02"],
            ["ses-02", "ses-03"],
        ]
