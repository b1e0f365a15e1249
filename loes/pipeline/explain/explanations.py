"""``loes explain``: where a run's fold models look, scan by scan, and whether that is where the
lesions are.

Without sources, the run's own scans are explained, each by the fold model that never saw it
(out of fold, as its prediction in the report); with sources, new scans by the whole fold
ensemble (the members' maps averaged). For every scan and method
(:data:`~loes.pipeline.explain.saliency.SALIENCY_METHODS`) the map is written in model space
and, through MONAI's ``Invertd`` and the run's own preprocessing, on the scan's native grid, with
a PNG of three orthogonal slices through its peak (nilearn), its share in each Loes area
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
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from monai.transforms import Invertd
from tqdm.auto import tqdm

from loes.errors import LoesError
from loes.io import atomic_path, check_writable, csv_text, write_json, write_text
from loes.pipeline.explain.figures import map_figure
from loes.pipeline.explain.maps import Mapper, announce_occlusion, base_row, check_settings
from loes.pipeline.explain.saliency import SALIENCY_METHODS, SaliencySettings
from loes.pipeline.explain.scans import (
    Preparation,
    Scan,
    check_masks,
    name_scans,
    new_scans,
    own_scans,
)
from loes.pipeline.explain.summary import summarize_explanations
from loes.pipeline.predict.ensemble import FoldEnsemble
from loes.pipeline.predict.members import load_ensemble, warn_if_partial
from loes.pipeline.run.device import Stopwatch, configure_cpu, resolve_device
from loes.pipeline.run.folder import CONFIG_FILE, load_run_config

__all__ = ["EXPLANATIONS_FILE", "PAGE_FILE", "SUMMARY_FILE", "explain"]

EXPLANATIONS_FILE = "explanations.csv"
SUMMARY_FILE = "summary.json"
PAGE_FILE = "index.html"

#: the layout of a saved row; rows of another layout are made again
_ROW_FORMAT = 2


def _fingerprint(model: torch.nn.Module) -> str:
    """A short hash of a model's weights and buffers: which model made a saved row."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


#: files that mark a folder as someone else's: a run, a fold, a bundle, a data set
_NOT_OURS = (CONFIG_FILE, "metrics.json", "best.pt", "ensemble.json", "manifest.csv")
_NOT_OURS += ("configs/metadata.json", "dataset_description.json", "participants.tsv")


def _out_dir(run_dir: Path, sources, out: str | os.PathLike | None) -> Path:
    """``out``, or the default: ``explanations/`` here for new scans, in the run folder for
    its own."""
    if out is not None:
        return Path(out)
    return Path("explanations") if sources else run_dir / "explanations"


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
    """The per-scan work: rows reused from disk or made (preprocessing, maps) and their files."""

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
        self.methods, self.settings, self.sanity, self.out = list(methods), settings, sanity, out
        self.prepare = Preparation(ensemble.spec["preprocessing"], device, seed)
        self.mapper = Mapper(ensemble, settings, sanity, device, seed)
        self.fingerprints = {m.name: _fingerprint(m.model) for m in ensemble.members}

    def settings_of(self, scan: Scan, method: str) -> dict:
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

    def saved_row(self, scan: Scan, method: str) -> dict | None:
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

    def explain(self, scan: Scan) -> list[dict]:
        """One row per method (reused from disk when already made with the same settings)."""
        rows = {m: self.saved_row(scan, m) for m in self.methods}
        todo = [m for m, row in rows.items() if row is None]
        if todo:
            made = self._explain(scan, todo)
            rows |= made
        return [rows[m] for m in self.methods]

    def _explain(self, scan: Scan, methods: list[str]) -> dict[str, dict]:
        watch = Stopwatch(self.mapper.device)
        prepared = self.prepare(scan)
        if isinstance(prepared, str):
            return {m: {**base_row(scan, m), "error": prepared} for m in methods}
        folder = self.out / "scans" / scan.name
        folder.mkdir(parents=True, exist_ok=True)
        shared = watch.seconds() / len(methods)
        made = {}
        for method in methods:
            watch = Stopwatch(self.mapper.device)
            saliency = self.mapper.map(scan, prepared.x, method, random=False)
            if not np.isfinite(saliency).all():
                made[method] = {
                    **base_row(scan, method),
                    "error": f"the {method} map has NaN or infinite values (the network's "
                    "gradients overflow on this scan)",
                }
                continue
            row = self.mapper.row(scan, prepared, method, saliency)
            transform = self.prepare.transforms[bool(scan.lesion_mask)]
            _write_maps(transform, scan, prepared.item, saliency, method, folder, row)
            row |= {"seconds": watch.seconds() + shared, "error": ""}
            # written last: a row on disk means its maps and figure are there
            write_json(
                folder / f"{method}.json", {"settings": self.settings_of(scan, method), "row": row}
            )
            made[method] = row
        return made


def _write_maps(transform, scan, item, saliency, method, folder: Path, row: dict) -> None:
    """The map in model space, on the scan's native grid (``transform``, the preprocessing that
    made ``item``, inverted) and its figure."""
    image = item["image"]
    model_space = nib.Nifti1Image(saliency.astype(np.float32), np.asarray(image.affine))
    _save(model_space, folder / f"{method}.nii.gz")
    carried = image.clone()
    carried.set_array(torch.as_tensor(saliency[None]))
    inverted = Invertd("saliency", transform, orig_keys="image", nearest_interp=False)(
        {"image": image, "saliency": carried}
    )["saliency"]
    native = nib.Nifti1Image(
        inverted.as_tensor()[0].numpy().astype(np.float32), np.asarray(inverted.affine)
    )
    _save(native, folder / f"{method}_native.nii.gz")
    map_figure(native, scan, method, row, folder / f"{method}.png")


def _save(image: nib.Nifti1Image, path: Path) -> None:
    image.set_qform(image.affine, code=1)
    image.set_sform(image.affine, code=1)
    with atomic_path(path) as tmp:
        nib.save(image, tmp)


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
            scan's grid, or an ``out`` that is a run folder; a ``WriteError`` (one) for an
            ``out`` (or default) where nothing can be written, before any work.
    """
    methods, scans = _check_arguments(methods, scans)
    settings = settings or SaliencySettings()
    run_dir = Path(run_dir)
    # before any work: a read-only run folder (a shared model folder) cannot take the default
    out = _out_dir(run_dir, sources, out)
    _check_out(out, run_dir)
    check_writable(out, "choose another place with --out")
    ensemble = load_ensemble(run_dir)
    settings = check_settings(ensemble, methods, settings)
    reading = {"images_dir": images_dir, "include_gd": include_gd, "suffix": suffix}
    chosen = _choose(run_dir, sources, ensemble, scans, reading)
    warn_if_partial(run_dir, ensemble, "explaining")
    seed = load_run_config(run_dir).seed if (run_dir / CONFIG_FILE).is_file() else 0
    device = resolve_device(device) if isinstance(device, str) else device
    configure_cpu()
    explainer = _Explainer(ensemble, methods, settings, sanity, device, out, seed)
    if "occlusion" in methods:
        announce_occlusion(ensemble, device, sanity, chosen, settings)
    rows = []
    for scan in tqdm(chosen, desc="scans", unit="scan", disable=None if progress else True):
        rows += explainer.explain(scan)
    provenance = ensemble.provenance("flip", 0.9)
    run = {"trained": provenance["trained"], "warnings": (provenance["run"] or {}).get("warnings")}
    return _write_outputs(rows, out, run_dir, chosen, methods, sanity, settings, run)


def _check_arguments(
    methods: str | Sequence[str], scans: int | str | None
) -> tuple[list[str], int | None]:
    """``methods`` as a list of known names, lower case, each once; ``scans`` as a number or
    None (all).

    Raises:
        LoesError: for an unknown method, no method, or a number of scans below 1.
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
    return methods, scans


def _choose(
    run_dir: Path,
    sources: Sequence[str | os.PathLike] | None,
    ensemble: FoldEnsemble,
    scans: int | None,
    reading: dict,
) -> list[Scan]:
    """The scans to explain (``sources``' with the ensemble, or the run's own out of fold), their
    masks checked and folders named.

    Raises:
        LoesError: for a lesion mask off its scan's grid.
    """
    if sources:
        chosen = new_scans(sources, ensemble, scans, **reading)
    else:
        chosen = own_scans(run_dir, ensemble, scans)
    check_masks(chosen)
    name_scans(chosen)
    return chosen


def _write_outputs(
    rows: list[dict],
    out: Path,
    run_dir: Path,
    chosen: list[Scan],
    methods: list[str],
    sanity: bool,
    settings: SaliencySettings,
    provenance: dict,
) -> pd.DataFrame:
    """``explanations.csv``, ``summary.json`` and the page; the table, with ``attrs``.
    ``provenance``: what the models were trained on (``trained``) and the run's ``warnings``."""
    table = pd.DataFrame(rows)
    table = table.reindex(columns=_columns(table))
    write_text(out / EXPLANATIONS_FILE, csv_text(table))
    summary = summarize_explanations(table)
    summary["run"] = str(run_dir)
    summary["provenance"] = provenance
    summary["settings"] = {"methods": methods, "sanity": sanity, **settings.__dict__}
    write_json(out / SUMMARY_FILE, summary)
    from loes.pipeline.explain.page import render_page

    write_text(out / PAGE_FILE, render_page(table, summary, {s.image: s.name for s in chosen}))
    table.attrs.update(out=out, summary=summary)
    return table


def _columns(table: pd.DataFrame) -> list[str]:
    first = ["subject", "session", "image", "fold", "method", "loes_score", "predicted"]
    last = ["seconds", "error"]
    middle = [c for c in table.columns if c not in first + last]
    return first + middle + last
