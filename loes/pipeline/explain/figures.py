"""The figure of one map: three orthogonal slices through its peak over the scan, drawn by
nilearn into a PNG, the lesion mask's outline in cyan."""

from __future__ import annotations

import warnings
from pathlib import Path

import nibabel as nib
import numpy as np

from loes.data.readers.scans import as_nifti, load_scan
from loes.io import atomic_path
from loes.pipeline.explain.scans import Scan

__all__ = ["map_figure"]


def map_figure(native: nib.Nifti1Image, scan: Scan, method: str, row: dict, path: Path) -> None:
    """Three orthogonal slices through the map's peak (the row's, in model space) over the scan
    (nilearn), the lesion mask's outline in cyan."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from nilearn import plotting

    top = float(np.max(native.dataobj))
    peak = [row["peak_x"], row["peak_y"], row["peak_z"]]
    score = "" if np.isnan(scan.loes_score) else f", scored {scan.loes_score:g}"
    title = f"{scan.name} {method}: predicted {row['predicted']:.1f}{score}"
    background = as_nifti(load_scan(scan.image))  # DICOM, MGH and pairs too, as nilearn reads NIfTI
    figure = plt.figure(figsize=(7.5, 2.6))
    with warnings.catch_warnings():  # nilearn casts integer scans to float, with a warning
        warnings.simplefilter("ignore", UserWarning)
        if np.all(np.isfinite(peak)):
            display = plotting.plot_stat_map(
                native,
                bg_img=background,
                cut_coords=peak,
                display_mode="ortho",
                threshold=0.2 * top,
                vmax=top,
                cmap="hot",
                title=title,
                black_bg=True,
                figure=figure,
            )
        else:  # nothing to overlay: the scan alone, said so
            display = plotting.plot_anat(
                background,
                display_mode="ortho",
                title=f"{title}; the map is flat",
                figure=figure,
                colorbar=False,
            )
        mask = load_scan(scan.lesion_mask) if scan.lesion_mask else None
        if mask is not None and np.any(np.asarray(mask.dataobj)):
            display.add_contours(mask, levels=[0.5], colors="cyan", linewidths=0.6)
        with atomic_path(path) as tmp:
            display.savefig(str(tmp), dpi=90)
    display.close()
    plt.close(figure)
