"""Seconds per volume of the preprocessing presets on a 1 mm MPRAGE-sized scan on this machine."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from scipy.ndimage import affine_transform

from loes.transforms import load_template, preprocessing

NATIVE_SHAPE = (176, 240, 256)  # sagittal MPRAGE, 1 mm
REPEATS = 3


def mprage_like(path: Path) -> Path:
    """The MNI template resampled into a 176x240x256 1 mm LPS grid, slightly rotated, int16."""
    template = load_template("t1", resolution=1)
    angle = np.deg2rad(5.0)
    rotation = np.eye(4)
    rotation[1:3, 1:3] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    affine = np.diag([-1.0, -1.0, 1.0, 1.0])  # LPS voxel axes
    affine[:3, 3] = [88.0, 100.0, -110.0]
    affine = rotation @ affine
    native_to_template = np.linalg.solve(template.affine, affine)
    data = affine_transform(
        np.asarray(template.dataobj, dtype=np.float32),
        native_to_template[:3, :3],
        native_to_template[:3, 3],
        output_shape=NATIVE_SHAPE,
        order=1,
    )
    nib.save(nib.Nifti1Image(np.round(data * 1000).astype(np.int16), affine), path)
    return path


def _seconds(transform, path: Path, repeats: int) -> float:
    transform({"image": str(path)})  # warm-up: template loading, caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        transform({"image": str(path)})
        times.append(time.perf_counter() - start)
    return min(times)


# the 1 mm full-resolution preset, given explicitly (preprocessing()'s defaults are the 2 mm
# CPU main job), so the "default" rows measure what they always have
FULL = {"pixdim": 1.0, "spatial_size": (160, 192, 160)}
CPU = {"pixdim": 2.0, "spatial_size": (80, 96, 80)}


def main() -> None:
    presets = [
        ("default (1 mm, 160x192x160)", FULL, "<= 0.5"),
        ("CPU (2 mm, 80x96x80)", CPU, ""),
        ("default + N4", {**FULL, "bias_correction": True}, "<= 5"),
        ("default + registration", {**FULL, "register": True}, "<= 20"),
        ("CPU + N4 + registration", {**CPU, "bias_correction": True, "register": True}, ""),
    ]
    print(f"input: {NATIVE_SHAPE} 1 mm LPS int16 .nii.gz; {torch.get_num_threads()} torch threads")
    print(f"{'preset':<30} {'s/volume':>9} {'target':>7}")
    with tempfile.TemporaryDirectory() as folder:
        path = mprage_like(Path(folder) / "mprage.nii.gz")
        for name, kwargs, target in presets:
            repeats = 1 if kwargs.get("register") else REPEATS
            seconds = _seconds(preprocessing(**kwargs), path, repeats)
            print(f"{name:<30} {seconds:9.2f} {target:>7}", flush=True)


if __name__ == "__main__":
    main()
