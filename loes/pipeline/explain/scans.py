"""The scans ``loes explain`` explains and their preparation: the run's own scans, each with the
fold model that tested it (:func:`own_scans`, spread over the range of their scores), or new scans
with the whole ensemble (:func:`new_scans`); their lesion masks checked, their folder names, and
each scan through the run's preprocessing with what every method's row shares
(:class:`Preparation`)."""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from loes.data.loes_areas import MNI_OVERLAP, area_shares, mni_overlap
from loes.data.loes_items import MAX_LOES_SCORE
from loes.data.readers.scans import ScanError, open_scan, scan_stem
from loes.data.scan_sources import read_scans
from loes.data.validation import check_image
from loes.errors import LoesError
from loes.pipeline.explain.checks import random_map, truth_metrics
from loes.pipeline.predict.ensemble import FoldEnsemble, Member
from loes.pipeline.predict.preprocessed import blank_input
from loes.pipeline.run.data import run_table
from loes.pipeline.run.folder import CONFIG_FILE, load_run_config
from loes.pipeline.run.predictions import NETWORK
from loes.transforms import preprocessing
from loes.transforms.foreground import BrainForeground

__all__ = [
    "Preparation",
    "Prepared",
    "Scan",
    "check_masks",
    "name_scans",
    "new_scans",
    "own_scans",
    "scan_seed",
]


@dataclass
class Scan:
    """One scan to explain: its ids, files, the members that explain it and its folder name."""

    subject: str
    session: str
    image: str
    loes_score: float
    lesion_mask: str | None
    members: list[Member]
    name: str = ""

    @property
    def fold(self) -> str:
        return "+".join(m.name for m in self.members) if len(self.members) == 1 else "ensemble"


def scan_seed(seed: int, scan: Scan) -> int:
    """A seed of the scan's own (random map, SmoothGrad noise): the same whatever the scans
    explained before it."""
    return int(np.random.SeedSequence([seed, zlib.crc32(scan.image.encode())]).generate_state(1)[0])


def _mask_path(value) -> str | None:
    return None if value is None or pd.isna(value) or not str(value).strip() else str(value)


def check_masks(scans: list[Scan]) -> None:
    """Every lesion mask exists and lies on its scan's grid (shape and affine).

    Raises:
        LoesError: naming the scan, the mask and what differs.
    """
    for scan in scans:
        if scan.lesion_mask is None:
            continue
        where = f"{scan.image} (lesion_mask {scan.lesion_mask})"
        try:
            mask, image = open_scan(scan.lesion_mask), open_scan(scan.image)
        except ScanError as error:
            raise LoesError(f"{where}: {error.reason}") from None
        if len(mask.shape) > 3 and any(n > 1 for n in mask.shape[3:]):
            raise LoesError(
                f"{where}: the mask is {len(mask.shape)}D {mask.shape}; a lesion mask is one 3D "
                "label image on its scan's voxels."
            )
        if mask.shape[:3] != image.shape[:3]:
            raise LoesError(
                f"{where}: the mask's grid {mask.shape[:3]} is not the scan's {image.shape[:3]}; "
                "a lesion mask must lie on its scan's own voxels."
            )
        if not np.allclose(mask.affine, image.affine, atol=1e-3):
            raise LoesError(
                f"{where}: the mask's affine differs from the scan's (by up to "
                f"{np.abs(mask.affine - image.affine).max():.3g} mm); a lesion mask must lie on "
                "its scan's own voxels."
            )


def name_scans(scans: list[Scan]) -> None:
    """A folder name per scan: ``sub-01_ses-02``, or the file name; unique."""
    seen: dict[str, int] = {}
    for scan in scans:
        base = "_".join(s for s in (scan.subject, scan.session) if s)
        base = base or scan_stem(scan.image)
        base = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-.") or "scan"
        count = seen.get(base, 0)
        seen[base] = count + 1
        scan.name = base if count == 0 else f"{base}-{count + 1}"


def own_scans(run_dir: Path, ensemble: FoldEnsemble, scans: int | None) -> list[Scan]:
    """The run's scans with the fold model that tested each (first repeat), ``scans`` of them
    evenly spread over the scores (all with None)."""
    from loes.pipeline.run.collect import collect_predictions

    if not (run_dir / CONFIG_FILE).is_file():
        raise LoesError(
            f"{run_dir} is an exported ensemble, not a run folder: it holds no scans of its own; "
            "name the scans to explain (SOURCE)."
        )
    table = run_table(run_dir)
    if table is None:
        config = load_run_config(run_dir)
        where = (
            config.data.source
            or f"the synthetic cohort under data.cache_dir {config.data.cache_dir}"
        )
        raise LoesError(
            f"the scans of {run_dir} cannot be read here: {where} (a relative path is relative "
            "to the folder loes runs in: run from the folder `loes cv` ran in, or name the scans "
            "to explain as SOURCE)."
        )
    oof = collect_predictions(run_dir)
    oof = oof[oof["model"] == NETWORK].sort_values(["repeat", "fold"])
    oof = oof.drop_duplicates(["subject", "session"])  # the first repeat's fold
    members = {(m.repeat, m.fold): m for m in ensemble.members}
    keyed = table.assign(session=table["session"].astype(str), subject=table["subject"].astype(str))
    merged = keyed.merge(
        oof[["subject", "session", "repeat", "fold"]].astype({"session": str, "subject": str}),
        on=["subject", "session"],
    )
    merged = merged.sort_values(["loes_score", "subject", "session"], kind="stable")
    if scans is not None and scans < len(merged):
        merged = merged.iloc[_spread(merged["loes_score"].to_numpy(), scans)]
    return [
        Scan(
            subject=row.subject,
            session=row.session,
            image=str(row.image),
            loes_score=float(row.loes_score),
            lesion_mask=_mask_path(getattr(row, "lesion_mask", None)),
            members=[members[(int(row.repeat), int(row.fold))]],
        )
        for row in merged.itertuples()
    ]


def _spread(scores: np.ndarray, n: int) -> list[int]:
    """Positions of ``n`` scans whose scores lie nearest to ``n`` targets evenly spaced over the
    scores' range (the middle of each of ``n`` equal bins: one scan is a mid-range score), each
    scan taken once, in score order."""
    low, high = float(scores.min()), float(scores.max())
    targets = low + (high - low) * (np.arange(n) + 0.5) / n
    free = np.ones(len(scores), bool)
    chosen = []
    for target in targets:
        distance = np.where(free, np.abs(scores - target), np.inf)
        best = int(np.argmin(distance))
        free[best] = False
        chosen.append(best)
    return sorted(chosen)


def new_scans(sources, ensemble: FoldEnsemble, scans: int | None, **reading) -> list[Scan]:
    """The scans of ``sources`` (read as :func:`loes.data.read_scans` reads them; the first
    ``scans``, all with None), each explained by the whole ensemble."""
    table = read_scans(sources, **reading)
    if scans is not None:
        table = table.head(scans)
    return [
        Scan(
            subject=str(row.subject),
            session=str(row.session),
            image=str(row.image),
            loes_score=float(row.loes_score),
            lesion_mask=_mask_path(getattr(row, "lesion_mask", None)),
            members=list(ensemble.members),
        )
        for row in table.itertuples()
    ]


@dataclass
class Prepared:
    """A preprocessed scan and what every method's row shares: the model input ``x``
    (1, 1, D, H, W), its affine (voxel -> mm), brain and lesion masks on its grid, the MNI
    check, the prediction (Loes points) and the baselines' truth metrics."""

    item: dict
    brain_areas: dict
    x: torch.Tensor
    affine: np.ndarray
    brain: np.ndarray
    lesion: np.ndarray | None
    mni_overlap: float
    in_mni: bool
    predicted: float
    baselines: dict


class Preparation:
    """The run's preprocessing (``spec``, the ensemble's ``preprocessing``), with and without a
    lesion mask, on ``device``; ``seed`` seeds each scan's random-map baseline."""

    def __init__(self, spec: dict, device: torch.device, seed: int) -> None:
        self.registered = bool(spec.get("register"))
        self.transforms = {
            False: preprocessing(keys="image", **spec),
            True: preprocessing(keys="image", label_keys="lesion_mask", **spec),
        }
        self.pixdim = spec.get("pixdim")
        self.device, self.seed = device, seed

    def __call__(self, scan: Scan) -> Prepared | str:
        """The scan (and its mask) through the run's preprocessing, with what every method's
        row shares; or why it cannot be explained."""
        problems = check_image(scan.image, pixdim=self.pixdim)
        errors = [message for severity, message in problems if severity == "error"]
        if errors:
            return " ".join(errors)
        keys = {"image": scan.image}
        if scan.lesion_mask:
            keys["lesion_mask"] = scan.lesion_mask
        try:
            item = self.transforms[bool(scan.lesion_mask)](keys)
        except Exception as error:  # any failure of a user's scan is that scan's row
            return f"cannot be preprocessed ({type(error).__name__}: {error})"
        image = item["image"]
        blank = blank_input(image.as_tensor())
        if blank:
            return blank
        affine = np.asarray(image.affine, dtype=np.float64)
        x = image.as_tensor()[None].float().contiguous().to(self.device)
        brain = np.asarray(BrainForeground()(image.as_tensor())[0])
        if not brain.any():
            return "holds no brain after preprocessing: nothing to explain"
        lesion = None
        if scan.lesion_mask:
            lesion = np.asarray(item["lesion_mask"].as_tensor()[0]) > 0
        overlap = mni_overlap(brain, affine)
        in_mni = self.registered or overlap >= MNI_OVERLAP
        with torch.no_grad():
            scores = [m.model(x).clamp(0.0, MAX_LOES_SCORE).item() for m in scan.members]
        baselines = {}
        if lesion is not None:
            baselines = {
                "random": truth_metrics(
                    random_map(brain, scan_seed(self.seed, scan)), lesion, brain
                ),
                "brain_mask": truth_metrics(brain.astype(np.float32), lesion, brain),
            }
        return Prepared(
            item=item,
            brain_areas=area_shares(brain, affine) if in_mni else {},
            x=x,
            affine=affine,
            brain=brain,
            lesion=lesion,
            mni_overlap=overlap,
            in_mni=in_mni,
            predicted=float(np.mean(scores)),
            baselines=baselines,
        )
