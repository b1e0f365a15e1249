"""Build ``loes/data/synthetic/head/``: pydeface's mean head registered to the MNI template.

The whole-head synthetic scans (``loes synth --whole-head``) put skull, scalp, eyes and neck
around the synthetic brain. They come from the mean head with face that the pydeface wheel
ships (``pydeface/data/mean_reg2mean.nii.gz``, MIT licence, (c) 2015 the pydeface authors
(poldracklab); https://github.com/poldracklab/pydeface), registered once to the MNI ICBM152 2009
template the cohort is built on, and shipped as a small derivative so that users need neither
pydeface (it depends on nipype) nor a download::

    pip install pydeface                     # or: pip install -e ".[dev]"
    python scripts/make_head_template.py     # 10-15 min on 2 busy cores; rewrites the folder

Steps (SimpleITK; Mattes mutual information inside the MNI brain mask dilated by 3 mm, then
6 mm):

1. similarity, then affine registration of the head to the skull-stripped MNI T1 (the
   metric only sees the brain and its edge, so the scalp cannot pull the fit);
2. a cubic B-spline (control points about 30 mm apart) that brings the head's brain surface
   onto the MNI brain mask; its displacement is kept in full up to 4 mm from the mask and
   faded linearly to none at 24 mm, so skull and scalp follow the brain while eyes, face and
   neck keep the affine's shape (the B-spline alone flattens the orbits);
3. resampling onto an MNI-aligned 1.5 mm grid covering the head, the background (and the
   frame lines of the mean image) cleared outside the head's largest connected component,
   intensities scaled so that MNI white matter reads 0.87 as in ``loes.data.synthetic``;
4. a fluid map: where the head's dark voxels are CSF (around the MNI brain mask, in the
   spinal canal) or vitreous (the eyes), so that T2w and FLAIR can show them as fluid.

Writes ``head_t1.nii.gz`` (uint8, scale 1/128: T1-weighted intensity), ``head_fluid.nii.gz``
(uint8, scale 1/255: fluid fraction), ``head.json`` (provenance) and ``NOTICE``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.resources
import json
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from loes.data.template import load_template
from loes.io import atomic_path, write_json, write_text

OUT = Path(__file__).resolve().parents[1] / "loes" / "data" / "synthetic" / "head"
SPACING = 1.5
ORIGIN = (-99.0, -130.5, -138.0)  # RAS mm of voxel (0, 0, 0)
SHAPE = (133, 168, 169)  # x -99..99, y -130.5..120, z -138..114
WM_LEVEL = 0.87  # MNI white matter in the synthetic cohort's T1 units
T1_SCALE = 1.0 / 128  # stored uint8 -> intensity (0..2)
FADE_MM = (4.0, 24.0)  # the B-spline counts in full up to 4 mm from the brain, none from 24
# measured on the registered head: dark vitreous in its bright rim, the cord below the brainstem
EYES = ((-33.0, 59.0, -45.0), (34.0, 59.0, -46.0))  # vitreous centres, MNI mm
EYE_RADIUS = 10.0
CANAL = ((0.0, -38.0, -62.0), (0.0, -54.0, -138.0))  # spinal canal axis, MNI mm
CANAL_RADIUS = 8.0


def _to_sitk(image: nib.Nifti1Image, folder: Path, name: str) -> sitk.Image:
    """nibabel -> SimpleITK through a file, so ITK converts RAS to LPS itself."""
    path = folder / f"{name}.nii.gz"
    nib.save(image, path)
    return sitk.ReadImage(str(path), sitk.sitkFloat32)


def _grid() -> sitk.Image:
    """The shipped grid as a SimpleITK image (LPS): voxel (i, j, k) at ORIGIN + SPACING * ijk."""
    ref = sitk.Image(list(SHAPE), sitk.sitkFloat32)
    ref.SetSpacing([SPACING] * 3)
    ref.SetDirection([-1, 0, 0, 0, -1, 0, 0, 0, 1])
    ref.SetOrigin([-ORIGIN[0], -ORIGIN[1], ORIGIN[2]])
    return ref


def grid_affine() -> np.ndarray:
    affine = np.diag([SPACING, SPACING, SPACING, 1.0])
    affine[:3, 3] = ORIGIN
    return affine


def _array(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(image).transpose(2, 1, 0)  # (z, y, x) -> (i, j, k)


def _method(mask: sitk.Image, shrink: list[int], sigmas: list[float]):
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(32)
    method.SetMetricSamplingStrategy(method.REGULAR)
    method.SetMetricSamplingPercentage(0.25, seed=1)
    method.SetMetricFixedMask(mask)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetShrinkFactorsPerLevel(shrink)
    method.SetSmoothingSigmasPerLevel(sigmas)
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    return method


def register(fixed: sitk.Image, moving: sitk.Image, brain: sitk.Image) -> sitk.Transform:
    """MNI point -> head point: similarity, affine, then B-spline (see the module docstring)."""
    mask = sitk.BinaryDilate(brain, [3, 3, 3])
    start = time.perf_counter()
    sim = sitk.CenteredTransformInitializer(
        fixed,
        moving,
        sitk.Similarity3DTransform(),
        sitk.CenteredTransformInitializerFilter.GEOMETRY,
    )
    for transform, shrink, sigmas in (
        (sim, [8, 4, 2], [4.0, 2.0, 1.0]),
        (None, [4, 2], [2.0, 1.0]),
    ):
        if transform is None:
            transform = sitk.AffineTransform(3)
            transform.SetCenter(sim.GetCenter())
            transform.SetMatrix(sim.GetMatrix())
            transform.SetTranslation(sim.GetTranslation())
            affine = transform
        method = _method(mask, shrink, sigmas)
        method.SetOptimizerAsRegularStepGradientDescent(
            2.0, 1e-3, 300, relaxationFactor=0.7, gradientMagnitudeTolerance=1e-8
        )
        method.SetOptimizerScalesFromPhysicalShift()
        method.SetInitialTransform(transform, inPlace=True)
        method.Execute(fixed, moving)
        print(f"{type(transform).__name__}: MI {method.GetMetricValue():.4f}", flush=True)
    bspline = sitk.BSplineTransformInitializer(_grid(), [7, 8, 8], order=3)
    method = _method(sitk.BinaryDilate(brain, [6, 6, 6]), [4, 2], [2.0, 1.0])
    method.SetOptimizerAsLBFGSB(
        gradientConvergenceTolerance=1e-5, numberOfIterations=100, maximumNumberOfCorrections=5
    )
    method.SetMovingInitialTransform(affine)
    method.SetInitialTransform(bspline, inPlace=True)
    method.Execute(fixed, moving)
    print(
        f"B-spline: MI {method.GetMetricValue():.4f} ({time.perf_counter() - start:.0f} s)",
        flush=True,
    )
    return sitk.CompositeTransform([affine, bspline])


def faded(transform: sitk.CompositeTransform, brain: np.ndarray) -> sitk.Transform:
    """The registration with its B-spline displacement faded away from the brain (FADE_MM)."""
    affine, bspline = transform.GetNthTransform(0), transform.GetNthTransform(1)
    grid = _grid()
    field = sitk.TransformToDisplacementField(
        bspline,
        sitk.sitkVectorFloat64,
        grid.GetSize(),
        grid.GetOrigin(),
        grid.GetSpacing(),
        grid.GetDirection(),
    )
    distance = ndimage.distance_transform_edt(~brain, sampling=SPACING).transpose(2, 1, 0)
    near, far = FADE_MM
    weight = np.clip((far - distance) / (far - near), 0.0, 1.0)[..., None]
    kept = sitk.GetImageFromArray(sitk.GetArrayFromImage(field) * weight, isVector=True)
    kept.CopyInformation(field)
    return sitk.CompositeTransform([affine, sitk.DisplacementFieldTransform(kept)])


def _mni_on_grid(kind: str) -> np.ndarray:
    """An MNI template image resampled onto the shipped grid (0 outside its field of view)."""
    image = load_template(kind)
    to_voxel = np.linalg.inv(image.affine) @ grid_affine()
    return ndimage.affine_transform(
        np.asarray(image.dataobj, np.float32), to_voxel, output_shape=SHAPE, order=1
    )


def _capsule(points: np.ndarray, p0, p1, radius: float) -> np.ndarray:
    p0, p1 = np.asarray(p0), np.asarray(p1)
    d = p1 - p0
    t = np.clip(((points - p0) @ d) / float(d @ d), 0.0, 1.0)
    return np.linalg.norm(points - (p0 + t[..., None] * d), axis=-1) <= radius


def build(head: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """(T1 intensity, fluid fraction, figures) from the head resampled onto the grid."""
    brain = _mni_on_grid("brain_mask") > 0.5
    wm = _mni_on_grid("wm") > 0.9
    t1 = head * (WM_LEVEL / float(np.median(head[wm & brain])))
    # the head: the largest piece above 15% of white matter once thin bridges are opened (the
    # mean image has faint frame lines in front of the face), cavities closed to the outside kept
    # (the neck continues below the grid: morphology sees its last plane repeated)
    below = ((0, 0), (0, 0), (8, 0))
    solid = ndimage.binary_opening(np.pad(t1 > 0.15, below, mode="edge"), iterations=2)
    labels, _ = ndimage.label(solid)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    inside = ndimage.binary_dilation(labels == sizes.argmax(), iterations=2)
    inside = ndimage.binary_fill_holes(ndimage.binary_closing(inside, iterations=2))[:, :, 8:]
    weight = ndimage.gaussian_filter(inside.astype(np.float32), 1.0, mode="nearest")
    t1 = np.clip(t1 * weight, 0.0, 255 * T1_SCALE)
    idx = np.indices(SHAPE, dtype=np.float32).reshape(3, -1).T
    points = (idx * SPACING + np.asarray(ORIGIN, np.float32)).reshape(*SHAPE, 3)
    cranial = ndimage.distance_transform_edt(~brain, sampling=SPACING) <= 6.0
    fluid = cranial | _capsule(points, *CANAL, CANAL_RADIUS)
    for centre in EYES:
        fluid |= np.linalg.norm(points - np.asarray(centre), axis=-1) <= EYE_RADIUS
    fluid = ndimage.gaussian_filter((fluid & inside).astype(np.float32), 1.0)
    figures = {
        "head_voxels": int(inside.sum()),
        "brain_mask_inside_head": round(float(inside[brain].mean()), 4),
        "median_t1_outside_brain": round(float(np.median(t1[inside & ~cranial])), 4),
    }
    return t1.astype(np.float32), fluid.astype(np.float32), figures


def _nifti(data: np.ndarray, scale: float, description: str) -> bytes:
    import gzip

    stored = np.rint(np.clip(data / scale, 0, 255)).astype(np.uint8)
    image = nib.Nifti1Image(stored, grid_affine())
    image.header.set_slope_inter(scale, 0.0)
    image.set_qform(grid_affine(), code=4)  # MNI
    image.set_sform(grid_affine(), code=4)
    image.header.set_xyzt_units("mm")
    image.header["descrip"] = description.encode()[:79]
    return gzip.compress(image.to_bytes(), compresslevel=9, mtime=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"folder to write (default: {OUT})")
    parser.add_argument("--transform", type=Path, help="reuse (or save) the registration here")
    args = parser.parse_args(argv)
    source = importlib.resources.files("pydeface") / "data" / "mean_reg2mean.nii.gz"
    raw = source.read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "head.nii.gz").write_bytes(raw)
        moving = sitk.ReadImage(str(folder / "head.nii.gz"), sitk.sitkFloat32)
        fixed = _to_sitk(load_template("t1"), folder, "mni")
        brain = load_template("brain_mask")
        mask = sitk.Cast(_to_sitk(brain, folder, "mask") > 0.5, sitk.sitkUInt8)
        if args.transform is not None and args.transform.is_file():
            transform = sitk.ReadTransform(str(args.transform))
        else:
            transform = register(fixed, moving, mask)
            if args.transform is not None:
                sitk.WriteTransform(transform, str(args.transform))
        transform = faded(sitk.CompositeTransform(transform), _mni_on_grid("brain_mask") > 0.5)
        head = _array(sitk.Resample(moving, _grid(), transform, sitk.sitkLinear, 0.0))
    t1, fluid, figures = build(head)
    description = "loes synth: pydeface mean head (MIT) registered to MNI ICBM152 2009"
    args.out.mkdir(parents=True, exist_ok=True)
    for name, data, scale in (("head_t1", t1, T1_SCALE), ("head_fluid", fluid, 1 / 255)):
        with atomic_path(args.out / f"{name}.nii.gz") as path:
            path.write_bytes(_nifti(data, scale, description))
    write_json(
        args.out / "head.json",
        {
            "source": "pydeface/data/mean_reg2mean.nii.gz",
            "source_version": importlib.metadata.version("pydeface"),
            "source_sha256": hashlib.sha256(raw).hexdigest(),
            "license": "MIT (see NOTICE)",
            "target": "MNI ICBM152 2009 nonlinear symmetric (nilearn), skull-stripped T1",
            "registration": "SimpleITK: similarity and affine (Mattes MI in the MNI brain mask "
            "dilated by 3 mm), B-spline (mesh 7x8x8, the mask dilated by 6 mm) faded from 4 to "
            "24 mm outside the brain",
            "grid": {"spacing_mm": SPACING, "origin_mm": list(ORIGIN), "shape": list(SHAPE)},
            "head_t1": f"T1-weighted intensity (scale {T1_SCALE:g}): MNI white matter "
            f"{WM_LEVEL}, 0 outside the head",
            "head_fluid": "fraction of fluid (CSF around the brain and in the spinal canal, "
            "vitreous), for T2w and FLAIR",
            "eyes_mm": [list(e) for e in EYES],
            "spinal_canal_mm": [list(c) for c in CANAL],
            "figures": figures,
            "script": "scripts/make_head_template.py",
        },
    )
    write_text(args.out / "NOTICE", NOTICE)
    print(json.dumps(figures))
    return 0


NOTICE = """\
head_t1.nii.gz and head_fluid.nii.gz are derived from pydeface's mean head
(pydeface/data/mean_reg2mean.nii.gz, https://github.com/poldracklab/pydeface), registered to
the MNI ICBM152 2009 template by scripts/make_head_template.py. pydeface is distributed under
the MIT License:

The MIT License (MIT)

Copyright (c) 2015

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""

if __name__ == "__main__":
    raise SystemExit(main())
