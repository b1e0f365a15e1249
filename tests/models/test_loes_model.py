import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch

from loes.models import LoesModel


def _model(**kwargs):
    torch.manual_seed(0)
    return LoesModel(
        "sfcn",
        (32, 40, 32),
        preprocessing={"pixdim": [4.0, 4.0, 4.0], "spatial_size": [32, 40, 32]},
        score_mean=4.0,
        score_std=5.0,
        **kwargs,
    )


def test_output_is_the_network_output_in_loes_points():
    model = _model().eval()
    x = torch.randn(3, 1, 32, 40, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        raw = model.network(x)[:, 0]
        points = model(x)
    assert points.shape == (3,)
    # exact: the same network on the same batch in one process, then the same float32 ops
    torch.testing.assert_close(points, raw * 5.0 + 4.0, rtol=0, atol=0)


def test_save_and_load_rebuild_the_same_model(tmp_path):
    model = _model(network_kwargs={"dropout": 0.3}).eval()
    model.save(tmp_path / "best.pt", epoch=4, val_mae=1.25)
    loaded, extra = LoesModel.load(tmp_path / "best.pt")
    assert extra == {"epoch": 4, "val_mae": 1.25}
    assert loaded.spec == model.spec
    assert loaded.spec["network_kwargs"] == {"dropout": 0.3}
    assert [m.p for m in loaded.modules() if isinstance(m, torch.nn.Dropout)] == [0.3]
    x = torch.randn(2, 1, 32, 40, 32)
    with torch.no_grad():  # exact: the saved weights, the same batch, kernels and threads
        torch.testing.assert_close(loaded.eval()(x), model(x), rtol=0, atol=0)
    assert float(loaded.mean) == 4.0
    assert float(loaded.std) == 5.0
    # nothing but plain types and tensors: loadable without unpickling objects
    checkpoint = torch.load(tmp_path / "best.pt", weights_only=True)
    assert set(checkpoint) == {"spec", "model", "epoch", "val_mae"}


def test_the_same_weights_give_the_same_checkpoint_bytes(tmp_path):
    model = _model()
    model.save(tmp_path / "a.pt", epoch=1)
    model.save(tmp_path / "b" / "best.pt", epoch=1)  # another name, another temporary file
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b" / "best.pt").read_bytes()


def test_preprocessing_is_rebuilt_from_the_saved_settings(tmp_path):
    _model().save(tmp_path / "m.pt")
    loaded, _ = LoesModel.load(tmp_path / "m.pt")
    head = np.zeros((60, 70, 60), dtype=np.float32)
    head[10:50, 10:60, 10:50] = np.random.default_rng(0).uniform(50, 100, (40, 50, 40))
    nib.save(nib.Nifti1Image(head, np.diag([2.0, 2.0, 2.0, 1.0])), tmp_path / "t1.nii.gz")
    image = loaded.preprocessing()({"image": str(tmp_path / "t1.nii.gz")})["image"]
    assert image.shape == (1, 32, 40, 32)
    np.testing.assert_allclose(np.diag(image.affine)[:3], [4.0, 4.0, 4.0])


def test_a_checkpoint_without_description_needs_one(tmp_path):
    model = _model()
    torch.save({"model": model.state_dict(), "epoch": 2}, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="without the description of their model"):
        LoesModel.load(tmp_path / "old.pt")
    loaded, extra = LoesModel.load(tmp_path / "old.pt", spec=model.spec)
    assert extra == {"epoch": 2}
    torch.testing.assert_close(loaded.state_dict()["mean"], torch.tensor(4.0))


def test_predictions_under_bf16_autocast_are_float32_scaled_network_outputs():
    """Autocast computes the network in bf16 (here the CPU's, as CUDA's does on a GPU); the
    scaling to Loes points must not round the scores to bf16's 8 significant bits (1/8 point
    between 16 and 32). The scores equal the float32 scaling of the same bf16 network output
    within 1e-3 points (float32 rounding at 34 is 4e-6); bf16 scaling is up to 1/16 off."""
    torch.manual_seed(0)
    model = LoesModel("sfcn", (32, 40, 32), score_mean=20.0, score_std=10.0).eval()
    x = torch.randn(16, 1, 32, 40, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        raw = model.network(x)[:, 0]
        points = model(x)
    assert raw.dtype == torch.bfloat16  # the network did compute in bf16
    assert points.dtype == torch.float32
    expected = raw.float() * 10.0 + 20.0
    # the test can fail: these scores scaled in bf16 are that much off
    assert (expected.bfloat16().float() - expected).abs().max() > 1e-2
    torch.testing.assert_close(points, expected, rtol=0, atol=1e-3)


def _devices() -> list[str]:
    return ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


@pytest.mark.parametrize("device", _devices())
def test_checkpoints_hold_cpu_tensors_whatever_the_device_trained_on(tmp_path, device):
    """A checkpoint written on a GPU loads on a machine without one with a plain
    ``torch.load(path, weights_only=True)``: no ``map_location``, the weights and the
    optimiser's state (AdamW's moments live on the model's device) on the CPU."""
    model = _model().to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 1, 32, 40, 32, device=device)).sum().backward()
    optimizer.step()
    model.save(tmp_path / "last.pt", optimizer=optimizer.state_dict(), epoch=1)
    assert next(model.parameters()).device.type == device  # the live model stays where it was
    code = (
        "import sys, torch; c = torch.load(sys.argv[1], weights_only=True); "
        "t = [v for v in c['model'].values()]; "
        "t += [v for s in c['optimizer']['state'].values() for v in s.values()]; "
        "print(len(t), sorted({v.device.type for v in t}))"
    )
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # a machine without a GPU
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "last.pt")],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout.split(maxsplit=1)
    assert int(out[0]) > len(model.state_dict())  # weights and moments
    assert out[1].strip() == "['cpu']"
