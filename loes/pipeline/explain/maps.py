"""The maps of a prepared scan and the row of ``explanations.csv`` each makes: the members'
mean map (:mod:`loes.pipeline.explain.saliency`), with randomised weights for the sanity check,
its peak, Loes-area shares and truth metrics (:mod:`loes.pipeline.explain.checks`); the settings
checked against the network before any work, and occlusion's cost announced."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import nibabel as nib
import numpy as np
import torch

from loes.data.loes_areas import LOES_AREAS, area_shares
from loes.errors import LoesError
from loes.pipeline.explain.checks import TRUTH_METRICS, is_flat, rank_correlation, truth_metrics
from loes.pipeline.explain.saliency import (
    SaliencySettings,
    check_layer,
    occlusion_windows,
    randomized,
    saliency_map,
)
from loes.pipeline.explain.scans import Prepared, Scan, scan_seed
from loes.pipeline.predict.ensemble import FoldEnsemble, Member
from loes.pipeline.run.device import Stopwatch
from loes.pipeline.run.messages import note

__all__ = ["AREA_NAMES", "Mapper", "announce_occlusion", "base_row", "check_settings"]

#: occlusion is announced with its cost when it would take longer than this, seconds
_ANNOUNCE_SECONDS = 60.0
AREA_NAMES = (*LOES_AREAS, "elsewhere")


def base_row(scan: Scan, method: str) -> dict:
    """The columns of a row that name the scan and the method (all an error's row has)."""
    return {
        "subject": scan.subject,
        "session": scan.session,
        "image": scan.image,
        "fold": scan.fold,
        "method": method,
        "loes_score": scan.loes_score,
    }


class Mapper:
    """The maps of a scan's members on ``device`` and the rows they make."""

    def __init__(
        self,
        ensemble: FoldEnsemble,
        settings: SaliencySettings,
        sanity: bool,
        device: torch.device,
        seed: int,
    ) -> None:
        self.settings, self.sanity, self.device, self.seed = settings, sanity, device, seed
        for member in ensemble.members:
            member.model.to(device).eval()
        self._random: dict[str, torch.nn.Module] = {}

    def random_model(self, member: Member) -> torch.nn.Module:
        if member.name not in self._random:
            self._random[member.name] = randomized(member.model, self.seed).to(self.device)
        return self._random[member.name]

    def map(self, scan: Scan, image: torch.Tensor, method: str, random: bool) -> np.ndarray:
        """The members' mean map (with randomised weights: the sanity check's)."""
        maps = [
            saliency_map(
                self.random_model(m) if random else m.model,
                image,
                method,
                self.settings,
                seed=scan_seed(self.seed, scan),
            )
            for m in scan.members
        ]
        return torch.stack(maps).mean(dim=0).numpy()

    def row(self, scan: Scan, prepared: Prepared, method: str, saliency: np.ndarray) -> dict:
        """What ``explanations.csv`` says of one map."""
        p = prepared
        row = {
            **base_row(scan, method),
            "predicted": p.predicted,
            "mni_overlap": p.mni_overlap,
            "in_mni": p.in_mni,
        }
        peak = np.unravel_index(int(np.argmax(saliency)), saliency.shape)
        flat = is_flat(saliency)
        peak_mm = [np.nan] * 3 if flat else nib.affines.apply_affine(p.affine, peak)
        row |= dict(zip(("peak_x", "peak_y", "peak_z"), peak_mm, strict=True))
        areas = area_shares(saliency, p.affine, p.brain) if p.in_mni else {}
        row |= {f"area_{a}": areas.get(a, np.nan) for a in AREA_NAMES}
        row |= {f"brain_area_{a}": p.brain_areas.get(a, np.nan) for a in AREA_NAMES}
        lesion = p.lesion if p.lesion is not None else np.zeros_like(p.brain)
        row |= truth_metrics(saliency, lesion, p.brain)
        for baseline, values in p.baselines.items():
            row |= {f"{baseline}_{k}": values[k] for k in TRUTH_METRICS if k != "lesion_share"}
        row["random_weights_rank_correlation"] = np.nan
        if self.sanity:
            randomised = self.map(scan, p.x, method, random=True)
            row["random_weights_rank_correlation"] = rank_correlation(saliency, randomised, p.brain)
        return row


def check_settings(
    ensemble: FoldEnsemble, methods: list[str], settings: SaliencySettings
) -> SaliencySettings:
    """``settings`` checked against the ensemble's network and input before any work, with
    GradCAM's layer resolved (the name a saved row records).

    Raises:
        LoesError: for a layer the network lacks, or an occlusion cube larger than the input.
    """
    size = tuple(ensemble.spec["spatial_size"])
    if {"gradcam", "gradcampp"} & set(methods):
        layer = check_layer(ensemble.members[0].model, settings.layer, size)
        settings = replace(settings, layer=layer)
    elif settings.layer is not None:
        check_layer(ensemble.members[0].model, settings.layer, size)
        note(
            f"warning: --layer {settings.layer} is for gradcam and gradcampp; "
            f"{', '.join(methods)} do not use it"
        )
    if "occlusion" in methods and settings.occlusion_size > min(size):
        raise LoesError(
            f"the occlusion cube ({settings.occlusion_size} voxels) is larger than the model's "
            f"input {'x'.join(map(str, size))}; choose --occlusion-size {min(size)} or less."
        )
    return settings


def announce_occlusion(
    ensemble: FoldEnsemble,
    device: torch.device,
    sanity: bool,
    scans: Sequence[Scan],
    settings: SaliencySettings,
) -> None:
    """Print occlusion's cost before it starts when it would take more than a minute."""
    size = tuple(ensemble.spec["spatial_size"])
    windows = occlusion_windows(size, settings)
    model = ensemble.members[0].model
    batch = torch.zeros((settings.occlusion_batch, 1, *size), device=device)
    with torch.no_grad():
        model(batch[:1])  # warm up
        watch = Stopwatch(device)
        model(batch)
        seconds = watch.seconds()
    passes = sum(len(s.members) for s in scans) * (2 if sanity else 1)
    total = passes * -(-windows // settings.occlusion_batch) * seconds
    if total > _ANNOUNCE_SECONDS:
        note(
            f"occlusion: {windows} occluded copies of each scan ({settings.occlusion_size}-voxel "
            f"cubes every {settings.occlusion_stride} voxels) for {passes} model passes: about "
            f"{total / 60:.0f} min; a larger --occlusion-stride is faster"
        )
