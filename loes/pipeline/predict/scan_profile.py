"""Is a new scan like the scans a run trained on? A few numbers per scan (field of view from the
NIfTI header, head size and intensity profile of the preprocessed input), and the training
scans' range of each, so that a prediction on a scan far outside it is flagged.

A scan is "far" when one of its numbers lies more than :data:`FAR_SD` standard deviations from
the training scans' mean (with the SD floored at :data:`MIN_SD_FRACTION` of the mean's size, so
that near-constant features do not flag every scan). It is a screen, not a test: a scan inside
every range can still be unlike the training scans.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from loes.data.readers.scans import open_scan

__all__ = ["FAR_SD", "FEATURES", "MIN_SD_FRACTION", "TrainingProfile", "scan_features"]

#: each feature and how a message names it (unit included)
FEATURES = {
    "fov_min_mm": "smallest field of view (mm)",
    "fov_max_mm": "largest field of view (mm)",
    "head_fraction": "share of the input box the head fills",
    "intensity_median": "median head intensity after normalisation",
    "intensity_p99": "99th percentile of head intensity after normalisation",
}
FAR_SD = 4.0
MIN_SD_FRACTION = 0.05


def scan_features(path: str | os.PathLike, image: torch.Tensor) -> dict[str, float]:
    """The numbers of :data:`FEATURES` for one scan: ``path`` (its header: voxel sizes x
    matrix, sorted, in mm) and ``image``, its preprocessed input (C, D, H, W); the head is
    every nonzero voxel."""
    header = open_scan(path).header
    fov = sorted(
        float(n * z)
        for n, z in zip(header.get_data_shape()[:3], header.get_zooms()[:3], strict=True)
    )
    values = np.asarray(image.detach().cpu(), dtype=np.float32)
    head = values[values != 0]
    median, p99 = np.percentile(head, [50, 99]) if head.size else (np.nan, np.nan)
    return {
        "fov_min_mm": fov[0],
        "fov_max_mm": fov[-1],
        "head_fraction": float(head.size / max(values.size, 1)),
        "intensity_median": float(median),
        "intensity_p99": float(p99),
    }


@dataclass(frozen=True)
class TrainingProfile:
    """The training scans' mean, SD, minimum and maximum of each feature (see
    :func:`scan_features`), from ``n`` scans."""

    n: int
    mean: Mapping[str, float]
    sd: Mapping[str, float]
    low: Mapping[str, float]
    high: Mapping[str, float]

    @classmethod
    def from_features(cls, features: Iterable[Mapping[str, float]]) -> TrainingProfile:
        """The profile of the training scans' :func:`scan_features`.

        Raises:
            ValueError: when ``features`` is empty.
        """
        rows = list(features)
        if not rows:
            raise ValueError("a training profile needs at least one scan's features.")
        table = {k: np.array([r[k] for r in rows], dtype=float) for k in FEATURES}
        return cls(
            n=len(rows),
            mean={k: float(np.nanmean(v)) for k, v in table.items()},
            sd={k: float(np.nanstd(v)) for k, v in table.items()},
            low={k: float(np.nanmin(v)) for k, v in table.items()},
            high={k: float(np.nanmax(v)) for k, v in table.items()},
        )

    def to_dict(self) -> dict:
        """Plain JSON types, read back by :meth:`from_dict`."""
        return {"n": self.n, "mean": self.mean, "sd": self.sd, "low": self.low, "high": self.high}

    @classmethod
    def from_dict(cls, data: Mapping) -> TrainingProfile:
        """The profile :meth:`to_dict` wrote."""
        return cls(**{k: data[k] for k in ("n", "mean", "sd", "low", "high")})

    def flags(self, features: Mapping[str, float]) -> list[str]:
        """One sentence per feature of a new scan that is far from the training scans."""
        out = []
        for key, label in FEATURES.items():
            value = features.get(key, np.nan)
            mean = self.mean[key]
            sd = max(self.sd[key], MIN_SD_FRACTION * abs(mean), 1e-6)
            if np.isfinite(value) and abs(value - mean) > FAR_SD * sd:
                out.append(
                    f"{label} {value:.3g} is far from the training scans' "
                    f"({self.low[key]:.3g} to {self.high[key]:.3g})"
                )
        return out
