"""``preview.png``: axial and sagittal slices of scans ordered by Loes score."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

from loes.io import atomic_path

__all__ = ["write_preview"]

_AXIAL_Z = 16.0  # MNI mm: through the lateral ventricles, splenium and genu
_SAGITTAL_X = -24.0  # MNI mm: left parieto-occipital and frontal white matter
_BRAIN = ((-75, 75), (-110, 76), (-60, 85))  # MNI mm shown, x, y, z
_HEAD = ((-95, 95), (-125, 115), (-110, 110))


def _plane(
    image: nib.Nifti1Image, axis: str, step: float = 1.5, extent: tuple = _BRAIN
) -> np.ndarray:
    """An MNI-aligned plane sampled from a native scan through its affine."""
    (x0, x1), (y0, y1), (z0, z1) = extent
    if axis == "axial":
        u, v = np.meshgrid(np.arange(x0, x1, step), np.arange(y0, y1, step), indexing="ij")
        points = np.stack([u, v, np.full_like(u, _AXIAL_Z)], axis=-1)
    else:
        u, v = np.meshgrid(np.arange(y0, y1, step), np.arange(z0, z1, step), indexing="ij")
        points = np.stack([np.full_like(u, _SAGITTAL_X), u, v], axis=-1)
    inv = np.linalg.inv(image.affine)
    idx = np.moveaxis(points @ inv[:3, :3].T + inv[:3, 3], -1, 0)
    data = np.asanyarray(image.dataobj).astype(np.float32)
    return ndimage.map_coordinates(data, idx, order=1, cval=0.0).T  # rows: y or z


def write_preview(
    root: Path, manifest: pd.DataFrame, path: Path, columns: int = 8, whole_head: bool = False
) -> None:
    """Write a montage of up to ``columns`` scans spanning the scores, lowest first; with
    ``whole_head`` the planes show the whole head."""
    from matplotlib.figure import Figure  # the object API: no process-wide backend switch

    ordered = manifest.sort_values(["loes_score", "subject", "session"], kind="stable")
    picks = np.unique(
        np.linspace(0, len(ordered) - 1, min(columns, len(ordered))).round().astype(int)
    )
    rows = ordered.iloc[picks]
    fig = Figure(figsize=(2.2 * len(rows), 5.2))
    axes = fig.subplots(2, len(rows), squeeze=False)
    for col, row in enumerate(rows.itertuples(index=False)):
        image = nib.load(root / row.image)
        for r, axis in enumerate(("axial", "sagittal")):
            plane = _plane(image, axis, extent=_HEAD if whole_head else _BRAIN)
            top = np.percentile(plane, 99.5) or 1.0
            ax = axes[r, col]
            ax.imshow(plane, cmap="gray", origin="lower", vmin=0, vmax=top)
            ax.set_axis_off()
        axes[0, col].set_title(f"{row.subject} {row.session}\nLoes {row.loes_score:g}", fontsize=8)
    fig.suptitle(
        f"synthetic cohort: axial z={_AXIAL_Z:g} mm, sagittal x={_SAGITTAL_X:g} mm (MNI)",
        fontsize=9,
    )
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png", metadata={"Software": None})
