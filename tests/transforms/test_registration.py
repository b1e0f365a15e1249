"""RegisterToTemplate(d): RAS/LPS conventions, recovery of a known affine, inversion."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.utils import TransformBackends
from numpy.testing import assert_allclose

import loes.transforms
import loes.transforms.registration
from loes.transforms import (
    TEMPLATE_TRANSFORM_KEY,
    RegisterToTemplate,
    RegisterToTemplateD,
    RegisterToTemplated,
    RegisterToTemplateDict,
    load_template,
    template_grid,
)
from loes.transforms._itk import RAS_TO_LPS, itk_affine_to_ras, ras_to_itk_affine, to_sitk
from tests.transforms._helpers import (
    INPUT_TYPES,
    brain_landmarks,
    grid_affine,
    random_affine,
    template_moved,
)

FAST = {"template_resolution": 3, "pixdim": 3.0}  # keeps a registration near a second


def _scan(matrix: np.ndarray, axcodes="LPS", voxel=(2.0, 2.0, 2.0), shape=(90, 110, 84)):
    affine = grid_affine(axcodes, voxel, (0.0, -15.0, 10.0), shape)
    return template_moved(matrix, affine, shape), affine


def _landmark_error(estimate: np.ndarray, truth: np.ndarray) -> float:
    points = brain_landmarks()
    return float(np.linalg.norm((points @ (estimate - truth).T)[:, :3], axis=1).mean())


def test_sitk_image_and_transform_follow_ras_to_lps():
    affine = np.array([[0, 0, -0.9, 50], [-1.1, 0, 0, 20], [0, 3, 0, -30], [0, 0, 0, 1.0]])
    image = to_sitk(np.zeros((5, 6, 7), dtype=np.float32), affine)
    assert image.GetSize() == (7, 6, 5)  # numpy [i, j, k] is ITK index (k, j, i)
    lps = image.TransformIndexToPhysicalPoint((3, 2, 1))
    assert_allclose(lps, (RAS_TO_LPS @ affine @ [1, 2, 3, 1])[:3])
    matrix = random_affine(np.random.default_rng(1))
    itk = ras_to_itk_affine(matrix)
    point_ras = np.array([10.0, -20.0, 30.0, 1.0])
    moved_lps = itk.TransformPoint(tuple((RAS_TO_LPS @ point_ras)[:3]))
    assert_allclose(moved_lps, (RAS_TO_LPS @ matrix @ point_ras)[:3], atol=1e-9)
    assert_allclose(itk_affine_to_ras(itk), matrix, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_registration_recovers_a_known_affine(seed):
    truth = random_affine(np.random.default_rng(seed))
    image, affine = _scan(truth)
    scan = MetaTensor(image[None], affine=torch.as_tensor(affine))
    estimate = RegisterToTemplate(**FAST).fit(scan)
    assert _landmark_error(np.eye(4), truth) > 4  # the task is not trivial
    assert _landmark_error(estimate, truth) <= 2.0


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2, 3, 4])
def test_registration_recovers_a_known_affine_at_default_settings(seed):
    truth = random_affine(np.random.default_rng(seed))
    image, affine = _scan(truth, "PIL", (1.2, 1.2, 1.2), (160, 150, 170))
    scan = MetaTensor(image[None], affine=torch.as_tensor(affine))
    assert _landmark_error(RegisterToTemplate().fit(scan), truth) <= 2.0


@pytest.mark.parametrize("kind", list(INPUT_TYPES))
def test_output_on_template_grid_for_every_input_type(kind):
    truth = random_affine(np.random.default_rng(5))
    image, affine = _scan(truth)
    register = RegisterToTemplate(pixdim=2.0, template_resolution=3)
    given = truth if kind == "metatensor" else None  # numpy/torch: no affine, fitted anyway
    out = register(INPUT_TYPES[kind](image[None], affine), transform=given)
    dst_affine, shape = template_grid(2.0)
    assert isinstance(out, MetaTensor)
    assert out.shape == (1, *shape)
    assert_allclose(out.affine, dst_affine, atol=1e-9)
    assert out.meta[TEMPLATE_TRANSFORM_KEY].shape == (4, 4)
    if kind == "metatensor":  # with the true transform the scan matches the template
        template = np.asarray(load_template("t1", 2).dataobj)
        assert np.corrcoef(out[0].numpy().ravel(), template.ravel())[0, 1] > 0.95


def test_inverse_returns_to_the_native_grid():
    truth = random_affine(np.random.default_rng(6))
    image, affine = _scan(truth, "PIR")
    scan = MetaTensor(image[None], affine=torch.as_tensor(affine))
    register = RegisterToTemplate(pixdim=2.0)
    back = register.inverse(register(scan, transform=truth))
    assert back.shape == scan.shape
    assert_allclose(back.affine, affine, atol=1e-6)
    assert TEMPLATE_TRANSFORM_KEY not in back.meta
    assert not back.applied_operations
    assert np.corrcoef(back[0].numpy().ravel(), image.ravel())[0, 1] > 0.97


def test_dictionary_fits_once_and_resamples_labels_with_nearest():
    truth = random_affine(np.random.default_rng(7))
    image, affine = _scan(truth)
    label = (image > 0.5).astype(np.float32) * 2
    data = {
        "image": MetaTensor(image[None], affine=torch.as_tensor(affine)),
        "label": MetaTensor(label[None], affine=torch.as_tensor(affine)),
    }
    register = RegisterToTemplated(["image", "label"], mode=["bilinear", "nearest"], **FAST)
    out = register(data)
    assert set(np.unique(out["label"].numpy())) <= {0.0, 2.0}
    assert_allclose(
        out["image"].meta[TEMPLATE_TRANSFORM_KEY], out["label"].meta[TEMPLATE_TRANSFORM_KEY]
    )
    assert _landmark_error(out["image"].meta[TEMPLATE_TRANSFORM_KEY].numpy(), truth) <= 2.0
    back = register.inverse(out)
    assert_allclose(back["label"].affine, affine, atol=1e-6)
    again = register(data)["image"].meta[TEMPLATE_TRANSFORM_KEY]  # deterministic, cacheable
    # exact in effect: the same fit in one process, with the same ITK threads
    assert_allclose(again, out["image"].meta[TEMPLATE_TRANSFORM_KEY], atol=1e-9)


def test_errors_and_pickling():
    with pytest.raises(KeyError, match="Key `image`"):
        RegisterToTemplated("image")({"t1": np.zeros((1, 4, 4, 4))})
    assert RegisterToTemplated("image", allow_missing_keys=True)({"t1": 1}) == {"t1": 1}
    for kwargs in (
        {"transform_type": "bspline"},
        {"shrink_factors": (4, 2), "smoothing_sigmas": (1.0,)},
        {"sampling_percentage": 0.0},
        {"pixdim": -1.0},
        {"seed": 0},
    ):
        with pytest.raises(ValueError):  # noqa: PT011
            RegisterToTemplate(**kwargs)
    with pytest.raises(ValueError, match="channel-first"):
        RegisterToTemplate().fit(np.zeros((4, 4, 4)))
    clone = pickle.loads(pickle.dumps(RegisterToTemplated("image", **FAST)))
    assert clone.register.template_resolution == 3


def test_dictionary_aliases_exports_and_backend():
    assert RegisterToTemplateD is RegisterToTemplated
    assert RegisterToTemplateDict is RegisterToTemplated
    for name in ("RegisterToTemplateD", "RegisterToTemplateDict"):
        assert name in loes.transforms.__all__
        assert name in loes.transforms.registration.__all__
    # fitted in NumPy (SimpleITK), resampled in torch (SpatialResample)
    assert set(RegisterToTemplate.backend) == {TransformBackends.TORCH, TransformBackends.NUMPY}
    assert RegisterToTemplated.backend == RegisterToTemplate.backend
