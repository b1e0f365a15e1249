"""The loaders and batches every stage shares."""

import pytest
import torch

from loes.pipeline.run.inference import EvenBatchSampler, make_loader


@pytest.mark.parametrize(("n", "batch_size"), [(9, 8), (16, 8), (17, 8), (33, 8), (3, 4), (1, 4)])
def test_every_scan_is_seen_every_epoch_in_near_equal_batches(n, batch_size):
    torch.manual_seed(0)
    sampler = EvenBatchSampler(n, batch_size)
    for _ in range(3):
        batches = list(sampler)
        assert len(batches) == len(sampler) == -(-n // batch_size)
        assert sorted(i for batch in batches for i in batch) == list(range(n))
        sizes = [len(batch) for batch in batches]
        assert max(sizes) <= batch_size
        assert max(sizes) - min(sizes) <= 1
        assert min(sizes) >= 2 or n == 1  # BatchNorm never trains on a lone scan


def test_shuffled_batches_follow_the_seed_and_change_between_epochs():
    torch.manual_seed(3)
    first = [list(EvenBatchSampler(20, 8)) for _ in range(2)]
    torch.manual_seed(3)
    assert [list(EvenBatchSampler(20, 8)) for _ in range(2)] == first
    assert first[0] != first[1]


def test_the_training_loader_keeps_the_scans_drop_last_would_lose():
    items = [
        {"image": torch.full((1, 2, 2, 2), float(i)), "loes_score": float(i)} for i in range(9)
    ]
    training = make_loader(items, batch_size=8, shuffle=True, device=torch.device("cpu"))
    seen = sorted(s for batch in training for s in batch["loes_score"].tolist())
    assert seen == [float(i) for i in range(9)]
    ordered = make_loader(items, batch_size=8, shuffle=False, device=torch.device("cpu"))
    assert [len(batch["loes_score"]) for batch in ordered] == [8, 1]


@pytest.mark.parametrize("n", [3, 5, 7, 9])
def test_batches_of_two_leave_no_scan_alone(n):
    torch.manual_seed(0)
    batches = list(EvenBatchSampler(n, 2))
    sizes = [len(b) for b in batches]
    assert sorted(i for b in batches for i in b) == list(range(n))
    assert min(sizes) >= 2  # 5 scans: 3 and 2, not 2, 2 and 1
    assert max(sizes) <= 3
    assert len(batches) == n // 2


def test_batches_of_given_indices_keep_their_order():
    batches = list(EvenBatchSampler(5, 2, indices=[9, 4, 7, 1, 3]))
    assert batches == [[9, 4, 7], [1, 3]]


@pytest.mark.parametrize("flip_axis", [None, 0, 1])
def test_flip_tta_is_the_mean_of_the_clipped_scores_of_the_scan_and_its_mirror(flip_axis):
    from loes.pipeline.run.inference import predict

    class Weighted(torch.nn.Module):  # Loes points (B,) that depend on where the voxels are
        def forward(self, x):
            position = torch.arange(x[0].numel(), dtype=x.dtype).reshape(x.shape[1:])
            return (x * position).mean(dim=(1, 2, 3, 4)) * 5 - 20

    generator = torch.Generator().manual_seed(0)
    images = [torch.rand(1, 3, 4, 2, generator=generator) for _ in range(3)]
    items = [
        {"image": image, "loes_score": 1.0, "subject": f"s{i}", "session": "1"}
        for i, image in enumerate(images)
    ]
    loader = make_loader(items, batch_size=2, shuffle=False, device=torch.device("cpu"))
    got = predict(Weighted(), loader, torch.device("cpu"), flip_axis=flip_axis)["predicted"]
    for image, value in zip(images, got, strict=True):
        scores = [Weighted()(image[None]).clamp(0, 34)]
        if flip_axis is not None:
            scores.append(Weighted()(image.flip(1 + flip_axis)[None]).clamp(0, 34))
        assert value == pytest.approx(torch.cat(scores).double().mean().item(), rel=1e-6)
    assert got.between(0, 34).all()
    assert got.nunique() == 3
