"""The presets inside a MONAI bundle run by MONAI's own command, on a fresh install."""

import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import torch


def test_monai_bundle_run_applies_the_preprocessing(tmp_path):
    image = tmp_path / "scan.nii.gz"
    data = np.zeros((40, 48, 40), dtype=np.float32)
    data[8:32, 8:40, 8:32] = np.random.default_rng(0).uniform(50, 150, (24, 32, 24))
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0])), image)
    out = tmp_path / "preprocessed.pt"
    config = {
        "imports": ["$import torch"],
        "preprocessing": {
            "_target_": "loes.transforms.preprocessing",
            "pixdim": 4.0,
            "spatial_size": [16, 24, 16],
        },
        "run": [
            f"$torch.save(@preprocessing({{'image': '{image}'}})['image'].as_tensor(), '{out}')"
        ],
    }
    path = tmp_path / "inference.json"
    path.write_text(json.dumps(config))
    result = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    preprocessed = torch.load(out, weights_only=True)
    assert preprocessed.shape == (1, 16, 24, 16)
    assert preprocessed.std() > 0.1  # the head's texture survives, normalised
