import math

import numpy as np
import pytest
import torch
from monai.data import MetaTensor, ThreadDataLoader, list_data_collate
from monai.transforms import GaussianSmooth

from loes.pipeline.cross_validation.thick_slices import FWHM_RANGE, ThickSlicePairs

AFFINE = torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0]))


def _cohort(n_scans=3, n_pairs=4, shape=(12, 14, 10)):
    g = torch.Generator().manual_seed(0)
    scans = [
        {"image": MetaTensor(1 + torch.rand(1, *shape, generator=g), affine=AFFINE)}
        for _ in range(n_scans)
    ]
    pairs = [
        {
            "image": MetaTensor(0.1 * torch.randn(1, *shape, generator=g), affine=AFFINE),
            "loes_score": 0.5 * k,
        }
        for k in range(n_pairs)
    ]
    return pairs, scans, [k % n_scans for k in range(n_pairs)]


def test_a_pair_drawn_has_one_session_blurred_along_one_axis_by_the_slice_profile():
    pairs, scans, earlier = _cohort()
    data = ThickSlicePairs(pairs, scans, earlier, (2.0, 2.0, 2.0), prob=1.0)
    for seed in range(6):
        item = data.set_random_state(seed)[1]
        draws = np.random.RandomState(seed)  # the same draws, in the documented order
        draws.rand()
        axis = int(draws.randint(3))
        fwhm = float(draws.uniform(*FWHM_RANGE))
        blur_later = bool(draws.rand() < 0.5)
        sigma = [0.0, 0.0, 0.0]
        sigma[axis] = math.sqrt(fwhm**2 - 4.0) / 2.3548 / 2.0  # voxels of 2 mm
        smooth = GaussianSmooth(sigma)
        e = scans[earlier[1]]["image"].as_tensor()
        later = e + pairs[1]["image"].as_tensor()
        later, e = (smooth(later), e) if blur_later else (later, smooth(e))
        expected = torch.as_tensor(later - e) * ((e != 0) & (torch.as_tensor(later) != 0))
        torch.testing.assert_close(item["image"].as_tensor(), expected.float())
        assert item["loes_score"] == pairs[1]["loes_score"]  # the true change is kept
        np.testing.assert_array_equal(item["image"].affine, AFFINE)


def _batches(data, seed):
    """Every batch a MONAI loader made after ``torch.manual_seed(seed)`` hands out, while this
    thread draws from torch's global generator between batches, as dropout does."""
    torch.manual_seed(seed)
    loader = ThreadDataLoader(data, batch_size=2, shuffle=False)
    out = []
    for batch in loader:
        torch.rand(1000)
        out.append(batch["image"].as_tensor().clone())
    return torch.cat(out)


def test_a_loader_repeats_its_draws_whatever_else_draws_from_torch():
    pairs, scans, earlier = _cohort(n_pairs=6)
    data = ThickSlicePairs(pairs, scans, earlier, (2.0, 2.0, 2.0), prob=1.0)
    state = torch.get_rng_state()
    data[0]
    assert torch.equal(torch.get_rng_state(), state)  # the training thread's is left alone
    data.prob = 0.5
    first = _batches(data, 3)
    torch.testing.assert_close(_batches(data, 3), first, rtol=0, atol=0)
    assert not torch.equal(_batches(data, 4), first)  # another epoch's seed: other draws


def test_a_grid_as_coarse_as_the_slices_gives_back_the_subtraction():
    pairs, scans, earlier = _cohort()
    data = ThickSlicePairs(pairs, scans, earlier, (8.0, 8.0, 8.0), prob=1.0)  # > 6 mm FWHM
    data.set_random_state(0)
    for k in range(len(pairs)):
        torch.testing.assert_close(data[k]["image"].as_tensor(), pairs[k]["image"].as_tensor())


def test_about_prob_of_the_pairs_are_re_sliced_and_none_at_zero():
    pairs, scans, earlier = _cohort(n_pairs=1)
    changed = []
    for prob in (0.0, 0.5):
        data = ThickSlicePairs(pairs, scans, earlier, (2.0, 2.0, 2.0), prob=prob)
        data.set_random_state(1)
        changed.append(
            sum(not torch.equal(data[0]["image"], pairs[0]["image"]) for _ in range(400))
        )
    assert changed[0] == 0
    assert 160 < changed[1] < 240  # binomial(400, 0.5): 200 +- 4 SD


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"earlier": [0]}, "earlier gives 1 scans for 4 pairs"),
        ({"prob": 1.5}, "prob must be in"),
        ({"pixdim": (2.0, 0.0, 2.0)}, "pixdim must be 3 positive"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    pairs, scans, earlier = _cohort()
    arguments = {"earlier": earlier, "pixdim": (2.0, 2.0, 2.0), "prob": 0.5, **kwargs}
    with pytest.raises(ValueError, match=message):
        ThickSlicePairs(pairs, scans, **arguments)


@pytest.mark.parametrize("meta", [True, False])
def test_drawn_and_undrawn_pairs_batch_together(meta):
    pairs, scans, earlier = _cohort()
    if not meta:  # a disk cache hands back plain tensors
        pairs = [{**p, "image": p["image"].as_tensor()} for p in pairs]
    data = ThickSlicePairs(pairs, scans, earlier, (2.0, 2.0, 2.0), prob=0.5)
    data.set_random_state(1)
    items = [data[k] for k in range(len(pairs))]
    drawn = [not torch.equal(i["image"], p["image"]) for i, p in zip(items, pairs, strict=True)]
    assert 0 < sum(drawn) < len(pairs)  # both kinds in the batch
    assert len({type(i["image"]) for i in items}) == 1
    assert list_data_collate(items)["image"].shape == (len(pairs), 1, 12, 14, 10)
