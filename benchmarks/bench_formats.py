"""Seconds per scan to check (``check_image``), load (``ScanReader``) and preprocess (the CPU
preset) a 1 mm MPRAGE-sized scan in each format loes reads, beside its .nii.gz."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import nibabel as nib
from monai.transforms import LoadImage

from benchmarks.bench_transforms import CPU, mprage_like
from loes.data import check_image
from loes.transforms import ScanReader, preprocessing
from tests.data._scan_copies import write_dicom, write_mgz, write_pair

REPEATS = 3


def _seconds(fn, repeats: int = REPEATS) -> float:
    fn()  # warm-up: caches, imports
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    load = LoadImage(reader=ScanReader(), image_only=True)
    preset = preprocessing(**CPU)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        nifti = mprage_like(folder / "mprage.nii.gz")
        image = nib.load(nifti)
        data, affine = image.get_fdata().astype("int16"), image.affine
        scans = {
            ".nii.gz": nifti,
            "DICOM series (256 files)": write_dicom(folder / "dicom", data, affine),
            ".mgz": write_mgz(folder / "mprage.mgz", data, affine),
            ".hdr/.img": write_pair(folder / "mprage.hdr", data, affine),
        }
        print(f"input: {data.shape} 1 mm LPS int16; min of {REPEATS} runs, seconds per scan")
        print(f"{'format':<26} {'check':>7} {'load':>7} {'CPU preset':>11}")
        for name, path in scans.items():
            check = _seconds(lambda p=path: check_image(p))
            read = _seconds(lambda p=path: load(p))
            pre = _seconds(lambda p=path: preset({"image": str(p)}))
            print(f"{name:<26} {check:7.3f} {read:7.3f} {pre:11.2f}", flush=True)


if __name__ == "__main__":
    main()
