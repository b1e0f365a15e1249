"""loes.transforms.preprocessing / augmentation: geometry, normalisation, inversion, caching."""

from __future__ import annotations

import ast
import inspect
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from monai.bundle import ConfigParser
from monai.data import CacheDataset, DataLoader, MetaTensor
from monai.transforms import Compose, Invertd
from numpy.testing import assert_allclose

import loes.transforms
from loes.data.validation import DEFAULT_PIXDIM
from loes.transforms import NORMALIZE_MODES, BrainForeground, augmentation, preprocessing
from tests.transforms._helpers import (
    MARKER,
    grid_affine,
    marker_voxel,
    phantom,
    random_affine,
    sample_world,
    template_moved,
    write_nifti,
)

FOV = np.array([80.0, 96.0, 72.0])
SIZE = (72, 88, 64)
ONE_MM = {"pixdim": 1.0, "spatial_size": SIZE}  # the tests' 1 mm preset
_AXIS = {"R": 0, "L": 0, "A": 1, "P": 1, "S": 2, "I": 2}


def scan(tmp_path, axcodes="RAS", voxel=(1.0, 1.0, 1.0), name="scan") -> tuple[str, np.ndarray]:
    shape = [round(FOV[_AXIS[c]] / v) for c, v in zip(axcodes, voxel, strict=True)]
    affine = grid_affine(axcodes, voxel, (1.3, -2.1, 3.7), shape)
    return write_nifti(
        tmp_path / f"{name}.nii.gz", sample_world(phantom, affine, shape), affine
    ), affine


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> np.ndarray:
    path, _ = scan(tmp_path_factory.mktemp("ref"))
    return marker_voxel(preprocessing(**ONE_MM)({"image": path})["image"])


@pytest.mark.parametrize(
    ("axcodes", "voxel"),
    [
        ("RAS", (1.0, 1.0, 1.0)),
        ("LPS", (1.0, 1.0, 1.0)),
        ("PIR", (1.0, 1.0, 1.0)),  # sagittal
        ("RAS", (0.9, 0.9, 0.9)),
        ("RAS", (1.0, 1.0, 3.0)),
        ("LIP", (1.0, 3.0, 1.2)),  # coronal thick slices
    ],
)
def test_marker_lands_on_same_voxel_whatever_the_input_grid(tmp_path, reference, axcodes, voxel):
    path, _ = scan(tmp_path, axcodes, voxel)
    out = preprocessing(**ONE_MM)({"image": path})["image"]
    assert isinstance(out, MetaTensor)
    assert out.shape == (1, *SIZE)
    assert out.dtype == torch.float32
    voxel_out = marker_voxel(out)
    assert np.abs(voxel_out - reference).max() <= 1.5  # 1 mm voxels
    # the output affine is RAS at 1 mm and still maps the marker to its world position
    affine = out.affine.numpy()
    assert_allclose(affine[:3, :3], np.eye(3), atol=1e-6)
    assert_allclose((affine @ np.r_[voxel_out, 1])[:3], MARKER, atol=1.5)


def test_two_mm_cpu_preset_geometry(tmp_path):
    path, _ = scan(tmp_path, "LPS")
    out = preprocessing(pixdim=2.0, spatial_size=(40, 48, 40))({"image": path})["image"]
    assert out.shape == (1, 40, 48, 40)
    assert_allclose(out.affine.numpy()[:3, :3], 2 * np.eye(3), atol=1e-6)
    assert_allclose((out.affine.numpy() @ np.r_[marker_voxel(out), 1])[:3], MARKER, atol=1.5)


@pytest.mark.parametrize("normalize", NORMALIZE_MODES)
def test_normalisation_over_brain_voxels(tmp_path, normalize):
    path, _ = scan(tmp_path)
    x = preprocessing(**ONE_MM, normalize=normalize)({"image": path})["image"][0].numpy()
    brain = x != 0
    if normalize == "zscore":  # unit scale by construction: atol=1e-3 is 1e-3 of it
        assert_allclose([x[brain].mean(), x[brain].std()], [0.0, 1.0], atol=1e-3)
    elif normalize == "percentile":
        assert x.min() == 0.0
        assert x.max() == pytest.approx(1.0)
    else:
        assert x.max() == pytest.approx(500.0, rel=0.05)


def test_invertd_brings_a_model_space_map_back_to_the_native_scan(tmp_path):
    path, affine = scan(tmp_path, "LIP", (1.0, 3.0, 1.2))
    label = (sample_world(phantom, affine, [80, 24, 80]) > 300).astype(np.float32)
    label_path = write_nifti(tmp_path / "label.nii.gz", label, affine)
    pre = preprocessing(spatial_size=SIZE, pixdim=2.0, label_keys="label", normalize="none")
    item = pre({"image": path, "label": label_path})
    assert set(np.unique(item["label"].numpy())) <= {0.0, 1.0}  # nearest neighbour
    item["saliency"] = item["image"].clone()
    back = Invertd(["saliency", "label"], pre, orig_keys=["image", "label"])(item)
    for key in ("saliency", "label"):
        assert back[key].shape == (1, 80, 24, 80)
        assert_allclose(back[key].affine.numpy(), affine, atol=1e-5)
    native = sample_world(phantom, affine, [80, 24, 80])
    correlation = np.corrcoef(back["saliency"][0].numpy().ravel(), native.ravel())[0, 1]
    assert correlation > 0.95
    assert np.mean(back["label"][0].numpy() == label) > 0.99


def test_unknown_normalize_lists_the_valid_modes():
    with pytest.raises(ValueError, match="zscore, percentile, none") as error:
        preprocessing(normalize="minmax")
    assert type(error.value) is ValueError  # plain MONAI-style, no application error class


@pytest.mark.parametrize(
    "kwargs",
    [
        {"pixdim": 0.0},
        {"spatial_size": (0, 10, 10)},
        {"orientation": "RRS"},
        {"percentiles": (99, 1)},
        {"keys": "image", "label_keys": "image"},
    ],
)
def test_bad_preprocessing_parameters(kwargs):
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        preprocessing(**kwargs)


def test_missing_key_is_a_monai_key_error(tmp_path):
    path, _ = scan(tmp_path)
    with pytest.raises(RuntimeError, match="LoadImaged") as error:  # Compose wraps the KeyError
        preprocessing(**ONE_MM)({"t1": path})
    assert isinstance(error.value.__cause__, KeyError)
    assert "Key `image`" in str(error.value.__cause__)


def test_preset_pickles_and_loads_from_a_bundle_config(tmp_path):
    path, _ = scan(tmp_path)
    pre = preprocessing(**ONE_MM)
    clone = pickle.loads(pickle.dumps(pre))
    # exact (rtol=1e-7, under one float32 step): the same transforms in one process
    assert_allclose(clone({"image": path})["image"], pre({"image": path})["image"])
    parser = ConfigParser(
        {"pre": {"_target_": "loes.transforms.preprocessing", "pixdim": 2.0, "spatial_size": 32}}
    )
    parsed = parser.get_parsed_content("pre")
    assert isinstance(parsed, Compose)
    assert parsed({"image": path})["image"].shape == (1, 32, 32, 32)


def test_cache_dataset_caches_the_deterministic_part_with_workers(tmp_path):
    paths = [scan(tmp_path, name=f"s{i}")[0] for i in range(2)]
    pre = preprocessing(pixdim=2.0, spatial_size=(40, 48, 40))
    train = Compose([pre, augmentation(pixdim=2.0)]).flatten()  # CacheDataset splits flat lists
    dataset = CacheDataset([{"image": p} for p in paths], train, num_workers=1, progress=False)
    # exact (rtol=1e-7, under one float32 step): the cache holds what the same transforms gave
    assert_allclose(dataset._cache[0]["image"], pre({"image": paths[0]})["image"])
    train.set_random_state(seed=0)
    batch = next(iter(DataLoader(dataset, batch_size=2, num_workers=2)))
    assert batch["image"].shape == (2, 1, 40, 48, 40)


# augmentation ------------------------------------------------------------------------------


def _item(kind: str = "metatensor") -> dict:
    rng = np.random.default_rng(0)
    image = rng.normal(size=(1, 20, 24, 16)).astype(np.float32)
    label = (rng.random((1, 20, 24, 16)) > 0.7).astype(np.float32)
    if kind == "numpy":
        return {"image": image, "label": label}
    if kind == "torch":
        return {"image": torch.as_tensor(image), "label": torch.as_tensor(label)}
    return {"image": MetaTensor(image, affine=torch.eye(4)), "label": MetaTensor(label)}


@pytest.mark.parametrize("kind", ["numpy", "torch", "metatensor"])
def test_seeded_augmentation_is_reproducible(kind):
    outputs = []
    for seed in (0, 0, 1):
        aug = augmentation(
            label_keys="label", affine_prob=1.0, bias_prob=1, noise_prob=1, contrast_prob=1
        )
        aug.set_random_state(seed=seed)
        outputs.append(aug(_item(kind)))
    # exact (rtol=1e-7, under one float32 step): the same seed and transforms in one process
    assert_allclose(outputs[0]["image"], outputs[1]["image"])
    assert_allclose(outputs[0]["label"], outputs[1]["label"])
    assert not np.allclose(outputs[0]["image"], outputs[2]["image"])
    assert set(np.unique(np.asarray(outputs[0]["label"]))) <= {0.0, 1.0}


@pytest.mark.parametrize("kind", ["numpy", "metatensor"])
def test_augmentation_with_the_input_size_gives_the_same_volumes(kind):
    """``spatial_size`` only lets the random affine reuse a cached grid: the same outputs."""
    outputs = []
    for size in (None, _item(kind)["image"].shape[1:]):
        aug = augmentation(label_keys="label", affine_prob=1.0, spatial_size=size)
        outputs.append(aug.set_random_state(seed=3)(_item(kind)))
    for key in ("image", "label"):  # exact: the same grid through the same resampling
        assert_allclose(outputs[1][key], outputs[0][key], rtol=0, atol=0)
        assert outputs[1][key].shape == outputs[0][key].shape


def test_flip_is_left_right_only():
    aug = augmentation(affine_prob=0, flip_prob=1, bias_prob=0, noise_prob=0, contrast_prob=0)
    item = _item()
    out = aug(item)["image"]
    # exact: a flip moves voxels and computes nothing; spatial axis 0 = R-L in RAS
    assert_allclose(out, torch.flip(item["image"], dims=[1]))


def test_elastic_augmentation_keeps_shape():
    aug = augmentation(elastic=True, elastic_prob=1.0).set_random_state(seed=0)
    assert aug(_item())["image"].shape == (1, 20, 24, 16)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"affine_prob": 1.5}, r"affine_prob must be a probability in \[0, 1\], got 1.5"),
        ({"flip_prob": -0.1}, "flip_prob must be a probability"),
        ({"contrast_prob": 2}, "contrast_prob must be a probability"),
        ({"scale": 1.2}, "scale must be in"),
        ({"rotate_degrees": -5}, "rotate_degrees must be in"),
        ({"gamma_range": (0, 1)}, "gamma_range must satisfy"),
    ],
)
def test_bad_augmentation_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message) as error:
        augmentation(**kwargs)
    assert type(error.value) is ValueError


@pytest.mark.parametrize("kwargs", [{"affine_prob": "0.5"}, {"noise_prob": True}, {"scale": None}])
def test_non_numeric_augmentation_parameters_are_type_errors(kwargs):
    with pytest.raises(TypeError, match=f"{next(iter(kwargs))} must be a number"):
        augmentation(**kwargs)


def test_old_augmentation_names_are_gone():
    for old in ("prob", "gamma_prob"):
        with pytest.raises(TypeError, match=old):
            augmentation(**{old: 0.5})


def test_augmentation_pickles():
    aug = augmentation().set_random_state(seed=3)
    clone = pickle.loads(pickle.dumps(aug))
    # exact (rtol=1e-7, under one float32 step): the same seeded transforms in one process
    assert_allclose(clone(_item())["image"], aug(_item())["image"])


@pytest.mark.slow
def test_registration_and_n4_preset_is_invertible(tmp_path):
    truth = random_affine(np.random.default_rng(11))
    affine = grid_affine("LPS", (2.0, 2.0, 2.0), (0.0, -15.0, 10.0), (90, 110, 84))
    image = template_moved(truth, affine, (90, 110, 84)) * 1000
    path = write_nifti(tmp_path / "native.nii.gz", image.astype(np.float32), affine)
    pre = preprocessing(
        spatial_size=(64, 76, 64),
        pixdim=3.0,
        bias_correction=True,
        register=True,
        registration_kwargs={"template_resolution": 3},
    )
    item = pre({"image": path})
    out = item["image"]
    assert out.shape == (1, 64, 76, 64)
    assert_allclose(out.affine.numpy()[:3, :3], 3 * np.eye(3), atol=1e-6)
    # registered: MNI origin (the anterior commissure) sits where the output affine says
    estimate = out.meta["template_transform"].numpy()
    assert np.abs(estimate @ [0, 0, 0, 1] - truth @ [0, 0, 0, 1]).max() < 2.0
    item["saliency"] = out.clone()
    back = Invertd("saliency", pre, orig_keys="image")(item)["saliency"]
    assert back.shape == (1, 90, 110, 84)
    assert_allclose(back.affine.numpy(), affine, atol=1e-5)
    brain = image > 100
    assert np.corrcoef(back[0].numpy()[brain], image[brain])[0, 1] > 0.8


@pytest.mark.parametrize("kind", ["numpy", "torch", "metatensor"])
def test_brain_foreground_ignores_background_noise(kind):
    rng = np.random.default_rng(0)
    image = np.abs(rng.normal(0, 20, (1, 40, 40, 40))).astype(np.float32)  # Rician-like floor
    image[:, 10:30, 12:28, 15:25] = 400.0  # the head
    converted = {"numpy": image, "torch": torch.from_numpy(image), "metatensor": MetaTensor(image)}
    mask = np.asarray(BrainForeground()(converted[kind]))
    assert mask[:, 10:30, 12:28, 15:25].all()
    assert mask.sum() == 20 * 16 * 10  # not one noise voxel
    assert (image > 0).sum() > mask.sum()  # MONAI's default foreground keeps the noise
    with pytest.raises(ValueError, match="foreground_fraction") as error:
        BrainForeground(1.5)
    assert type(error.value) is ValueError


# defaults: the single source of truth of the pipeline's configuration -----------------------


def _defaults(function) -> dict:
    return {
        name: parameter.default
        for name, parameter in inspect.signature(function).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }


def test_preprocessing_defaults_are_the_cpu_main_job():
    defaults = _defaults(preprocessing)
    assert defaults["spatial_size"] == (72, 88, 72)
    assert defaults["pixdim"] == (2.0, 2.0, 2.0) == DEFAULT_PIXDIM  # what `loes validate` assumes
    assert defaults["orientation"] == "RAS"
    assert defaults["normalize"] == "zscore"
    assert defaults["bias_correction"] is False
    assert defaults["register"] is False


def test_augmentation_defaults_are_the_pipelines():
    defaults = _defaults(augmentation)
    expected = {
        "affine_prob": 0.5,
        "rotate_degrees": 5.0,
        "scale": 0.1,
        "translate_mm": 5.0,
        "flip_prob": 0.5,
        "bias_prob": 0.2,
        "noise_prob": 0.2,
        "contrast_prob": 0.2,
        "elastic": False,
        "noise_std": 0.05,
        "gamma_range": (0.7, 1.5),
        "bias_coeff": 0.2,
        "elastic_prob": 0.2,
    }
    assert {name: defaults[name] for name in expected} == expected
    assert defaults["pixdim"] == _defaults(preprocessing)["pixdim"]  # they go together


@pytest.mark.parametrize("function", [preprocessing, augmentation])
def test_every_preset_default_is_plain_yaml(function):
    defaults = _defaults(function)
    assert yaml.safe_load(yaml.safe_dump(defaults)) == {
        name: list(value) if isinstance(value, tuple) else value for name, value in defaults.items()
    }


def test_default_presets_fit_together(tmp_path):
    path, _ = scan(tmp_path, "LPS")
    out = preprocessing()({"image": path})["image"]
    assert out.shape == (1, 72, 88, 72)
    assert_allclose(out.affine.numpy()[:3, :3], 2 * np.eye(3), atol=1e-6)
    augmented = augmentation().set_random_state(seed=0)({"image": out})["image"]
    assert augmented.shape == out.shape


def test_transforms_do_not_depend_on_the_applications_errors():
    package = Path(loes.transforms.__file__).parent
    for source in package.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert node.module != "loes.errors", source
            elif isinstance(node, ast.Import):
                assert "loes.errors" not in [alias.name for alias in node.names], source
