"""ROBEX's atlas head (one real subject with skull, 1.5 mm) with ALD-like T1-hypointense posterior
periventricular lesions of 0, 2, 10, 21 and 41 mL, each written whole and masked with the atlas's
own brain mask, to check that a run scores a whole head as its stripped copy.

    PYTHONPATH=. .venv/bin/python scripts/lesion_loads.py OUT
    loes predict runs/synthetic-raw OUT --out raw.csv

The lesions are two mirrored ellipsoids (1.6 times longer front to back) 30 mm behind and 15 mm
above the brain's centre, grown until they hold the volume, kept inside the brain, at 0.4 times
the brain's median intensity.
"""

import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from benchmarks.bench_skull_strip import robex_atlas


def main(out: Path) -> None:
    out.mkdir(exist_ok=True)
    head, mask = robex_atlas()
    a = np.asarray(head.dataobj, np.float32)
    brain = np.asarray(mask.dataobj) > 0
    ijk = np.indices(a.shape).reshape(3, -1).T
    xyz = nib.affines.apply_affine(head.affine, ijk).reshape(*a.shape, 3)
    centre = nib.affines.apply_affine(head.affine, np.argwhere(brain).mean(0))
    voxel_ml = abs(np.linalg.det(head.affine[:3, :3])) / 1000
    level = 0.4 * np.median(a[brain])

    def lesion(r: float) -> np.ndarray:
        m = np.zeros(a.shape, bool)
        for side in (-1, 1):
            c = centre + np.array([side * 20, -30, 15])
            m |= (((xyz - c) / np.array([r, 1.6 * r, r])) ** 2).sum(-1) <= 1
        return m & brain

    for ml in (0, 2, 10, 21, 41):
        m = np.zeros(a.shape, bool)
        if ml:
            lo, hi = 0.5, 40.0
            for _ in range(40):  # bisect the radius, mm
                r = (lo + hi) / 2
                lo, hi = (r, hi) if lesion(r).sum() * voxel_ml < ml else (lo, r)
            m = lesion(hi)
        image = np.where(m, level, a)
        nib.save(nib.Nifti1Image(image, head.affine), out / f"whole_{ml:02d}mL.nii.gz")
        nib.save(nib.Nifti1Image(image * brain, head.affine), out / f"stripped_{ml:02d}mL.nii.gz")
        print(f"{ml} mL asked, {m.sum() * voxel_ml:.1f} mL made")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
