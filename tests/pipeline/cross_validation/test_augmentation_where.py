"""``augmentation.where``: the training augmentation in the data loader (MONAI, per scan) or on
each batch on the training device (RandBatchAugmentation), chosen by the settings, wired into
training and reproducible."""

import pandas as pd
import pytest
import torch
from monai.transforms import Compose

from loes.errors import LoesError
from loes.pipeline.cross_validation.cohort import augmentation_for, augmentation_where
from loes.pipeline.run.config_loading import load_config
from loes.transforms import RandBatchAugmentation
from tests.pipeline.cross_validation.test_training import _random_fold

OFF = [f"augmentation.{p}_prob=0" for p in ("affine", "flip", "bias", "noise", "contrast")]


def _config(*overrides):
    return load_config(
        overrides=[
            "model.name=sfcn",
            "preprocessing.spatial_size=[32, 32, 32]",
            "training.epochs=2",
            *overrides,
        ]
    )


CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize(
    ("overrides", "device", "where", "kind"),
    [
        (["device=cpu"], None, "loader", Compose),  # auto on a CPU: as before
        (["device=cuda"], None, "batch", RandBatchAugmentation),  # no GPU needed to decide
        ([], CPU, "loader", Compose),
        ([], CUDA, "batch", RandBatchAugmentation),
        (["augmentation.elastic=true"], CUDA, "loader", Compose),  # elastic is per scan only
        (["augmentation.where=batch"], CPU, "batch", RandBatchAugmentation),
        (["augmentation.where=loader"], CUDA, "loader", Compose),
        (["augmentation.where=loader", "augmentation.elastic=true"], CPU, "loader", Compose),
    ],
)
def test_where_resolves_and_builds_the_matching_augmentation(overrides, device, where, kind):
    config = load_config(overrides=overrides)
    assert augmentation_where(config, device) == where
    assert isinstance(augmentation_for(config, device), kind)


def test_no_augmentation_is_none_wherever():
    for where in ("auto", "loader", "batch"):
        config = load_config(
            overrides=["augmentation.enabled=false", f"augmentation.where={where}"]
        )
        assert augmentation_for(config) is None


def test_the_batch_path_takes_its_ranges_from_the_same_settings():
    """One source: the section's fields through augmentation(), at the preprocessing's voxel
    size (translation in voxels: 6 mm at 3 mm voxels is 2 voxels)."""
    config = load_config(
        overrides=[
            "preprocessing.pixdim=[3, 3, 3]",
            "augmentation.translate_mm=6",
            "augmentation.rotate_degrees=10",
            "augmentation.noise_std=0.07",
            "augmentation.gamma_range=[0.8, 1.2]",
            "augmentation.flip_prob=0.3",
            "augmentation.where=batch",
        ]
    )
    batch = augmentation_for(config)
    assert batch.translate_range == pytest.approx((2.0, 2.0, 2.0))
    assert batch.rotate_range == pytest.approx((0.174533,) * 3, rel=1e-5)  # radians
    assert batch.noise_std == pytest.approx(0.07)
    assert batch.gamma_range == pytest.approx((0.8, 1.2))
    assert batch.flip_prob == pytest.approx(0.3)
    assert batch.flip_axes == (0,)


def test_elastic_on_the_batch_is_refused_with_what_to_do():
    with pytest.raises(LoesError, match=r"augmentation\.where: batch has no elastic deformation"):
        load_config(overrides=["augmentation.where=batch", "augmentation.elastic=true"])
    with pytest.raises(LoesError, match=r"augmentation\.where must be one of"):
        load_config(overrides=["augmentation.where=gpu"])


def test_where_decides_results():
    """The two paths draw other random numbers, so a run folder made with one is not resumed
    with the other."""
    assert "where" in load_config().deciding_results()["augmentation"]


@pytest.mark.slow
def test_training_with_the_batch_path_at_prob_0_is_training_without_augmentation(tmp_path):
    """The loader gets no transform when the batch path is chosen, the module at probability
    0 leaves the batches bit for bit, and its own generator leaves the batch order alone."""
    config = _config()
    data = _random_fold()
    data.augment = augmentation_for(_config(*OFF, "augmentation.where=batch"))
    assert isinstance(data.augment, RandBatchAugmentation)
    from loes.pipeline.cross_validation.training import train_fold

    model, history = train_fold(config, data, tmp_path / "off", torch.device("cpu"), seed=0)
    data.augment = None
    plain, plain_history = train_fold(config, data, tmp_path / "none", torch.device("cpu"), seed=0)
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)
    pd.testing.assert_series_equal(history["train_loss"], plain_history["train_loss"])


@pytest.mark.slow
def test_training_with_the_batch_path_augments_and_repeats_itself(tmp_path):
    from loes.pipeline.cross_validation.training import train_fold

    config = _config("augmentation.where=batch")
    data = _random_fold()
    data.augment = augmentation_for(config)
    assert isinstance(data.augment, RandBatchAugmentation)
    runs = [
        train_fold(config, data, tmp_path / str(i), torch.device("cpu"), seed=0) for i in (0, 1)
    ]
    (first, first_history), (second, second_history) = runs
    for key, value in first.state_dict().items():
        torch.testing.assert_close(second.state_dict()[key], value, rtol=0, atol=0)
    pd.testing.assert_frame_equal(
        first_history.drop(columns=[c for c in first_history if c.endswith("seconds")]),
        second_history.drop(columns=[c for c in second_history if c.endswith("seconds")]),
    )
    data.augment = None
    _, plain_history = train_fold(config, data, tmp_path / "plain", torch.device("cpu"), seed=0)
    assert not first_history["train_loss"].equals(plain_history["train_loss"])


@pytest.mark.slow
def test_cross_validation_with_the_batch_path_runs_and_repeats_itself(tiny_config, tmp_path):
    """A tiny cross-validation on the batch path, twice: the same predictions byte for byte."""
    from loes.pipeline import cross_validate

    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        cross_validate(tiny_config(out, "augmentation.where=batch"))
    for name in ("predictions.csv", "fold_0/predictions.csv", "fold_1/predictions.csv"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    history = pd.read_csv(outs[0] / "fold_0" / "history.csv")
    assert list(history["epoch"]) == [1, 2]
    assert history["train_loss"].notna().all()
