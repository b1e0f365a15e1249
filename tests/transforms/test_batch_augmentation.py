"""RandBatchAugmentation: the per-scan augmentation of ``augmentation()`` for a whole batch in
torch, with the same transforms and ranges: shapes and identities, its pieces against MONAI's,
and the distribution of its outputs against the MONAI per-scan path's on a small phantom."""

import functools

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Affine, Compose, Rand3DElasticd, RandBiasField
from monai.transforms.utils import create_rotate, create_scale, create_translate
from scipy.stats import ks_2samp

from loes.transforms import RandBatchAugmentation, augmentation
from loes.transforms.batch_augmentation import _affine_matrices, _bias_field

#: every transform off; a test turns on the one it looks at
OFF = {"affine_prob": 0.0, "flip_prob": 0.0, "bias_prob": 0.0, "noise_prob": 0.0}
OFF["contrast_prob"] = 0.0
PROBS = {
    "affine": "affine_prob",
    "flip": "flip_prob",
    "bias": "bias_prob",
    "noise": "noise_prob",
    "contrast": "contrast_prob",
}
SHAPE = (20, 24, 18)
#: draws per path in the distribution tests
DRAWS = 300
#: two samples of DRAWS draws from one distribution give a KS p-value below this once in 1000
#: pairs; the pairs compared here are fixed by their seeds (p >= 0.016 measured), and a range
#: off by a factor of two gives p < 1e-4
P_SAME = 1e-3


def phantom() -> torch.Tensor:
    """(1, 20, 24, 18): an elongated, tilted, off-centre ellipsoid with an intensity gradient,
    plus a small blob on the left: every statistic below moves when it is transformed."""
    d, h, w = torch.meshgrid(*(torch.arange(s, dtype=torch.float32) for s in SHAPE), indexing="ij")
    u, v = (d - 8) * 0.8 + (h - 12) * 0.6, -(d - 8) * 0.6 + (h - 12) * 0.8
    body = ((u / 6) ** 2 + (v / 3.5) ** 2 + ((w - 9) / 4) ** 2) < 1
    blob = ((d - 4) ** 2 + (h - 16) ** 2 + (w - 6) ** 2) < 6
    image = body * (1.0 + 0.05 * h) + blob * 2.0
    return image.float()[None]


def monai_draws(**kwargs) -> torch.Tensor:
    """(DRAWS, 1, D, H, W): the phantom through ``augmentation(**kwargs)``, one scan at a time
    (computed once per ``kwargs``: about 40 ms a draw)."""
    return _monai_draws(tuple(sorted(kwargs.items())))


@functools.cache
def _monai_draws(kwargs: tuple) -> torch.Tensor:
    aug = augmentation(spatial_size=SHAPE, **dict(kwargs)).set_random_state(seed=3)
    image = MetaTensor(phantom())
    return torch.stack([aug({"image": image})["image"].as_tensor() for _ in range(DRAWS)])


def batch_draws(**kwargs) -> torch.Tensor:
    """(DRAWS, 1, D, H, W): DRAWS copies of the phantom through RandBatchAugmentation at once."""
    aug = RandBatchAugmentation(spatial_size=SHAPE, **kwargs).set_random_state(seed=5)
    return aug(phantom().expand(DRAWS, -1, -1, -1, -1))


def statistics(out: torch.Tensor) -> dict[str, np.ndarray]:
    """Per draw: intensity moments, centre of mass (voxels), second moments (orientation),
    left-right and front-back asymmetry, and how the draw differs from the phantom (log ratio
    on the phantom's foreground: bias field; difference SD: noise; gamma of a mid-grey voxel)."""
    x = out.double()[:, 0]
    ref = phantom().double()[0]
    grids = torch.meshgrid(*(torch.arange(s, dtype=torch.float64) for s in SHAPE), indexing="ij")
    mass = x.clamp(min=0).sum((1, 2, 3))
    com = [(x.clamp(min=0) * g).sum((1, 2, 3)) / mass for g in grids]
    stats = {"mean": x.mean((1, 2, 3)), "sd": x.std(dim=(1, 2, 3)), "mass": mass}
    for axis in range(3):
        stats[f"com{axis}"] = com[axis]
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        centred = (grids[a] - com[a][:, None, None, None]) * (
            grids[b] - com[b][:, None, None, None]
        )
        stats[f"cov{a}{b}"] = (x.clamp(min=0) * centred).sum((1, 2, 3)) / mass
    for axis in (0, 1):
        half = SHAPE[axis] // 2
        low = x.narrow(axis + 1, 0, half).sum((1, 2, 3))
        stats[f"asymmetry{axis}"] = (low - x.narrow(axis + 1, half, half).sum((1, 2, 3))) / mass
    inside = ref > 0.5
    ratio = torch.log(x[:, inside].clamp(min=1e-6) / ref[inside])
    stats["log_bias_mean"], stats["log_bias_sd"] = ratio.mean(1), ratio.std(1)
    stats["noise_sd"] = (x - ref).std(dim=(1, 2, 3))
    low, span = ref.min(), ref.max() - ref.min()
    voxel = (8, 14, 9)  # inside the body: (ref - low) / span of about 0.5
    level = (ref[voxel] - low) / span
    stats["gamma"] = torch.log(((x[(slice(None), *voxel)] - low) / span).clamp(min=1e-9)) / (
        torch.log(level)
    )
    return {k: v.numpy() for k, v in stats.items()}


def different(a: dict, b: dict, names) -> dict:
    """The statistics among ``names`` whose two samples a KS test tells apart, with p."""
    tests = {name: ks_2samp(a[name], b[name]).pvalue for name in names}
    return {name: p for name, p in tests.items() if p < P_SAME}


# -- shapes, identities, errors ------------------------------------------------------------


@pytest.mark.parametrize("indexed", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last_3d])
def test_shape_dtype_device_kept_and_input_untouched(indexed, dtype, layout):
    images = torch.randn(4, 1, 12, 14, 10, generator=torch.Generator().manual_seed(0))
    images = images.to(dtype).contiguous(memory_format=layout)
    before = images.clone()
    probs = dict.fromkeys(PROBS.values(), 1.0)
    out = RandBatchAugmentation(indexed=indexed, **probs).set_random_state(0)(images)
    assert out.shape == images.shape
    assert out.dtype == dtype
    assert out.device == images.device
    assert out.stride() == images.stride()  # channels_last_3d strides kept, with one channel
    torch.testing.assert_close(images, before, rtol=0, atol=0)
    assert not torch.equal(out, images)


def test_metatensor_batches_come_out_as_plain_tensors():
    images = MetaTensor(torch.rand(2, 1, 8, 8, 8))
    out = RandBatchAugmentation(**OFF)(images)
    assert type(out) is torch.Tensor
    torch.testing.assert_close(out, images.as_tensor(), rtol=0, atol=0)


@pytest.mark.parametrize("indexed", [True, False])
@pytest.mark.parametrize("name", list(PROBS))
def test_each_transform_is_the_identity_at_prob_0_and_changes_the_image_at_1(name, indexed):
    images = phantom().expand(3, -1, -1, -1, -1) * torch.tensor([1.0, 2.0, 0.5]).view(3, 1, 1, 1, 1)
    off = RandBatchAugmentation(indexed=indexed, **OFF).set_random_state(0)
    torch.testing.assert_close(off(images), images, rtol=0, atol=0)  # bit for bit
    on = RandBatchAugmentation(indexed=indexed, **{**OFF, PROBS[name]: 1.0}).set_random_state(0)
    out = on(images)
    for scan in range(3):  # every scan changed
        assert (out[scan] - images[scan]).abs().max() > 1e-3, (name, scan)


def test_indexed_and_masked_paths_give_the_same_output():
    """The CPU path (only the picked scans, one by one) and the CUDA one (every scan, then
    ``torch.where``) draw the same numbers and compute the same values."""
    images = phantom().expand(16, -1, -1, -1, -1).contiguous()
    indexed = RandBatchAugmentation(indexed=True).set_random_state(7)(images)
    masked = RandBatchAugmentation(indexed=False).set_random_state(7)(images)
    # the same float32 arithmetic per voxel, grid_sample on a batch or on one scan
    torch.testing.assert_close(indexed, masked, rtol=1e-5, atol=1e-5 * images.abs().max().item())


def test_seeded_draws_are_reproducible():
    images = phantom().expand(6, -1, -1, -1, -1)
    aug = RandBatchAugmentation().set_random_state(11)
    first, second = aug(images), aug(images)
    assert not torch.equal(first, second)  # the next batch gets new draws
    again = RandBatchAugmentation().set_random_state(11)
    torch.testing.assert_close(again(images), first, rtol=0, atol=0)
    torch.testing.assert_close(again(images), second, rtol=0, atol=0)
    assert not torch.equal(RandBatchAugmentation().set_random_state(12)(images), first)
    torch.manual_seed(4)  # unseeded: from torch's global seed, as MONAI's loader seeds
    unseeded = RandBatchAugmentation()(images)
    torch.manual_seed(4)
    torch.testing.assert_close(RandBatchAugmentation()(images), unseeded, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"elastic": True}, "no elastic deformation"),
        ({"label_keys": "mask"}, "label maps"),
        ({"rotate_degrees": 400}, "rotate_degrees must be in"),  # augmentation()'s own check
    ],
)
def test_what_the_batch_path_cannot_do_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RandBatchAugmentation(**kwargs)


def test_a_preset_with_a_transform_it_cannot_apply_is_refused():
    preset = Compose([*augmentation().transforms, Rand3DElasticd("image", (5, 7), (50, 150))])
    with pytest.raises(ValueError, match="cannot apply Rand3DElasticd"):
        RandBatchAugmentation(preset)


@pytest.mark.parametrize(
    ("images", "error", "message"),
    [
        (torch.zeros(1, 8, 8, 8), ValueError, r"\(B, C, D, H, W\), got shape \(1, 8, 8, 8\)"),
        (torch.zeros(1, 1, 8, 8, 8, dtype=torch.int16), TypeError, "floating-point"),
        (np.zeros((1, 1, 8, 8, 8), np.float32), TypeError, "floating-point torch tensor"),
    ],
)
def test_bad_inputs_are_named(images, error, message):
    with pytest.raises(error, match=message):
        RandBatchAugmentation()(images)


# -- the pieces against MONAI's ------------------------------------------------------------


def test_affine_matrices_are_monais_composition():
    generator = torch.Generator().manual_seed(0)
    radians, translate = (
        torch.rand(4, 3, generator=generator),
        torch.randn(4, 3, generator=generator),
    )
    scale = 0.8 + 0.4 * torch.rand(4, 3, generator=generator)
    ours = _affine_matrices(radians, translate, scale)
    for b in range(4):
        expected = (
            create_rotate(3, radians[b].tolist())
            @ create_translate(3, translate[b].tolist())
            @ create_scale(3, scale[b].tolist())
        )
        np.testing.assert_allclose(ours[b].numpy(), expected, rtol=1e-6, atol=1e-6)


def test_the_random_affine_resamples_as_monais_affine():
    """A batch warped by the module's own sampler, with known parameters, equals MONAI's
    ``Affine`` (what RandAffine applies) scan by scan: same centre, axes and interpolation."""
    images = torch.rand(2, 1, *SHAPE, generator=torch.Generator().manual_seed(1))
    radians = torch.tensor([[0.3, -0.2, 0.5], [0.05, 0.1, -0.08]])
    translate = torch.tensor([[1.5, -2.0, 0.7], [0.3, 0.2, -1.1]])
    scale = torch.tensor([[1.1, 0.9, 1.05], [0.95, 1.02, 1.08]])
    aug = RandBatchAugmentation(**OFF)
    centre, uncentre = torch.eye(4), torch.eye(4)
    for axis, size in enumerate(SHAPE):
        centre[axis, 3], uncentre[axis, 3] = (size - 1) / 2, -(size - 1) / 2
    ours = aug.warp(images, centre @ _affine_matrices(radians, translate, scale) @ uncentre)
    for b in range(2):
        expected = Affine(
            rotate_params=radians[b].tolist(),
            translate_params=translate[b].tolist(),
            scale_params=scale[b].tolist(),
            padding_mode="zeros",
            image_only=True,
        )(images[b])
        # bilinear weights from float32 against float64 coordinates: 1e-6 of values in [0, 1]
        torch.testing.assert_close(ours[b], expected.as_tensor(), rtol=1e-5, atol=1e-5)


def test_bias_field_is_monais_polynomial():
    degree, shape = 3, (9, 11, 7)
    coefficients = np.random.default_rng(0).uniform(0, 0.2, 20).tolist()
    expected = RandBiasField(degree=degree)._generate_random_field(shape, degree, coefficients)
    # MONAI's order of the coefficients: i, j, k with i + j + k <= degree, i slowest
    coeff = torch.zeros(1, 4, 4, 4)
    terms = [(i, j, k) for i in range(4) for j in range(4 - i) for k in range(4 - i - j)]
    for value, (i, j, k) in zip(coefficients, terms, strict=True):
        coeff[0, i, j, k] = value
    ours = _bias_field(coeff, shape)[0]
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-5, atol=1e-5)


# -- the same distribution as the MONAI per-scan path --------------------------------------

GEOMETRY = ["com0", "com1", "com2", "mass", "cov01", "cov02", "cov12"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("transform", "names"),
    [
        ("affine", GEOMETRY),
        ("flip", ["asymmetry0", "asymmetry1", "com0", "com1"]),
        ("bias", ["log_bias_mean", "log_bias_sd", "mean"]),
        ("noise", ["noise_sd", "mean"]),
        ("contrast", ["gamma", "mean", "sd"]),
    ],
)
def test_each_transform_draws_from_monais_distribution(transform, names):
    kwargs = {**OFF, PROBS[transform]: 1.0}
    ours, theirs = statistics(batch_draws(**kwargs)), statistics(monai_draws(**kwargs))
    assert different(ours, theirs, names) == {}


@pytest.mark.slow
def test_default_augmentation_draws_from_monais_distribution():
    """Every transform at its default probability, one after the other, at 2 mm voxels."""
    ours, theirs = statistics(batch_draws()), statistics(monai_draws())
    names = [*GEOMETRY, "asymmetry0", "mean", "sd", "noise_sd"]
    assert different(ours, theirs, names) == {}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("changed", "names"),
    [
        ({"translate_mm": 10.0}, ["com0", "com1", "com2"]),  # voxels taken for mm, 2 mm voxels
        ({"rotate_degrees": 10.0}, ["cov01", "cov02", "cov12"]),
        ({"scale": 0.2}, ["mass"]),
        ({"noise_std": 0.1}, ["noise_sd"]),
        ({"bias_coeff": 0.4}, ["log_bias_mean"]),
        ({"gamma_range": (0.7, 2.0)}, ["gamma"]),
    ],
)
def test_the_comparison_catches_a_wrong_range(changed, names):
    """The distribution tests above can fail: a range that is off by a factor of two is told
    apart by the same statistics."""
    transform = {
        "translate_mm": "affine",
        "rotate_degrees": "affine",
        "scale": "affine",
        "noise_std": "noise",
        "bias_coeff": "bias",
        "gamma_range": "contrast",
    }[next(iter(changed))]
    kwargs = {**OFF, PROBS[transform]: 1.0}
    ours = statistics(batch_draws(**kwargs, **changed))
    theirs = statistics(monai_draws(**kwargs))
    assert set(different(ours, theirs, names)) & set(names)


@pytest.mark.slow
def test_flip_on_the_wrong_axis_would_be_caught():
    """A flip along the front-back axis instead of left-right moves ``asymmetry1`` and leaves
    ``asymmetry0``: the flip comparison tells the axis."""
    wrong = augmentation(spatial_size=SHAPE, **{**OFF, "flip_prob": 1.0})
    wrong.transforms[1].flipper.spatial_axis = 1
    ours = statistics(
        RandBatchAugmentation(wrong).set_random_state(5)(phantom().expand(DRAWS, -1, -1, -1, -1))
    )
    theirs = statistics(monai_draws(**{**OFF, "flip_prob": 1.0}))
    assert set(different(ours, theirs, ["asymmetry0", "asymmetry1"])) == {
        "asymmetry0",
        "asymmetry1",
    }
