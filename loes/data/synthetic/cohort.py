"""Write the synthetic cohort: scans in parallel, resumable, byte-identical per seed.

The folder is a BIDS dataset and has a manifest listing the same scans (``layout``
names every file)::

    OUT_DIR/
      cohort.json              parameters; a re-run must match them to resume
      manifest.csv             one row per scan (paths relative to OUT_DIR)
      dataset_description.json, participants.tsv, sub-*/sub-*_sessions.tsv (scores), ...
      sub-001/ses-01/anat/sub-001_ses-01_T1w.nii.gz      (T2w / FLAIR by contrast)
                          sub-001_ses-01_T1w.json         sidecar, written last
      derivatives/lesions/sub-001/ses-01/anat/sub-001_ses-01_desc-lesion_dseg.nii.gz
      derivatives/brainmask/sub-001/ses-01/anat/sub-001_ses-01_desc-brain_mask.nii.gz
                               (whole heads only: the brain the scan shows, for extraction)

With ``whole_head`` the scans show skull, scalp, eyes and neck around the same brain
(``head``), on a field of view that covers the head; ``cohort.json`` then records
``"whole_head": true`` (a stripped cohort's files are unchanged).

Every scan is drawn from its own ``numpy.random.SeedSequence([seed, subject, session])``
(the subject's anatomy from ``[seed, subject]``), so the order in which workers finish
cannot change a byte.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from loes.data.synthetic import acquisition as acq_mod
from loes.data.synthetic.anatomy import Anatomy, anatomy_for
from loes.data.synthetic.disease import SessionState, draw_cohort_table, draw_tiny_table
from loes.data.synthetic.head import head_for, sample_whole_head
from loes.data.synthetic.layout import SUFFIXES, prepare_folder, scan_files, write_tables
from loes.data.synthetic.lesions import CONTRASTS, healthy_base, session_fields, subject_texture
from loes.errors import LoesError
from loes.io import atomic_path, write_json

__all__ = [
    "GENERATOR_VERSION",
    "generate_cohort",
    "make_tiny_cohort",
    "render_scan",
]

GENERATOR_VERSION = 3
"""Bumped whenever the same parameters would render different files; recorded in cohort.json.
3: a BIDS dataset (``ce-gadolinium`` post-contrast scans, scores in sessions.tsv, lesion
label maps under derivatives/)."""


def _sample(volume: np.ndarray, coords: np.ndarray, order: int = 1) -> np.ndarray:
    out_type = np.uint8 if volume.dtype == np.uint8 else np.float32
    return ndimage.map_coordinates(volume, coords, order=order, output=out_type, prefilter=False)


def _slice_mean(volume: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return volume
    a, b, c = volume.shape
    return volume.reshape(a, b, c // factor, factor).mean(axis=-1)


def _support_box(fields, coords: np.ndarray, factor: int, stride: int = 4) -> tuple | None:
    """Slices of the scan grid whose voxels map inside the fields' non-zero box."""
    support = fields.fill != 0
    if fields.lesion is not None:
        support |= fields.lesion > 0
    found = np.argwhere(support)
    if not len(found):
        return None
    lo = found.min(0)[:, None, None, None] - 1.0
    hi = found.max(0)[:, None, None, None] + 1.0
    nodes = (coords[:, ::stride, ::stride, ::stride] - 0.5) * 0.5
    inside = np.all((nodes >= lo) & (nodes <= hi), axis=0)
    if not inside.any():
        return None
    where = np.argwhere(inside)
    shape = coords.shape[1:]
    start = np.maximum(where.min(0) * stride - stride, 0)
    stop = np.minimum(where.max(0) * stride + stride + 1, shape)
    start[2] -= start[2] % factor  # whole thick slices
    stop[2] = min(shape[2], stop[2] + (-stop[2]) % factor)
    return tuple(slice(int(a), int(b)) for a, b in zip(start, stop, strict=True))


def render_scan(job: dict) -> dict:
    """Render and write one scan (image, lesion mask, brain mask of a whole head, sidecar
    last); returns its record."""
    out = Path(job["out_dir"])
    anat: Anatomy = anatomy_for(job["resolution"])
    contrast, seed = job["contrast"], job["seed"]
    subject_rng = np.random.default_rng(np.random.SeedSequence([seed, job["subject_index"]]))
    geometry = acq_mod.draw_subject_geometry(subject_rng)
    texture = subject_texture(anat, subject_rng)
    rng = np.random.default_rng(
        np.random.SeedSequence([seed, job["subject_index"], job["session_index"] + 1])
    )
    pose = acq_mod.session_pose(geometry, rng)
    whole_head = bool(job["whole_head"])
    acq = acq_mod.draw_acquisition(job["site"], pose, job["resolution"], rng, whole_head)
    grid_affine, shape, factor = acq_mod.native_grid(acq)
    coords, bias = acq_mod.sample_coordinates(
        anat, geometry, pose, grid_affine, shape, acq.bias_coefficients
    )

    state: SessionState = job["state"]
    levels = CONTRASTS[contrast]
    if whole_head:  # the head's field of view around the same brain; m: the brain mask
        image, weight = sample_whole_head(coords, anat, contrast, acq.gamma)
    else:
        image = _sample(healthy_base(contrast, acq.gamma, anat), coords)
    fields = session_fields(anat, state, levels, texture, bool(job["gd"]), acq.gamma)
    mask = np.zeros(acq.matrix, np.uint8)
    box = _support_box(fields, coords, factor) if fields.fill is not None else None
    if box is not None:
        # only scan voxels that can see the disease sample its fields; fine grids do so on
        # every second voxel (the fields are smooth at their grid) and upsample linearly
        step = 2 if 2 * max(acq.voxel_size[:2]) <= 1.35 * anat.field_mm else 1
        sub = coords[(slice(None), *box)]
        low = (sub[:, ::step, ::step, ::step] - 0.5) * 0.5  # template voxel -> field voxel
        shape = sub.shape[1:]
        del sub
        names = ["keep", "fill"] + (["lesion"] if fields.lesion is not None else [])
        keep = 1.0 - (fields.lesion if fields.lesion is not None else 0.0)
        keep = keep - (fields.atrophy if fields.atrophy is not None else 0.0)
        sources = {
            "keep": np.asarray(keep, np.float32),
            "fill": fields.fill,
            "lesion": fields.lesion,
        }
        sampled = np.stack([_sample(sources[n], low) for n in names])
        if step > 1:
            sampled = acq_mod.upsample(sampled, shape, step)
        image[box] = image[box] * sampled[0] + sampled[1]
        if fields.lesion is not None:
            label = _sample(fields.label, low, order=0)
            if step > 1:
                label = label.repeat(step, 0).repeat(step, 1).repeat(step, 2)
                label = label[: shape[0], : shape[1], : shape[2]]
            centre = slice(factor // 2, None, factor)
            native = (box[0], box[1], slice(box[2].start // factor, box[2].stop // factor))
            inside = _slice_mean(sampled[2], factor) >= 0.5
            mask[native] = np.where(inside, label[:, :, centre], 0)
        del low, sampled
    del coords
    masks = {"lesion_mask": mask}
    if whole_head:
        masks["brain_mask"] = (_slice_mean(weight, factor) >= 0.5).astype(np.uint8)
        del weight
    image = _slice_mean(image, factor)
    bias = _slice_mean(bias, factor)
    sigma = (acq.blur, acq.blur, acq.blur if factor == 1 else 0.0)
    image = ndimage.gaussian_filter(image, sigma, truncate=3.0)
    image *= bias * (acq.scale / levels.wm**acq.gamma)
    noise = acq.noise * acq.scale
    real = image + noise * rng.standard_normal(image.shape, dtype=np.float32)
    imag = noise * rng.standard_normal(image.shape, dtype=np.float32)
    image = np.sqrt(real * real + imag * imag)  # Rician magnitude
    image = np.clip(image, 0, 32000, out=image)
    data = np.rint(image).astype(np.int16)

    folder = out / job["image"]
    folder.parent.mkdir(parents=True, exist_ok=True)
    descrip = f"loes synth {job['subject']} {job['session']} seed {seed}"
    for key, array in (("image", data), *masks.items()):
        with atomic_path(out / job[key]) as tmp:
            tmp.write_bytes(acq_mod.nifti_bytes(array, acq.affine, descrip))
    present = sorted(int(v) for v in np.unique(mask) if v)
    acquisition = acq.sidecar()
    sidecar = {
        "MagneticFieldStrength": acquisition["field_strength"],  # the BIDS keys first
        **({"ContrastBolusIngredient": "GADOLINIUM"} if job["gd"] else {}),
        "Contrast": SUFFIXES[contrast],
        **acquisition,
        "gd": int(job["gd"]),
        "loes_score": job["loes_score"],
        "affected_sides": state.sides,
        "global_atrophy": state.global_atrophy,
        "lesion_labels": state.lesion_labels(),
        "lesion_labels_in_mask": present,
        "generator": f"loes.data.synthetic v{GENERATOR_VERSION}",
        **({"whole_head": True} if whole_head else {}),
    }
    write_json(out / job["sidecar"], sidecar)
    return sidecar


def _check_options(subjects: int, contrast: str, resolution: float, workers: int) -> str:
    if not isinstance(subjects, (int, np.integer)) or isinstance(subjects, bool) or subjects < 1:
        raise LoesError(
            f"subjects must be a positive whole number, got {subjects!r}; try --subjects 66."
        )
    key = str(contrast).lower()
    if key not in SUFFIXES:
        raise LoesError(f"unknown contrast {contrast!r}; choose one of {', '.join(SUFFIXES)}.")
    if not (0.25 <= float(resolution) <= 10.0):
        raise LoesError(f"resolution must be between 0.25 and 10 mm, got {resolution!r}.")
    if int(workers) < 1:
        raise LoesError(f"workers must be at least 1, got {workers!r}.")
    return key


def _jobs(
    out: Path,
    table: pd.DataFrame,
    seed: int,
    contrast: str,
    resolution: float,
    whole_head: bool = False,
) -> list[dict]:
    suffix = SUFFIXES[contrast]
    jobs = []
    for row in table.to_dict("records"):
        jobs.append(
            {
                "out_dir": str(out),
                "subject": row["subject"],
                "session": row["session"],
                "subject_index": int(row["subject"].split("-")[1]) - 1,
                "session_index": int(row["session"].split("-")[1]) - 1,
                "seed": int(seed),
                "contrast": contrast,
                "resolution": float(resolution),
                "site": row["site"],
                "gd": int(row["gd"]),
                "loes_score": float(row["loes_score"]),
                "state": row["_state"],
                "whole_head": bool(whole_head),
                **scan_files(row["subject"], row["session"], suffix, bool(row["gd"]), whole_head),
            }
        )
    return jobs


def _done(out: Path, job: dict) -> bool:
    keys = ("image", "lesion_mask", "sidecar") + (("brain_mask",) if job["whole_head"] else ())
    return all((out / job[k]).is_file() for k in keys)


def _run_jobs(jobs: list[dict], workers: int, progress: bool) -> None:
    from tqdm.auto import tqdm

    if not jobs:
        return
    bar = tqdm(total=len(jobs), desc="loes synth", unit="scan", disable=not progress)
    try:
        if workers == 1 or len(jobs) == 1:
            for job in jobs:
                render_scan(job)
                bar.update()
            return
        anat = anatomy_for(jobs[0]["resolution"])  # once in the parent; forked workers inherit
        if jobs[0]["whole_head"]:
            head_for(anat)
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [pool.submit(render_scan, job) for job in jobs]
            try:
                for future in as_completed(futures):
                    future.result()
                    bar.update()
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    finally:
        bar.close()


def _write_tables(out: Path, table: pd.DataFrame, jobs: list[dict], params: dict) -> Path:
    table = table.drop(columns=["_state"]).assign(
        image=[j["image"] for j in jobs], lesion_mask=[j["lesion_mask"] for j in jobs]
    )
    if params.get("whole_head"):
        table["brain_mask"] = [j["brain_mask"] for j in jobs]
    return write_tables(out, table, params)


def _parameters(
    kind: str,
    subjects: int,
    seed: int,
    contrast: str,
    resolution: float,
    whole_head: bool,
    **extra: int,
) -> dict:
    """What ``cohort.json`` records; a re-run must match it to resume. ``whole_head`` is
    recorded only when set, so that a stripped cohort's record stays as it was."""
    return {
        "generator": "loes.data.synthetic",
        "version": GENERATOR_VERSION,
        "kind": kind,
        "subjects": int(subjects),
        "seed": int(seed),
        "contrast": contrast,
        "resolution": float(resolution),
        **extra,
        **({"whole_head": True} if whole_head else {}),
    }


def _render_cohort(
    out_dir: str | os.PathLike,
    table: pd.DataFrame,
    params: dict,
    workers: int,
    progress: bool,
    preview: bool = True,
) -> Path:
    out = Path(out_dir)
    prepare_folder(out, params)
    jobs = _jobs(
        out,
        table,
        params["seed"],
        params["contrast"],
        params["resolution"],
        bool(params.get("whole_head")),
    )
    todo = [j for j in jobs if not _done(out, j)]
    _run_jobs(todo, workers, progress)
    manifest = _write_tables(out, table, jobs, params)
    if preview:
        from loes.data.synthetic.preview import write_preview

        frame = pd.read_csv(manifest)
        write_preview(out, frame, out / "preview.png", whole_head=bool(params.get("whole_head")))
    return manifest


def generate_cohort(
    out_dir: str | os.PathLike,
    subjects: int = 66,
    seed: int = 0,
    contrast: str = "t1w",
    resolution: float = 1.0,
    workers: int = 1,
    progress: bool = True,
    whole_head: bool = False,
) -> Path:
    """Write the synthetic ALD cohort to ``out_dir`` and return the path of ``manifest.csv``.

    With the defaults: 66 subjects, 253 T1w sessions at about 1 mm, statistics of the
    reference cohort. Re-running with the same parameters resumes; other parameters raise
    :class:`~loes.errors.LoesError`. ``whole_head`` adds skull, scalp, eyes, neck and a noisy
    background around the brain (:mod:`loes.data.synthetic.head`) and writes each scan's
    brain mask (manifest column ``brain_mask``); about 3.5x slower.

    Examples::

        >>> manifest = generate_cohort("data/synth", workers=2)  # doctest: +SKIP
        >>> pd.read_csv(manifest)["loes_score"].median()  # doctest: +SKIP
        3.0
    """
    key = _check_options(subjects, contrast, resolution, workers)
    params = _parameters("cohort", subjects, seed, key, resolution, bool(whole_head))
    table = draw_cohort_table(int(subjects), int(seed))
    return _render_cohort(out_dir, table, params, int(workers), progress)


def make_tiny_cohort(
    out_dir: str | os.PathLike,
    subjects: int = 6,
    seed: int = 0,
    contrast: str = "t1w",
    resolution: float = 4.0,
    sessions: int = 3,
    workers: int = 1,
    progress: bool = False,
    preview: bool = False,
    whole_head: bool = False,
) -> Path:
    """A few subjects at low resolution (4 mm) for tests: same layout, real affines.

    Subjects have 2-3 sessions, scores spread over 0..20 (the first subject stays at 0),
    orientations vary. Returns the manifest path.

    Examples::

        >>> manifest = make_tiny_cohort(tmp_path)  # doctest: +SKIP
    """
    key = _check_options(subjects, contrast, resolution, workers)
    if sessions < 1:
        raise LoesError(f"sessions must be at least 1, got {sessions!r}.")
    params = _parameters(
        "tiny", subjects, seed, key, resolution, bool(whole_head), sessions=int(sessions)
    )
    table = draw_tiny_table(int(subjects), int(seed), int(sessions))
    return _render_cohort(out_dir, table, params, int(workers), progress, preview)
