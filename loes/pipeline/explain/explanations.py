"""``loes explain``: where a run's fold models look, scan by scan, and whether that is where the
lesions are.

Without sources, the run's own scans are explained, each by the fold model that never saw it
(out of fold, as its prediction in the report); with sources, new scans by the whole fold
ensemble (the members' maps averaged). For every scan and method
(:data:`~loes.pipeline.explain.saliency.SALIENCY_METHODS`) the map is written in model space and, through
MONAI's ``Invertd`` and the run's own preprocessing, on the scan's native grid, with a PNG of three
orthogonal slices through its peak (nilearn), its share in each Loes area
(:mod:`loes.data.loes_areas`, for scans in MNI space or registered to it) and, where the scan has
a lesion mask, the truth metrics of :mod:`loes.pipeline.explain.checks` beside a random map's
and the brain mask's, and the model randomisation test. Layout of ``OUT``::

    OUT/explanations.csv   one row per scan and method
    OUT/summary.json       per method (and per fold): means of the metrics, baselines, sanity
    OUT/index.html         the page: thumbnails, area shares, predictions, summary
    OUT/scans/<scan>/<method>.nii.gz          the map on the model's input grid
    OUT/scans/<scan>/<method>_native.nii.gz   the map on the scan's own grid and affine
    OUT/scans/<scan>/<method>.png             three orthogonal slices through the peak
    OUT/scans/<scan>/<method>.json            the row (written last: a killed run resumes)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from monai.transforms import Invertd
from tqdm.auto import tqdm

from loes.data.loes_areas import LOES_AREAS, MNI_OVERLAP, area_shares, mni_overlap
from loes.data.loes_items import MAX_LOES_SCORE
from loes.data.scan_sources import read_scans
from loes.data.validation import check_image
from loes.errors import LoesError
from loes.io import atomic_path, write_json, write_text
from loes.pipeline.explain.checks import (
    TRUTH_METRICS,
    is_flat,
    random_map,
    rank_correlation,
    truth_metrics,
)
from loes.pipeline.explain.saliency import (
    SALIENCY_METHODS,
    SaliencySettings,
    check_layer,
    occlusion_windows,
    randomized,
    saliency_map,
)
from loes.pipeline.predict.ensemble import FoldEnsemble, Member
from loes.pipeline.predict.members import load_ensemble, warn_if_partial
from loes.pipeline.predict.preprocessed import blank_input
from loes.pipeline.run.data import run_table
from loes.pipeline.run.device import configure_cpu, resolve_device
from loes.pipeline.run.folder import CONFIG_FILE, load_run_config
from loes.pipeline.run.messages import note
from loes.pipeline.run.predictions import NETWORK
from loes.transforms import preprocessing
from loes.transforms.presets import BrainForeground

__all__ = ["EXPLANATIONS_FILE", "PAGE_FILE", "SUMMARY_FILE", "explain", "summarize_explanations"]

EXPLANATIONS_FILE = "explanations.csv"
SUMMARY_FILE = "summary.json"
PAGE_FILE = "index.html"
#: occlusion is announced with its cost when it would take longer than this, seconds
_ANNOUNCE_SECONDS = 60.0
_BASELINES = ("random", "brain_mask")


@dataclass
class _Scan:
    """One scan to explain: its ids, files, the members that explain it and its folder name."""

    subject: str
    session: str
    image: str
    loes_score: float
    lesion_mask: str | None
    members: list[Member]
    name: str = ""
    rows: list[dict] = field(default_factory=list)

    @property
    def fold(self) -> str:
        return "+".join(m.name for m in self.members) if len(self.members) == 1 else "ensemble"


#: the layout of a saved row; rows of another layout are made again
_ROW_FORMAT = 2
_AREA_NAMES = (*LOES_AREAS, "elsewhere")


def _fingerprint(model: torch.nn.Module) -> str:
    """A short hash of a model's weights and buffers: which model made a saved row."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _scan_seed(seed: int, scan: _Scan) -> int:
    """A seed of the scan's own (random map, SmoothGrad noise): the same whatever the scans
    explained before it."""
    return int(np.random.SeedSequence([seed, zlib.crc32(scan.image.encode())]).generate_state(1)[0])


@dataclass
class _Prepared:
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


def _mask_path(value) -> str | None:
    return None if value is None or pd.isna(value) or not str(value).strip() else str(value)


def _check_masks(scans: list[_Scan]) -> None:
    """Every lesion mask exists and lies on its scan's grid (shape and affine).

    Raises:
        LoesError: naming the scan, the mask and what differs.
    """
    for scan in scans:
        if scan.lesion_mask is None:
            continue
        where = f"{scan.image} (lesion_mask {scan.lesion_mask})"
        try:
            mask, image = nib.load(scan.lesion_mask), nib.load(scan.image)
        except (OSError, ValueError, nib.filebasedimages.ImageFileError) as error:
            raise LoesError(f"{where}: cannot be read ({error}).") from None
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


def _name_scans(scans: list[_Scan]) -> None:
    """A folder name per scan: ``sub-01_ses-02``, or the file name; unique."""
    seen: dict[str, int] = {}
    for scan in scans:
        base = "_".join(s for s in (scan.subject, scan.session) if s)
        base = base or re.sub(r"\.nii(\.gz)?$", "", Path(scan.image).name, flags=re.IGNORECASE)
        base = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-.") or "scan"
        count = seen.get(base, 0)
        seen[base] = count + 1
        scan.name = base if count == 0 else f"{base}-{count + 1}"


def _own_scans(run_dir: Path, ensemble: FoldEnsemble, scans: int | None) -> list[_Scan]:
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
        _Scan(
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


def _new_scans(sources, ensemble: FoldEnsemble, scans: int | None, **reading) -> list[_Scan]:
    table = read_scans(sources, **reading)
    if scans is not None:
        table = table.head(scans)
    return [
        _Scan(
            subject=str(row.subject),
            session=str(row.session),
            image=str(row.image),
            loes_score=float(row.loes_score),
            lesion_mask=_mask_path(getattr(row, "lesion_mask", None)),
            members=list(ensemble.members),
        )
        for row in table.itertuples()
    ]


#: files that mark a folder as someone else's: a run, a fold, a bundle, a data set
_NOT_OURS = (CONFIG_FILE, "metrics.json", "best.pt", "ensemble.json", "manifest.csv")
_NOT_OURS += ("configs/metadata.json", "dataset_description.json", "participants.tsv")


def _check_out(out: Path, run_dir: Path) -> None:
    taken = [name for name in _NOT_OURS if (out / name).exists()]
    if out.resolve() == run_dir.resolve() or taken:
        what = f"holds {taken[0]}" if taken else "is the run folder"
        raise LoesError(
            f"--out {out} {what}: its files are not explain's to overwrite; choose a folder of "
            f"its own (default: {run_dir / 'explanations'})."
        )
    if out.exists() and not out.is_dir():
        raise LoesError(f"--out {out} is a file; choose a folder.")


class _Explainer:
    """The per-scan work: preprocessing, maps, files, rows."""

    def __init__(
        self,
        ensemble: FoldEnsemble,
        methods: Sequence[str],
        settings: SaliencySettings,
        sanity: bool,
        device: torch.device,
        out: Path,
        seed: int,
    ) -> None:
        self.ensemble, self.methods, self.settings = ensemble, list(methods), settings
        self.sanity, self.device, self.out, self.seed = sanity, device, out, seed
        spec = ensemble.spec["preprocessing"]
        self.registered = bool(spec.get("register"))
        self.transforms = {
            False: preprocessing(keys="image", **spec),
            True: preprocessing(keys="image", label_keys="lesion_mask", **spec),
        }
        self.pixdim = spec.get("pixdim")
        for member in ensemble.members:
            member.model.to(device).eval()
        self.fingerprints = {m.name: _fingerprint(m.model) for m in ensemble.members}
        self._random: dict[str, torch.nn.Module] = {}

    def random_model(self, member: Member) -> torch.nn.Module:
        if member.name not in self._random:
            self._random[member.name] = randomized(member.model, self.seed).to(self.device)
        return self._random[member.name]

    def _map(self, scan: _Scan, image: torch.Tensor, method: str, random: bool) -> np.ndarray:
        """The members' mean map (with randomised weights: the sanity check's)."""
        maps = [
            saliency_map(
                self.random_model(m) if random else m.model,
                image,
                method,
                self.settings,
                seed=_scan_seed(self.seed, scan),
            )
            for m in scan.members
        ]
        return torch.stack(maps).mean(dim=0).numpy()

    def settings_of(self, scan: _Scan, method: str) -> dict:
        """What a saved row must have been made with to be reused."""
        return {
            "method": method,
            **self.settings.of(method),
            "sanity": self.sanity,
            "models": {m.name: self.fingerprints[m.name] for m in scan.members},
            "image": scan.image,
            "lesion_mask": scan.lesion_mask,
            "format": _ROW_FORMAT,
        }

    def saved_row(self, scan: _Scan, method: str) -> dict | None:
        path = self.out / "scans" / scan.name / f"{method}.json"
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if saved.get("settings") != self.settings_of(scan, method):
            return None
        files = (f"{method}.nii.gz", f"{method}_native.nii.gz", f"{method}.png")
        if not all((path.parent / name).is_file() for name in files):
            return None
        return saved.get("row")

    def explain(self, scan: _Scan) -> list[dict]:
        """One row per method (reused from disk when already made with the same settings)."""
        rows = {m: self.saved_row(scan, m) for m in self.methods}
        todo = [m for m, row in rows.items() if row is None]
        if todo:
            made = self._explain(scan, todo)
            rows |= made
        return [rows[m] for m in self.methods]

    def _base_row(self, scan: _Scan, method: str) -> dict:
        return {
            "subject": scan.subject,
            "session": scan.session,
            "image": scan.image,
            "fold": scan.fold,
            "method": method,
            "loes_score": scan.loes_score,
        }

    def _prepare(self, scan: _Scan) -> _Prepared | str:
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
                    random_map(brain, _scan_seed(self.seed, scan)), lesion, brain
                ),
                "brain_mask": truth_metrics(brain.astype(np.float32), lesion, brain),
            }
        return _Prepared(
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

    def _row(self, scan: _Scan, prepared: _Prepared, method: str, saliency: np.ndarray) -> dict:
        """What ``explanations.csv`` says of one map."""
        p = prepared
        row = {
            **self._base_row(scan, method),
            "predicted": p.predicted,
            "mni_overlap": p.mni_overlap,
            "in_mni": p.in_mni,
        }
        peak = np.unravel_index(int(np.argmax(saliency)), saliency.shape)
        flat = is_flat(saliency)
        peak_mm = [np.nan] * 3 if flat else nib.affines.apply_affine(p.affine, peak)
        row |= dict(zip(("peak_x", "peak_y", "peak_z"), peak_mm, strict=True))
        areas = area_shares(saliency, p.affine, p.brain) if p.in_mni else {}
        row |= {f"area_{a}": areas.get(a, np.nan) for a in _AREA_NAMES}
        row |= {f"brain_area_{a}": p.brain_areas.get(a, np.nan) for a in _AREA_NAMES}
        lesion = p.lesion if p.lesion is not None else np.zeros_like(p.brain)
        row |= truth_metrics(saliency, lesion, p.brain)
        for baseline, values in p.baselines.items():
            row |= {f"{baseline}_{k}": values[k] for k in TRUTH_METRICS if k != "lesion_share"}
        row["random_weights_rank_correlation"] = np.nan
        if self.sanity:
            randomised = self._map(scan, p.x, method, random=True)
            row["random_weights_rank_correlation"] = rank_correlation(saliency, randomised, p.brain)
        return row

    def _explain(self, scan: _Scan, methods: list[str]) -> dict[str, dict]:
        start = time.perf_counter()
        prepared = self._prepare(scan)
        if isinstance(prepared, str):
            return {m: {**self._base_row(scan, m), "error": prepared} for m in methods}
        folder = self.out / "scans" / scan.name
        folder.mkdir(parents=True, exist_ok=True)
        shared = (time.perf_counter() - start) / len(methods)
        made = {}
        for method in methods:
            start = time.perf_counter()
            saliency = self._map(scan, prepared.x, method, random=False)
            if not np.isfinite(saliency).all():
                made[method] = {
                    **self._base_row(scan, method),
                    "error": f"the {method} map has NaN or infinite values (the network's "
                    "gradients overflow on this scan)",
                }
                continue
            row = self._row(scan, prepared, method, saliency)
            self._write_maps(scan, prepared.item, saliency, method, folder, row)
            row |= {"seconds": time.perf_counter() - start + shared, "error": ""}
            # written last: a row on disk means its maps and figure are there
            write_json(
                folder / f"{method}.json", {"settings": self.settings_of(scan, method), "row": row}
            )
            made[method] = row
        return made

    def _write_maps(self, scan, item, saliency, method, folder: Path, row: dict) -> None:
        image = item["image"]
        model_space = nib.Nifti1Image(saliency.astype(np.float32), np.asarray(image.affine))
        _save(model_space, folder / f"{method}.nii.gz")
        carried = image.clone()
        carried.set_array(torch.as_tensor(saliency[None]))
        transform = self.transforms[bool(scan.lesion_mask)]
        inverted = Invertd("saliency", transform, orig_keys="image", nearest_interp=False)(
            {"image": image, "saliency": carried}
        )["saliency"]
        native = nib.Nifti1Image(
            inverted.as_tensor()[0].numpy().astype(np.float32), np.asarray(inverted.affine)
        )
        _save(native, folder / f"{method}_native.nii.gz")
        _figure(native, scan, method, row, folder / f"{method}.png")


def _save(image: nib.Nifti1Image, path: Path) -> None:
    image.set_qform(image.affine, code=1)
    image.set_sform(image.affine, code=1)
    with atomic_path(path) as tmp:
        nib.save(image, tmp)


def _figure(native: nib.Nifti1Image, scan: _Scan, method: str, row: dict, path: Path) -> None:
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
    figure = plt.figure(figsize=(7.5, 2.6))
    with warnings.catch_warnings():  # nilearn casts integer scans to float, with a warning
        warnings.simplefilter("ignore", UserWarning)
        if np.all(np.isfinite(peak)):
            display = plotting.plot_stat_map(
                native,
                bg_img=scan.image,
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
                scan.image,
                display_mode="ortho",
                title=f"{title}; the map is flat",
                figure=figure,
                colorbar=False,
            )
        mask = nib.squeeze_image(nib.load(scan.lesion_mask)) if scan.lesion_mask else None
        if mask is not None and np.any(np.asarray(mask.dataobj)):
            display.add_contours(mask, levels=[0.5], colors="cyan", linewidths=0.6)
        with atomic_path(path) as tmp:
            display.savefig(str(tmp), dpi=90)
    display.close()
    plt.close(figure)


def _announce_occlusion(
    explainer: _Explainer, scans: list[_Scan], settings: SaliencySettings
) -> None:
    """Print occlusion's cost before it starts when it would take more than a minute."""
    size = tuple(explainer.ensemble.spec["spatial_size"])
    windows = occlusion_windows(size, settings)
    model = explainer.ensemble.members[0].model
    batch = torch.zeros((settings.occlusion_batch, 1, *size), device=explainer.device)
    with torch.no_grad():
        model(batch[:1])  # warm up
        start = time.perf_counter()
        model(batch)
        seconds = time.perf_counter() - start
    passes = sum(len(s.members) for s in scans) * (2 if explainer.sanity else 1)
    total = passes * -(-windows // settings.occlusion_batch) * seconds
    if total > _ANNOUNCE_SECONDS:
        note(
            f"occlusion: {windows} occluded copies of each scan ({settings.occlusion_size}-voxel "
            f"cubes every {settings.occlusion_stride} voxels) for {passes} model passes: about "
            f"{total / 60:.0f} min; a larger --occlusion-stride is faster"
        )


def explain(
    run_dir: str | os.PathLike,
    sources: Sequence[str | os.PathLike] | None = None,
    *,
    methods: str | Sequence[str] = ("vanillagrad",),
    scans: int | str | None = 8,
    out: str | os.PathLike | None = None,
    settings: SaliencySettings | None = None,
    sanity: bool = True,
    device: str | torch.device = "auto",
    progress: bool = False,
    images_dir: str | os.PathLike | None = None,
    include_gd: bool = False,
    suffix: str = "T1w",
) -> pd.DataFrame:
    """Explain scans with a run's fold models and write ``out`` (see the module's layout).

    Args:
        run_dir: a ``loes cv`` run folder (or, with ``sources``, a ``loes export`` bundle).
        sources: new scans (NIfTI files, folders, tables as :func:`loes.data.read_scans` reads
            them, with an optional ``lesion_mask`` column); None: the run's own scans, out of
            fold.
        methods: names from :data:`~loes.pipeline.explain.saliency.SALIENCY_METHODS` (or one name);
            the default, the vanilla gradient, is the one that points at the lesions of the
            synthetic cohort (README).
        scans: how many scans: the run's own, spread evenly over the range of their scores;
            of ``sources``, the first. None or ``"all"``: all.
        out: the output folder (default ``run_dir/explanations``, or ``explanations`` with
            ``sources``).
        settings: layer, SmoothGrad and occlusion settings (default: :class:`SaliencySettings`).
        sanity: also make each map with randomised weights (doubles the cost).
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or a ``torch.device``.
        progress: show a progress bar.
        images_dir, include_gd, suffix: how ``sources`` tables are read.

    Returns:
        The rows of ``explanations.csv``: ``subject, session, image, fold`` (the member that
        explained it, or ``ensemble``), ``method, loes_score, predicted`` (Loes points, without
        test-time augmentation), ``mni_overlap, in_mni``, ``peak_x, peak_y, peak_z`` (the
        map's peak, scanner millimetres), ``area_<area>`` shares (NaN when not in MNI space),
        the :func:`~loes.pipeline.explain.checks.truth_metrics`, the same for
        ``random_*`` and ``brain_mask_*`` maps, ``random_weights_rank_correlation``,
        ``seconds``, ``error``; ``attrs["out"]`` is the output folder, ``attrs["summary"]``
        what ``summary.json`` holds.

    Raises:
        LoesError: for an unknown method, a run without a finished fold, a lesion mask off its
            scan's grid, or an ``out`` that is a run folder.
    """
    methods = [methods] if isinstance(methods, str) else list(methods)
    methods = list(dict.fromkeys(m.strip().lower() for m in methods))
    unknown = [m for m in methods if m not in SALIENCY_METHODS]
    if unknown or not methods:
        raise LoesError(
            f"unknown method {', '.join(map(repr, unknown)) or '(none given)'}; choose from "
            f"{', '.join(SALIENCY_METHODS)}."
        )
    if scans == "all":
        scans = None
    if scans is not None and (not isinstance(scans, int) or scans < 1):
        raise LoesError(f"scans must be a number of scans, at least 1, or 'all'; got {scans!r}.")
    settings = settings or SaliencySettings()
    run_dir = Path(run_dir)
    ensemble = load_ensemble(run_dir)
    settings = _check_settings(ensemble, methods, settings)
    if sources:
        chosen = _new_scans(
            sources, ensemble, scans, images_dir=images_dir, include_gd=include_gd, suffix=suffix
        )
        default_out = Path("explanations")
    else:
        chosen = _own_scans(run_dir, ensemble, scans)
        default_out = run_dir / "explanations"
    out = Path(out) if out is not None else default_out
    _check_out(out, run_dir)
    _check_masks(chosen)
    _name_scans(chosen)
    warn_if_partial(run_dir, ensemble, "explaining")
    seed = load_run_config(run_dir).seed if (run_dir / CONFIG_FILE).is_file() else 0
    device = resolve_device(device) if isinstance(device, str) else device
    configure_cpu()
    explainer = _Explainer(ensemble, methods, settings, sanity, device, out, seed)
    if "occlusion" in methods:
        _announce_occlusion(explainer, chosen, settings)
    rows = []
    for scan in tqdm(chosen, desc="scans", unit="scan", disable=None if progress else True):
        rows += explainer.explain(scan)
    table = pd.DataFrame(rows)
    table = table.reindex(columns=_columns(table))
    write_text(out / EXPLANATIONS_FILE, table.to_csv(index=False))
    summary = summarize_explanations(table)
    summary["run"] = str(run_dir)
    summary["settings"] = {"methods": methods, "sanity": sanity, **settings.__dict__}
    write_json(out / SUMMARY_FILE, summary)
    from loes.pipeline.explain.page import render_page

    write_text(out / PAGE_FILE, render_page(table, summary, {s.image: s.name for s in chosen}))
    table.attrs.update(out=out, summary=summary)
    return table


def _check_settings(
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


def _columns(table: pd.DataFrame) -> list[str]:
    first = ["subject", "session", "image", "fold", "method", "loes_score", "predicted"]
    last = ["seconds", "error"]
    middle = [c for c in table.columns if c not in first + last]
    return first + middle + last


def _mean(values: pd.Series) -> float | None:
    values = pd.to_numeric(values, errors="coerce").dropna()
    return float(values.mean()) if len(values) else None


def _metrics(rows: pd.DataFrame) -> dict:
    lesioned = rows[rows["lesion_share"].notna()] if "lesion_share" in rows else rows.iloc[:0]
    result: dict = {
        "scans": len(rows),
        "scans_with_lesions": len(lesioned),
        "flat_maps": int(rows["flat"].astype(bool).sum()),
        "flat_maps_with_lesions": int(lesioned["flat"].astype(bool).sum()),
    }
    if len(lesioned):
        result["map"] = {k: _mean(lesioned[k]) for k in TRUTH_METRICS}
        result["baselines"] = {
            b: {k: _mean(lesioned[f"{b}_{k}"]) for k in TRUTH_METRICS if k != "lesion_share"}
            for b in _BASELINES
            if f"{b}_auc" in lesioned
        }
    if "random_weights_rank_correlation" in rows:
        result["random_weights_rank_correlation"] = _mean(rows["random_weights_rank_correlation"])
    if rows[[f"area_{a}" for a in _AREA_NAMES]].notna().any().any():
        result["areas"] = {
            a: {"map": _mean(rows[f"area_{a}"]), "brain": _mean(rows[f"brain_area_{a}"])}
            for a in _AREA_NAMES
        }
    healthy = rows[rows["loes_score"] == 0]
    if len(healthy) and len(lesioned):
        result["score_zero"] = {
            "scans": len(healthy),
            "mass": _mean(healthy["mass"]),
            "mass_on_scans_with_lesions": _mean(lesioned["mass"]),
        }
    return result


def summarize_explanations(table: pd.DataFrame) -> dict:
    """Per method, over the explained scans (errors left out), and per method and fold: how
    many maps are flat (one value everywhere, 0 included: a GradCAM whose ReLU zeroed it; they
    score chance), the mean truth metrics of the maps and of the baselines on the same scans
    with lesions, the mean rank
    correlation with randomised weights, the mean area shares of the maps beside the areas'
    shares of the brain (chance) and, for scans scored 0, the
    map's mass beside its mass on scans with lesions."""
    done = table[table["error"] == ""] if "error" in table else table
    summary: dict = {"methods": {}}
    for method, rows in done.groupby("method", sort=False):
        entry = _metrics(rows)
        entry["by_fold"] = {str(f): _metrics(r) for f, r in rows.groupby("fold", sort=True)}
        summary["methods"][method] = entry
    return summary
