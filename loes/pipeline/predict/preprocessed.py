"""New scans read, checked and preprocessed one by one for the ensemble: a bad scan becomes an
item with its reason (``error``), never an exception that stops the others."""

from __future__ import annotations

import time

import torch
from monai.utils import convert_to_tensor
from torch.utils.data import Dataset

from loes.data.readers.scans import load_scan
from loes.data.validation import check_image
from loes.pipeline.predict.orientation import coarse_picture
from loes.pipeline.predict.scan_profile import scan_features, scan_fingerprint

__all__ = ["PreprocessedScans", "blank_input", "single_item"]


class PreprocessedScans(Dataset):
    """Scan items (``image`` path, ``subject``, ``session``, ``loes_score``), each checked (the
    header checks of ``loes validate``) and preprocessed, or the reason it could not be: a bad
    scan becomes an item with ``error``, never an exception. A good one gains ``input`` (the
    model input, C x D x H x W), ``features`` (:func:`scan_features`), ``picture``
    (:func:`coarse_picture`), ``fingerprint`` (:func:`scan_fingerprint`) and ``thumbnail``."""

    def __init__(self, items: list[dict], transform, pixdim) -> None:
        self.items, self.transform, self.pixdim = items, transform, pixdim

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        start = time.perf_counter()
        item = dict(self.items[index])
        problems = check_image(item["image"], pixdim=self.pixdim)
        item["warnings"] = [m for severity, m in problems if severity == "warning"]
        errors = [m for severity, m in problems if severity == "error"]
        if errors:
            return {**item, "error": " ".join(errors)}
        try:
            image = self.transform({"image": item["image"]})["image"]
            scan = load_scan(item["image"])  # its voxels read once, for features and fingerprint
            item["features"] = scan_features(scan, image)
            item["picture"] = coarse_picture(image)
            item["fingerprint"] = scan_fingerprint(scan)
        except Exception as error:  # any failure of a user's scan is that scan's row
            return {**item, "error": f"cannot be preprocessed ({type(error).__name__}: {error})"}
        item["input"] = convert_to_tensor(image, track_meta=False)
        blank = blank_input(item["input"])
        if blank:
            return {**item, "error": blank}
        item["thumbnail"] = item["input"][0, :, :, item["input"].shape[-1] // 2].half().numpy()
        item["seconds"] = time.perf_counter() - start
        return item


def blank_input(image: torch.Tensor) -> str | None:
    """Why a preprocessed model input holds no image (NaN voxels, or one value everywhere), or
    None when it does."""
    if not torch.isfinite(image).all() or image.amin() == image.amax():
        return (
            "holds no image after preprocessing (every voxel the same value): the file has NaN "
            "voxels or no signal; `loes validate --deep` names the cause"
        )
    return None


def single_item(batch: list[dict]) -> dict:
    """The collate function of a one-item loader: the item itself."""
    return batch[0]
