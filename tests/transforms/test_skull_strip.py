"""SkullStrip(d) and is_skull_stripped on real heads: pydeface's mean head (a 2 mm LPS copy) against
the brain mask of ROBEX's atlas head carried onto it by registration, and ROBEX's atlas head
against its own mask (see benchmarks/bench_skull_strip.py for how both were measured)."""

from __future__ import annotations

import logging
import pickle

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import (
    Compose,
    EnsureChannelFirstd,
    Invertd,
    LoadImaged,
    Orientationd,
    Spacingd,
    SpatialResample,
)
from monai.utils import TransformBackends
from numpy.testing import assert_allclose
from scipy.ndimage import binary_dilation

from benchmarks.bench_skull_strip import (
    carried_mask,
    dice,
    pydeface_head,
    resampled,
    robex_atlas,
)
from loes.transforms import (
    MAX_BRAIN_ML,
    NiftiReader,
    SkullStrip,
    SkullStripD,
    SkullStripd,
    SkullStripDict,
    is_skull_stripped,
    load_template,
    preprocessing,
)
from tests.transforms._helpers import INPUT_TYPES, as_metatensor

# measured: deepbet 0.884 against the carried mask (affine registration between two anatomies
# caps it near 0.89; ROBEX 0.886), 0.964 against the atlas head's own mask after 2 mm and back,
# 0.981 between its masks at 2 mm LPS and 3 mm PIR
CARRIED_DICE = 0.85
OWN_MASK_DICE = 0.94
SELF_DICE = 0.95


def _meta(image: nib.Nifti1Image, name: str = "head.nii.gz") -> MetaTensor:
    data = torch.as_tensor(np.array(image.get_fdata(dtype=np.float32)))[None]
    return MetaTensor(data, affine=torch.as_tensor(image.affine), meta={"filename_or_obj": name})


@pytest.fixture(scope="module")
def head():
    """pydeface's mean head at 2 mm LPS (88x126x126) and its carried reference brain mask."""
    whole = pydeface_head()
    head = resampled(whole, 2.0, "LPS")
    atlas, atlas_mask = robex_atlas()
    (mask,) = carried_mask(head, atlas, atlas_mask)
    return head, np.asarray(mask.dataobj) > 0


@pytest.fixture(scope="module")
def head_mask(head):
    """deepbet's mask of the 2 mm LPS head through SkullStrip, computed once."""
    return SkullStrip().brain_mask(_meta(head[0]))


@pytest.mark.slow
def test_mask_of_a_real_head_matches_the_reference(head, head_mask):
    image, reference = head
    assert isinstance(head_mask, MetaTensor)
    assert head_mask.shape == (1, *image.shape)
    assert head_mask.dtype == torch.float32
    assert set(torch.unique(head_mask).tolist()) == {0.0, 1.0}
    assert_allclose(head_mask.affine.numpy(), image.affine)
    assert head_mask.meta["filename_or_obj"] == "head.nii.gz"
    assert dice(head_mask[0].numpy() > 0, reference) >= CARRIED_DICE
    brain_ml = float(head_mask.sum()) * 8 / 1000
    assert 1100 < brain_ml < 1700  # 1393 mL measured: an adult brain, not the head (3.2 L)


@pytest.mark.slow
def test_mask_does_not_depend_on_orientation_or_voxel_size(head, head_mask):
    coarse = resampled(head[0], 3.0, "PIR")
    mask = SkullStrip().brain_mask(_meta(coarse))
    assert_allclose(mask.affine.numpy(), coarse.affine)
    on_coarse = SpatialResample(mode="nearest")(
        head_mask, dst_affine=torch.as_tensor(coarse.affine), spatial_size=coarse.shape
    )
    assert dice(mask[0].numpy() > 0, on_coarse[0].numpy() > 0) >= SELF_DICE


@pytest.mark.parametrize("kind", list(INPUT_TYPES))
def test_strip_applies_a_given_mask_to_every_channel(head, kind):
    image, reference = head
    data = np.stack([image.get_fdata(dtype=np.float32)] * 2)
    mask = reference[None].astype(np.float32)
    out = SkullStrip(fill_value=-1.0)(INPUT_TYPES[kind](data, image.affine), mask)
    assert type(out) is type(INPUT_TYPES[kind](data, image.affine))
    out = np.asarray(out)
    assert out.shape == data.shape
    assert (out[:, ~reference] == -1).all()
    # exact (rtol=1e-7, under one float32 step): a mask keeps voxels and computes nothing
    assert_allclose(out[:, reference], data[:, reference])
    same = SkullStrip(fill_value=None)(INPUT_TYPES[kind](data, image.affine), mask)
    assert_allclose(np.asarray(same), data)


@pytest.mark.slow
def test_dictionary_version_in_compose_keeps_mask_key_and_inverts(tmp_path):
    atlas, own_mask = robex_atlas()
    nib.save(atlas, tmp_path / "t1.nii.gz")
    nib.save(
        nib.Nifti1Image(atlas.get_fdata(dtype=np.float32) * 0.5, atlas.affine),
        tmp_path / "t2.nii.gz",
    )
    keys = ["t1", "t2"]
    pre = Compose(
        [
            LoadImaged(keys, reader=NiftiReader(), image_only=True),
            EnsureChannelFirstd(keys),
            Orientationd(keys, axcodes="RAS", labels=None),
            SkullStripd(keys, mask_key="brain_mask"),
            Spacingd([*keys, "brain_mask"], pixdim=2.0, mode=["bilinear", "bilinear", "nearest"]),
        ]
    )
    item = pre({"t1": str(tmp_path / "t1.nii.gz"), "t2": str(tmp_path / "t2.nii.gz")})
    mask = item["brain_mask"]
    assert isinstance(mask, MetaTensor)
    assert_allclose(mask.affine.numpy(), item["t1"].affine.numpy())
    # both images stripped with one mask (bilinear resampling blurs them by up to one voxel)
    outside = ~binary_dilation(mask[0].numpy() > 0, iterations=2)
    assert outside.mean() > 0.5
    assert (item["t1"][0].numpy()[outside] == 0).all()
    assert (item["t2"][0].numpy()[outside] == 0).all()
    # back on the atlas grid with the image's history, against the mask ROBEX ships
    back = Invertd("brain_mask", transform=pre, orig_keys="t1")(item)
    assert back["brain_mask"].shape == (1, *atlas.shape)
    assert_allclose(back["brain_mask"].affine.numpy(), atlas.affine, atol=1e-4)
    truth = np.asarray(own_mask.dataobj) > 0.5
    assert dice(back["brain_mask"][0].numpy() > 0.5, truth) >= OWN_MASK_DICE
    assert SkullStripD is SkullStripd
    assert SkullStripDict is SkullStripd


def test_is_skull_stripped_on_real_heads(head):
    whole = pydeface_head()
    data = whole.get_fdata(dtype=np.float32)[None]
    assert not is_skull_stripped(as_metatensor(data, whole.affine))  # noisy air
    image, reference = head
    head_2mm = image.get_fdata(dtype=np.float32)[None]
    assert not is_skull_stripped(head_2mm, image.affine)
    # the whole head with its air set to zero is still a head: 3.2 L > MAX_BRAIN_ML
    zeroed = np.where(head_2mm > 40, head_2mm, 0)
    assert (zeroed == 0).mean() > 0.4
    assert not is_skull_stripped(zeroed, image.affine)
    stripped = head_2mm * reference
    assert is_skull_stripped(stripped, image.affine)
    assert is_skull_stripped(as_metatensor(stripped, image.affine))
    template = load_template("t1", 2)
    mni = np.asarray(template.dataobj)[None]
    assert is_skull_stripped(mni, template.affine)
    assert is_skull_stripped((mni - mni.mean()) / mni.std(), template.affine)  # z-scored
    # the volume is measured in mL: the same voxels declared 2.6 mm measure 3.1 L, a head's size
    assert not is_skull_stripped(stripped, np.diag([2.6, 2.6, 2.6, 1.0]))
    assert not is_skull_stripped(stripped, image.affine, max_brain_ml=500)
    assert MAX_BRAIN_ML == 2000.0
    # noisy air around the brain (as the synthetic cohort has it) or around the head: the
    # tissue is what lies above the air's Otsu class
    rng = np.random.default_rng(0)
    noise = np.abs(rng.normal(0, 0.02 * float(head_2mm.max()), head_2mm.shape)).astype(np.float32)
    assert is_skull_stripped(stripped + noise, image.affine)
    assert not is_skull_stripped(head_2mm + noise, image.affine)


@pytest.mark.parametrize("kind", list(INPUT_TYPES))
def test_auto_keeps_a_stripped_scan_as_it_is(head, kind):
    image, reference = head
    stripped = (image.get_fdata(dtype=np.float32) * reference)[None]
    strip = SkullStrip(auto=True)
    mask = strip.brain_mask(INPUT_TYPES[kind](stripped, image.affine))
    assert type(mask) is type(INPUT_TYPES[kind](stripped, image.affine))
    assert_allclose(np.asarray(mask), stripped != 0)  # exact: 0/1, no network involved
    out = strip(INPUT_TYPES[kind](stripped, image.affine))
    assert_allclose(np.asarray(out), stripped)  # exact: kept as it is


def test_transforms_pickle_and_declare_their_backend():
    strip = pickle.loads(pickle.dumps(SkullStripd("image", mask_key="brain", threshold=0.6)))
    assert strip.stripper.threshold == 0.6
    assert strip.mask_key == "brain"
    assert SkullStrip.backend == SkullStripd.backend
    assert TransformBackends.TORCH in SkullStrip.backend


def test_errors(head):
    image, _ = head
    volume = torch.as_tensor(image.get_fdata(dtype=np.float32))
    with pytest.raises(ValueError, match=r"channel-first 3D image .* EnsureChannelFirst"):
        SkullStrip()(volume)
    with pytest.raises(ValueError, match=r"empty.nii.gz is constant"):
        SkullStrip().brain_mask(
            MetaTensor(torch.zeros(1, 8, 8, 8), meta={"filename_or_obj": "empty.nii.gz"})
        )
    with pytest.raises(ValueError, match="NaN or infinite"):
        SkullStrip().brain_mask(torch.full((1, 8, 8, 8), float("nan")))
    with pytest.raises(ValueError, match="does not fit"):
        SkullStrip()(volume[None], torch.ones(1, 4, 4, 4))
    for kwargs, message in [
        ({"threshold": 1.0}, "threshold"),
        ({"dilate": 1.5}, "dilate"),
        ({"fill_value": float("nan")}, "fill_value"),
        ({"max_brain_ml": 0}, "max_brain_ml"),
    ]:
        with pytest.raises(ValueError, match=message):
            SkullStrip(**kwargs)
    with pytest.raises(ValueError, match="max_brain_ml"):
        is_skull_stripped(volume[None], max_brain_ml=-1)
    with pytest.raises(ValueError, match="also an image key"):
        SkullStripd(["image", "brain_mask"])
    with pytest.raises(KeyError, match="Key `image`"):
        SkullStripd("image")({"t1": volume[None]})
    assert SkullStripd("image", allow_missing_keys=True)({"t1": 1}) == {"t1": 1}
    with pytest.raises(ValueError, match="skull_strip must be False, True or 'auto'"):
        preprocessing(skull_strip="yes")


def _classes(compose: Compose) -> list[str]:
    return [type(t).__name__ for t in compose.transforms]


def test_preset_off_is_unchanged(head, tmp_path):
    image, reference = head
    path = str(tmp_path / "head.nii.gz")
    nib.save(image, path)
    before = [
        "LoadImaged", "EnsureChannelFirstd", "Orientationd", "Spacingd", "CropForegroundd",
        "NormalizeIntensityd", "ResizeWithPadOrCropd", "EnsureTyped",
    ]  # fmt: skip
    assert _classes(preprocessing()) == before
    assert _classes(preprocessing(skull_strip=False)) == before
    kwargs = {"pixdim": 4.0, "spatial_size": (40, 48, 40)}
    default = preprocessing(**kwargs)({"image": path})["image"]
    off = preprocessing(skull_strip=False, **kwargs)({"image": path})["image"]
    assert torch.equal(default, off)  # exact: the same transforms in one process
    assert_allclose(default.affine.numpy(), off.affine.numpy())
    # "auto" on a stripped scan changes nothing: the same output as no stripping
    stripped = str(tmp_path / "stripped.nii.gz")
    nib.save(nib.Nifti1Image(image.get_fdata(dtype=np.float32) * reference, image.affine), stripped)
    auto = preprocessing(skull_strip="auto", **kwargs)
    assert _classes(auto) == [*before[:3], "SkullStripd", *before[3:]]
    assert torch.equal(
        auto({"image": stripped})["image"], preprocessing(**kwargs)({"image": stripped})["image"]
    )


@pytest.mark.slow
def test_preset_crops_to_the_brain(head, tmp_path):
    image, _ = head
    path = str(tmp_path / "head.nii.gz")
    nib.save(image, path)
    kwargs = {"pixdim": 4.0, "spatial_size": (48, 64, 56), "normalize": "none"}
    whole = preprocessing(**kwargs)({"image": path})["image"]
    brain = preprocessing(skull_strip=True, **kwargs)({"image": path})["image"]
    assert brain.shape == whole.shape == (1, 48, 64, 56)
    brain_ml = float((brain > 0).sum()) * 64 / 1000
    assert 1100 < brain_ml < 1700  # 1468 mL measured; the 2 mm mask held 1393 mL
    axes = [(1, 2), (0, 2), (0, 1)]
    brain_extent = [int((brain[0] > 0).any(dim=a).sum()) for a in axes]  # 34x42x34 voxels
    head_extent = [int((whole[0] > 0).any(dim=a).sum()) for a in axes]
    assert max(brain_extent) * 4 <= 180  # a brain is at most about 17 cm long
    assert all(b < h for b, h in zip(brain_extent, head_extent, strict=True))
    assert brain.meta["filename_or_obj"] == path


def test_auto_says_what_it_decided(caplog):
    """A brain-only scan (a box on a constant background, 1 L) is kept as it is, and said so."""
    image = np.zeros((1, 60, 60, 60), np.float32)
    image[0, 10:50, 10:50, 10:50] = np.linspace(1, 2, 40**3).reshape(40, 40, 40)
    scan = as_metatensor(image, np.diag([2.0, 2.0, 2.0, 1.0]))
    scan.meta["filename_or_obj"] = "sub-01_T1w.nii.gz"
    with caplog.at_level(logging.INFO, logger="loes.transforms"):
        out = SkullStrip(auto=True)(scan)
    assert_allclose(np.asarray(out), image)  # exact: nothing to strip, voxels passed through
    assert "sub-01_T1w.nii.gz: skull-stripped already; kept as it is" in caplog.text
