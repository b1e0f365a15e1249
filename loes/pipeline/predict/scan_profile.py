"""Is a new scan like the scans a run trained on? A few numbers per scan (field of view from the
scan's affine, head size and intensity profile of the preprocessed input, whether the scan is
skull-stripped), and the training scans' mean, SD and range of each, so that a prediction on a
scan far from them is flagged. More screens: a whole head given to a run that trained on
skull-stripped brains and does not strip (or the reverse), fold models that disagree on a
scan far more than on the run's own scans, a scan upside down or back to front against its
header (:mod:`~loes.pipeline.predict.orientation`), and a scan the run trained on (the same
voxels, whatever the file's name or compression: its prediction is in-sample, no test of the
model).

A scan is "far" when one of its numbers lies more than :data:`FAR_SD` standard deviations from
the training scans' mean (with the SD floored at :data:`MIN_SD_FRACTION` of the mean's size, so
that near-constant features do not flag every scan). It is a screen, not a test: a scan inside
every range can still be unlike the training scans.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from nibabel.affines import voxel_sizes
from nibabel.spatialimages import SpatialImage

from loes.data.readers.scans import load_scan
from loes.pipeline.predict.orientation import COARSE_SHAPE, orientation_flag
from loes.transforms.skull_strip import is_skull_stripped

__all__ = [
    "FAR_SD",
    "FAR_SPREAD",
    "FEATURES",
    "MIN_SD_FRACTION",
    "MIN_SPREAD",
    "SLICE",
    "STRIPPED",
    "THICKER",
    "TrainingProfile",
    "scan_features",
    "scan_fingerprint",
]

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
#: the feature that says whether a scan is skull-stripped (1) or a whole head (0), decided by
#: :func:`loes.transforms.is_skull_stripped` on the scan as given
STRIPPED = "skull_stripped"
#: the feature of a scan's thickest voxel side in mm (its slice thickness, for a 2D acquisition),
#: from its affine
SLICE = "slice_mm"
#: a scan's slices are "far thicker" than the training scans' beyond this multiple of the
#: thickest of theirs: on the synthetic cohorts the paired change model detected progression
#: with ROC AUC 0.80-0.92 on pairs with a scan of slices over 3.5 mm, 0.93-0.98 on the others,
#: and, trained with thick slices simulated, 0.89-0.95 against 0.93-0.96
THICKER = 1.5
#: a scan's members disagree "far more" than on the run's scans when their SD exceeds this
#: multiple of the 95th percentile of the SDs on the profile's scans, and :data:`MIN_SPREAD`
FAR_SPREAD = 4.0
#: Loes points: a spread below this is never flagged (the scale moves in 0.5-point steps)
MIN_SPREAD = 1.5


def scan_features(scan: str | os.PathLike | SpatialImage, image: torch.Tensor) -> dict[str, float]:
    """The numbers of :data:`FEATURES` for one scan: ``scan``, its path or the scan
    :func:`~loes.data.readers.scans.load_scan` gave (its affine's voxel sizes x matrix, sorted,
    in mm), and ``image``, its preprocessed input (C, D, H, W); the head is every nonzero
    voxel; :data:`STRIPPED` is 1.0 for a skull-stripped scan, 0.0 for a whole head
    (:func:`loes.transforms.is_skull_stripped` on the scan as given); :data:`SLICE` is its
    thickest voxel side in mm (nibabel's ``voxel_sizes`` of the affine, not the header's
    pixdim, which a conversion can leave wrong)."""
    scan = _loaded(scan)
    sizes = voxel_sizes(scan.affine)  # the sform's (else qform's), as loes resamples with
    fov = sorted(float(n * z) for n, z in zip(scan.shape[:3], sizes, strict=True))
    values = np.asarray(image.detach().cpu(), dtype=np.float32)
    head = values[values != 0]
    median, p99 = np.percentile(head, [50, 99]) if head.size else (np.nan, np.nan)
    return {
        "fov_min_mm": fov[0],
        "fov_max_mm": fov[-1],
        "head_fraction": float(head.size / max(values.size, 1)),
        "intensity_median": float(median),
        "intensity_p99": float(p99),
        STRIPPED: float(is_skull_stripped(scan.get_fdata(dtype=np.float32)[None], scan.affine)),
        SLICE: float(max(sizes)),
    }


def _loaded(scan: str | os.PathLike | SpatialImage) -> SpatialImage:
    return scan if isinstance(scan, SpatialImage) else load_scan(scan)


def scan_fingerprint(scan: str | os.PathLike | SpatialImage) -> str | None:
    """The SHA-256 of a scan's voxels (as float32, in the order stored) and matrix, its first
    16 hex digits: equal for the same scan copied, renamed, recompressed (``.nii.gz`` and
    ``.nii``) or saved in another format that keeps the voxels; different when one voxel
    changes. ``scan``: its path, or the scan :func:`~loes.data.readers.scans.load_scan` gave
    (whose voxels, read once, nibabel keeps). None when the scan cannot be read."""
    try:
        data = np.ascontiguousarray(_loaded(scan).get_fdata(dtype=np.float32))
    except Exception:  # an unreadable scan has no fingerprint; its row says why elsewhere
        return None
    digest = hashlib.sha256(repr(data.shape).encode())
    digest.update(data.tobytes())
    return digest.hexdigest()[:16]


def _finite_max(values: list[float]) -> float | None:
    """The largest finite value (a header's NaN voxel size is not one); None when none is."""
    finite = [v for v in values if np.isfinite(v)]
    return float(max(finite)) if finite else None


#: what a profile written by an older loes lacks, with what it means
_OPTIONAL = ("stripped", "spread_p95", "template", "fingerprints", "scans", "slice_max")


@dataclass(frozen=True)
class TrainingProfile:
    """The training scans' mean, SD, minimum and maximum of each feature (see
    :func:`scan_features`), from ``n`` scans; ``stripped``, the share of them that were
    skull-stripped; ``spread_p95``, the 95th percentile of the fold models' SD on them (Loes
    points); ``template``, their mean coarse picture (nested lists of
    :data:`~loes.pipeline.predict.orientation.COARSE_SHAPE`); ``fingerprints``, the
    :func:`scan_fingerprint` of every scan of the run with its subject and session; ``scans``,
    the image paths the profile was measured on; ``slice_max``, the thickest of their voxel sides
    (mm). Each optional one is None in a profile written before it was measured, and its screen
    is then skipped."""

    n: int
    mean: Mapping[str, float]
    sd: Mapping[str, float]
    low: Mapping[str, float]
    high: Mapping[str, float]
    stripped: float | None = None
    spread_p95: float | None = None
    template: list | None = field(default=None, repr=False)
    fingerprints: Mapping[str, str] | None = field(default=None, repr=False)
    scans: list[str] | None = field(default=None, repr=False)
    slice_max: float | None = None

    @classmethod
    def from_features(
        cls,
        features: Iterable[Mapping[str, float]],
        spreads: Iterable[float] = (),
        pictures: Iterable[np.ndarray] = (),
        **known,
    ) -> TrainingProfile:
        """The profile of the training scans' :func:`scan_features`, of the fold models' SDs on
        them (``spreads``, Loes points; none for a single model) and of their coarse pictures
        (``pictures``, each of ``COARSE_SHAPE``); ``known`` sets ``fingerprints`` and ``scans``.

        Raises:
            ValueError: when ``features`` is empty.
        """
        rows = list(features)
        if not rows:
            raise ValueError("a training profile needs at least one scan's features.")
        table = {k: np.array([r[k] for r in rows], dtype=float) for k in FEATURES}
        spreads = [float(v) for v in spreads if np.isfinite(v)]
        pictures = [np.asarray(p, dtype=float) for p in pictures]
        return cls(
            n=len(rows),
            mean={k: float(np.nanmean(v)) for k, v in table.items()},
            sd={k: float(np.nanstd(v)) for k, v in table.items()},
            low={k: float(np.nanmin(v)) for k, v in table.items()},
            high={k: float(np.nanmax(v)) for k, v in table.items()},
            stripped=float(np.mean([r[STRIPPED] for r in rows])) if STRIPPED in rows[0] else None,
            slice_max=_finite_max([r[SLICE] for r in rows]) if SLICE in rows[0] else None,
            spread_p95=float(np.percentile(spreads, 95)) if spreads else None,
            template=np.round(np.mean(pictures, axis=0), 4).tolist() if pictures else None,
            **known,
        )

    def to_dict(self) -> dict:
        """Plain JSON types, read back by :meth:`from_dict`."""
        return {k: getattr(self, k) for k in ("n", "mean", "sd", "low", "high", *_OPTIONAL)}

    @classmethod
    def from_dict(cls, data: Mapping) -> TrainingProfile:
        """The profile :meth:`to_dict` wrote."""
        optional = {k: data.get(k) for k in _OPTIONAL}
        return cls(**{k: data[k] for k in ("n", "mean", "sd", "low", "high")}, **optional)

    def orientation_flag(self, picture: np.ndarray | None, axes: dict[str, int]) -> str | None:
        """Why a scan looks upside down or back to front against the template (see
        :func:`~loes.pipeline.predict.orientation.orientation_flag`), or None."""
        if self.template is None or picture is None:
            return None
        template = np.asarray(self.template, dtype=float)
        return None if template.shape != COARSE_SHAPE else orientation_flag(picture, template, axes)

    def in_sample_flag(self, fingerprint: str | None) -> str | None:
        """Why a scan is one the run trained on (the same file as one of its scans), or None."""
        if not self.fingerprints or fingerprint not in self.fingerprints:
            return None
        return (
            f"in-sample: the run trained on this very scan ({self.fingerprints[fingerprint]}): "
            "all fold models but one learned from it, so its prediction is no test of the model "
            "(the run's predictions.csv holds its out-of-fold prediction)"
        )

    def flags(self, features: Mapping[str, float]) -> list[str]:
        """One sentence per feature of a new scan that is far from the training scans."""
        out = []
        for key, label in FEATURES.items():
            value = features.get(key, np.nan)
            mean = self.mean[key]
            sd = max(self.sd[key], MIN_SD_FRACTION * abs(mean), 1e-6)
            if np.isfinite(value) and abs(value - mean) > FAR_SD * sd:
                out.append(
                    f"{label} {value:.3g} is far from the training scans' (mean {mean:.3g}, "
                    f"SD {self.sd[key]:.2g}, range {self.low[key]:.3g} to "
                    f"{self.high[key]:.3g}): over {FAR_SD:g} SD from their mean, the SD taken "
                    f"as at least {MIN_SD_FRACTION:.0%} of it"
                )
        return out

    def skull_flag(self, features: Mapping[str, float], strips: bool | str) -> str | None:
        """Why a scan with or without skull does not suit a run that trained on the other kind
        and does not strip (``strips``: the run's ``preprocessing.skull_strip``), with the
        remedy; None when it suits, when the run strips, or when the profile does not know."""
        value = features.get(STRIPPED)
        if strips or self.stripped is None or value is None:
            return None
        if value == 0 and self.stripped >= 0.9:
            return (
                "a whole head (skull and scalp in view), but the run trained on skull-stripped "
                "brains: score it with a run made with preprocessing.skull_strip: auto (or "
                "skull-strip it first)"
            )
        if value == 1 and self.stripped <= 0.1:
            return (
                "a skull-stripped brain, but the run trained on whole heads: score it with a run "
                "made with preprocessing.skull_strip: auto, or give the scan as acquired"
            )
        return None

    def slice_flag(self, features: Mapping[str, float]) -> str | None:
        """Why a scan's slices are far thicker (:data:`THICKER` times) than the thickest of the
        training scans' voxels, or None (also when the profile does not know them)."""
        value = features.get(SLICE, np.nan)
        if self.slice_max is None or not np.isfinite(value) or value <= THICKER * self.slice_max:
            return None
        return (
            f"slices of {value:.1f} mm, far thicker than the training scans' (at most "
            f"{self.slice_max:.1f} mm): small lesions, and small changes since another session, "
            "may not show"
        )

    def spread_flag(self, spread: float) -> str | None:
        """Why the fold models' SD on a scan (Loes points) is far above theirs on the run's
        scans, or None."""
        if self.spread_p95 is None or not np.isfinite(spread):
            return None
        limit = max(FAR_SPREAD * self.spread_p95, MIN_SPREAD)
        if spread > limit:
            return (
                f"the fold models disagree (SD {spread:.1f} points, at most "
                f"{self.spread_p95:.1f} on 95% of the run's own scans)"
            )
        return None
