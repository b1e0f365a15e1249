"""N4BiasFieldCorrection(d): removes a known synthetic bias field, keeps the MetaTensor."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.utils import TransformBackends
from numpy.testing import assert_allclose

import loes.transforms
import loes.transforms.bias
from loes.transforms import (
    N4BiasFieldCorrection,
    N4BiasFieldCorrectionD,
    N4BiasFieldCorrectiond,
    N4BiasFieldCorrectionDict,
    load_template,
)
from tests.transforms._helpers import INPUT_TYPES


@pytest.fixture(scope="module")
def biased():
    """The 3 mm template times a smooth multiplicative field, and its white-matter mask."""
    template = load_template("t1", 3)
    clean = np.asarray(template.dataobj, dtype=np.float32) * 1000
    grid = np.indices(clean.shape, dtype=np.float32)
    x, y, z = ((g - s / 2) / s for g, s in zip(grid, clean.shape, strict=True))
    field = np.exp(0.4 * x + 0.3 * y**2 - 0.35 * z + 0.2 * x * z)
    white_matter = np.asarray(load_template("wm", 3).dataobj) > 0.9
    return clean, (clean * field).astype(np.float32), white_matter, template.affine


def _cv(image: np.ndarray, mask: np.ndarray) -> float:
    return float(image[mask].std() / image[mask].mean())


@pytest.mark.parametrize("kind", list(INPUT_TYPES))
def test_n4_removes_at_least_half_of_the_bias(biased, kind):
    clean, image, white_matter, affine = biased
    out = N4BiasFieldCorrection(shrink_factor=3)(INPUT_TYPES[kind](image[None], affine))
    corrected = np.asarray(out[0])
    excess_before = _cv(image, white_matter) - _cv(clean, white_matter)
    excess_after = _cv(corrected, white_matter) - _cv(clean, white_matter)
    assert excess_before > 0.03
    assert excess_after <= 0.5 * excess_before
    assert out.dtype in (np.float32, torch.float32)


def test_n4_keeps_metatensor_and_affine(biased):
    _, image, _, affine = biased
    img = MetaTensor(image[None], affine=torch.as_tensor(affine), meta={"filename_or_obj": "x"})
    out = N4BiasFieldCorrection(shrink_factor=4, iterations=(10,))(img)
    assert isinstance(out, MetaTensor)
    assert_allclose(out.affine, affine)
    assert out.meta["filename_or_obj"] == "x"
    assert out.shape == img.shape


def test_n4_dictionary_with_mask_key_and_otsu(biased):
    clean, image, white_matter, affine = biased
    img = MetaTensor(image[None], affine=torch.as_tensor(affine))
    mask = torch.as_tensor(clean[None] > 0)
    n4 = N4BiasFieldCorrectiond("image", mask_key="brain", shrink_factor=3)
    out = n4({"image": img, "brain": mask})["image"][0].numpy()
    assert _cv(out, white_matter) < _cv(image, white_matter)
    otsu = N4BiasFieldCorrectiond("image", mask_mode="otsu", shrink_factor=3)({"image": img})
    assert _cv(otsu["image"][0].numpy(), white_matter) < _cv(image, white_matter)


def test_n4_errors():
    with pytest.raises(KeyError, match="Key `image`"):
        N4BiasFieldCorrectiond("image")({"t1": np.ones((1, 4, 4, 4))})
    with pytest.raises(KeyError, match="Mask key `brain`"):
        N4BiasFieldCorrectiond("image", mask_key="brain")({"image": np.ones((1, 4, 4, 4))})
    assert N4BiasFieldCorrectiond("image", allow_missing_keys=True)({"t1": 1}) == {"t1": 1}
    with pytest.raises(ValueError, match="brain mask"):
        N4BiasFieldCorrection()(np.zeros((1, 8, 8, 8), dtype=np.float32))
    with pytest.raises(ValueError, match="channel-first"):
        N4BiasFieldCorrection()(np.ones((8, 8, 8), dtype=np.float32))
    for kwargs in ({"shrink_factor": 0}, {"iterations": ()}, {"mask_mode": "skull"}):
        with pytest.raises(ValueError):  # noqa: PT011
            N4BiasFieldCorrection(**kwargs)


def test_n4_pickles(biased):
    _, image, _, affine = biased
    n4 = pickle.loads(
        pickle.dumps(N4BiasFieldCorrectiond("image", shrink_factor=4, iterations=(10,)))
    )
    img = MetaTensor(image[None], affine=torch.as_tensor(affine))
    assert_allclose(
        n4({"image": img})["image"], N4BiasFieldCorrection(4, iterations=(10,))(img), rtol=1e-5
    )


def test_dictionary_aliases_and_exports():
    assert N4BiasFieldCorrectionD is N4BiasFieldCorrectiond
    assert N4BiasFieldCorrectionDict is N4BiasFieldCorrectiond
    for name in ("N4BiasFieldCorrectionD", "N4BiasFieldCorrectionDict"):
        assert name in loes.transforms.__all__
        assert name in loes.transforms.bias.__all__


@pytest.mark.parametrize("kind", list(INPUT_TYPES))
def test_n4_declares_the_numpy_backend_it_computes_with(biased, kind):
    assert N4BiasFieldCorrection.backend == [TransformBackends.NUMPY]
    assert N4BiasFieldCorrectiond.backend == N4BiasFieldCorrection.backend
    _, image, _, affine = biased
    out = N4BiasFieldCorrection(shrink_factor=4, iterations=(5,))(
        INPUT_TYPES[kind](image[None], affine)
    )
    assert isinstance(out, MetaTensor)  # MetaTensor out whatever the input, as before
    if kind == "metatensor":
        assert_allclose(out.affine, affine)
