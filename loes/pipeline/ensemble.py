"""Use what was trained: every finished fold model of a run as one ensemble that scores new
scans, with left-right flip test-time augmentation, a conformal prediction interval, the
threshold call and flags for scans unlike the training scans.

Each scan is read and preprocessed once (a MONAI ``DataLoader`` over the run's own
preprocessing, from the saved model description), then every member predicts it and its mirror
image through :func:`loes.pipeline.inference.predict`, the loop the run itself tested with. The
ensemble's prediction is the mean of its members (nnU-Net's fold ensemble, Isensee et al. 2021,
Nature Methods), each member the mean of the scan and its left-right mirror (the Loes total is
symmetric); the interval is :class:`~loes.pipeline.conformal.ConformalCalibration` on the
run's out-of-fold residuals.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from monai.data import DataLoader
from monai.utils import convert_to_tensor
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from loes.data.loes_items import MAX_LOES_SCORE
from loes.data.readers import read_table
from loes.data.scan_sources import read_scans
from loes.data.validation import check_image
from loes.errors import LoesError
from loes.io import write_json
from loes.models import LoesModel
from loes.pipeline.conformal import ConformalCalibration
from loes.pipeline.device import configure_cpu, memory_format, resolve_device
from loes.pipeline.inference import left_right_axis, load_fold_model, make_loader, predict
from loes.pipeline.messages import note
from loes.pipeline.metrics import NETWORK, TRANSPLANT_THRESHOLD
from loes.pipeline.run_folder import CONFIG_FILE, is_finished, load_run_config
from loes.pipeline.scan_profile import TrainingProfile, scan_features

__all__ = [
    "ENSEMBLE_FILE",
    "PROFILE_FILE",
    "TTA_MODES",
    "FoldEnsemble",
    "Member",
    "blank_input",
    "load_ensemble",
    "run_table",
    "warn_if_partial",
]

#: the description of a saved ensemble (a bundle's ``models/``)
ENSEMBLE_FILE = "ensemble.json"
#: the training scans' profile, computed once and kept in the run folder
PROFILE_FILE = "training_profile.json"
TTA_MODES = ("flip", "none")
#: training scans whose profile is computed (evenly spaced through the run's table)
_PROFILE_SCANS = 32
_FOLD = re.compile(r"^(?:repeat_(\d+)/)?fold_(\d+)$")


@dataclass
class Member:
    """One fold model: ``name`` (``fold_2``, or ``repeat_1_fold_2``), its repeat and fold."""

    name: str
    model: LoesModel
    repeat: int
    fold: int


#: a BIDS ``ce-`` (contrast enhancement) entity in a file name: a post-contrast scan
_POST_CONTRAST = re.compile(r"(?:^|_)ce-[A-Za-z0-9]+")


class _Preprocessed(Dataset):
    """Each scan checked (header checks of ``loes validate``) and preprocessed, or the reason it
    could not be: a bad scan becomes an item with ``error``, never an exception."""

    def __init__(self, items: list[dict], transform, pixdim) -> None:
        self.items, self.transform, self.pixdim = items, transform, pixdim

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        start = time.perf_counter()
        item = dict(self.items[index])
        problems = check_image(item["image"], pixdim=self.pixdim)
        item["warnings"] = [m for severity, m in problems if severity == "warning"]
        errors = [m for severity, m in problems if severity == "error"]
        if errors:
            return {**item, "error": " ".join(errors)}
        try:
            image = self.transform({"image": item["image"]})["image"]
            item["features"] = scan_features(item["image"], image)
        except Exception as error:  # any failure of a user's scan is that scan's row
            return {**item, "error": f"cannot be preprocessed ({type(error).__name__}: {error})"}
        item["input"] = convert_to_tensor(image, track_meta=False)
        blank = blank_input(item["input"])
        if blank:
            return {**item, "error": blank}
        item["thumbnail"] = item["input"][0, :, :, item["input"].shape[-1] // 2].half().numpy()
        item["seconds"] = time.perf_counter() - start
        return item


def blank_input(image: torch.Tensor) -> str | None:
    """Why a preprocessed model input holds no image (NaN voxels, or one value everywhere), or
    None when it does."""
    if not torch.isfinite(image).all() or image.amin() == image.amax():
        return (
            "holds no image after preprocessing (every voxel the same value): the file has NaN "
            "voxels or no signal; `loes validate --deep` names the cause"
        )
    return None


def warn_if_partial(run_dir: str | os.PathLike, ensemble: FoldEnsemble, doing: str) -> None:
    """Warn when a run folder has fewer finished fold models than its ``splits.json`` plans
    (``doing``: ``"predicting"``, ``"explaining"``)."""
    splits = Path(run_dir) / "splits.json"
    if not splits.is_file():  # a bundle holds its finished folds only
        return
    planned = len(json.loads(splits.read_text())["folds"])
    if len(ensemble.members) < planned:
        note(
            f"warning: {run_dir} is a partial run: {doing} with {len(ensemble.members)} of its "
            f"{planned} fold models (`loes cv` with the run's settings finishes it)"
        )


def _single(batch: list[dict]) -> dict:
    """The collate function of a one-item loader: the item itself."""
    return batch[0]


@dataclass
class FoldEnsemble:
    """The fold models of a run and what a prediction needs beside them.

    Attributes:
        members: the fold models; all share one preprocessing and input size.
        calibration: the conformal calibration on the run's out-of-fold predictions.
        threshold: the transplant threshold, Loes points (the run's ``report.threshold``).
        score_range: the lowest and highest score the run trained on, Loes points.
        profile: the training scans' profile, or None when their images were not readable.
        batch_size: scans per forward pass by default (the run's ``training.batch_size``).
        amp: mixed precision on CUDA (the run's ``training.amp``).
        layout: the memory layout of model and batches (the run's ``training.memory_format``:
            ``"auto"``, ``"channels_last"``, ``"contiguous"``; see
            :func:`loes.pipeline.device.memory_format`).
        source: where the ensemble was loaded from, for messages.
        include_gd: the run trained on post-contrast scans too (the run's ``data.include_gd``);
            when not, a scan whose file name has a BIDS ``ce-`` entity is flagged.

    Raises:
        LoesError: when there is no member, or members differ in preprocessing or input size.
    """

    members: list[Member]
    calibration: ConformalCalibration
    threshold: float = TRANSPLANT_THRESHOLD
    score_range: tuple[float, float] = (0.0, MAX_LOES_SCORE)
    profile: TrainingProfile | None = None
    batch_size: int = 8
    amp: bool = True
    layout: str = "auto"
    include_gd: bool = False
    source: str = ""
    _transform: object = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.members:
            raise LoesError(f"{self.source}: no finished fold model to predict with.")
        first = self.members[0].model.spec
        for member in self.members[1:]:
            spec = member.model.spec
            if (spec["preprocessing"], spec["spatial_size"]) != (
                first["preprocessing"],
                first["spatial_size"],
            ):
                raise LoesError(
                    f"{self.source}: {member.name} was trained with other preprocessing or input "
                    f"size than {self.members[0].name}; an ensemble needs one."
                )
        self._transform = self.members[0].model.preprocessing()

    @property
    def spec(self) -> dict:
        """The first member's model description (network, input size, preprocessing)."""
        return self.members[0].model.spec

    @property
    def lr_axis(self) -> int:
        """The spatial axis of the model input that runs left-right (0 in RAS)."""
        return left_right_axis(self.spec["preprocessing"])

    def _chosen(self, members: Sequence[str] | None) -> list[Member]:
        if members is None:
            return self.members
        names = [m.name for m in self.members]
        unknown = [m for m in members if m not in names]
        if unknown:
            raise LoesError(f"unknown member(s) {', '.join(unknown)}; the ensemble has {names}.")
        return [m for m in self.members if m.name in members]

    def predict(
        self,
        scans: pd.DataFrame | str | os.PathLike | Sequence[str | os.PathLike],
        *,
        tta: str = "flip",
        coverage: float = 0.9,
        device: str | torch.device = "auto",
        batch_size: int | None = None,
        workers: int = 0,
        members: Sequence[str] | None = None,
        progress: bool = False,
    ) -> pd.DataFrame:
        """Score every scan; one row per scan, in input order.

        Args:
            scans: a table with ``subject, session, image, loes_score`` (see
                :func:`loes.data.read_scans`), or sources it reads (NIfTI files, folders,
                tables).
            tta: ``"flip"`` (each member also predicts the left-right mirror image; the two are
                averaged) or ``"none"``.
            coverage: the share of true scores the interval should hold, in (0, 1).
            device: ``"auto"``, ``"cpu"``, ``"cuda"`` or a ``torch.device``.
            batch_size: scans per forward pass (default: the run's).
            workers: preprocessing worker processes (0: in this process); resampling there
                can differ from the in-process one by about 1e-6 Loes points.
            members: names of the members to use (default: all).

        Returns:
            A DataFrame: ``subject, session, image, loes_score`` (given score or NaN),
            ``predicted`` (mean of the members, Loes points, 0-34), ``lower, upper`` (the
            interval), ``spread`` (SD of the members' predictions, NaN with one member),
            ``call`` (``">= 9"`` or ``"< 9"``), ``call_sure`` (the interval lies on one side of
            the threshold), ``flags`` (reasons to distrust the row, ``"; "``-separated),
            ``error`` (why a scan could not be scored; its numbers are NaN), then one
            ``member_<name>`` column per member. ``attrs["seconds"]`` holds the seconds spent
            loading and preprocessing and in the network, ``attrs["thumbnails"]`` a mid-axial
            slice (H, W) of each scored scan's input by row position.

        Raises:
            LoesError: for a bad argument or an unreadable source (a bad scan is its row).
        """
        if tta not in TTA_MODES:
            raise LoesError(f"tta must be one of {', '.join(TTA_MODES)}, got {tta!r}.")
        if not 0 < coverage < 1:
            raise LoesError(f"coverage must be between 0 and 1 (0.9 for 90%), got {coverage}.")
        batch_size = batch_size or self.batch_size
        if batch_size < 1 or workers < 0:
            raise LoesError("batch size must be at least 1 and workers at least 0.")
        if not isinstance(scans, pd.DataFrame):
            scans = read_scans([scans] if isinstance(scans, (str, os.PathLike)) else scans)
        if "image" not in scans:
            raise LoesError("the scans table needs an image column (paths of NIfTI files).")
        defaults = {"subject": "", "session": "", "loes_score": np.nan}
        scans = scans.assign(**{k: v for k, v in defaults.items() if k not in scans})
        device = resolve_device(device) if isinstance(device, str) else device
        configure_cpu()  # the threads and allocator of the run's training
        chosen = self._chosen(members)
        for member in chosen:
            member.model.to(device)
        items = [
            {
                "image": str(row.image),
                "subject": str(row.subject),
                "session": str(row.session),
                "loes_score": float(row.loes_score),
            }
            for row in scans.itertuples()
        ]
        dataset = _Preprocessed(items, self._transform, self.spec["preprocessing"].get("pixdim"))
        loader = DataLoader(dataset, batch_size=1, collate_fn=_single, num_workers=workers)
        done: list[dict] = []
        outputs: dict[int, np.ndarray] = {}
        layout = memory_format(device, self.layout)
        pending: list[tuple[int, dict]] = []
        seconds = {"preprocessing": 0.0, "network": 0.0}
        iterator = iter(loader)
        bar = tqdm(total=len(items), desc="scans", unit="scan", disable=None if progress else True)
        for index in range(len(items)):
            start = time.perf_counter()
            item = next(iterator)
            seconds["preprocessing"] += time.perf_counter() - start
            done.append(item)
            if "error" not in item:
                pending.append((index, item))
            if len(pending) == batch_size or (index == len(items) - 1 and pending):
                start = time.perf_counter()
                outputs |= self._network(pending, chosen, tta, batch_size, device, layout)
                seconds["network"] += time.perf_counter() - start
                pending = []
            bar.update()
        bar.close()
        table = self._table(done, outputs, chosen, coverage)
        table.attrs["seconds"] = {**seconds, "scans": len(outputs)}
        table.attrs["thumbnails"] = {i: done[i]["thumbnail"] for i in outputs}
        return table

    def _network(
        self,
        pending: list[tuple[int, dict]],
        members: list[Member],
        tta: str,
        batch_size: int,
        device: torch.device,
        layout: torch.memory_format,
    ) -> dict[int, np.ndarray]:
        """Each pending scan's prediction by each member (flip-averaged), (n_members,)."""
        batch = [
            {
                "image": item["input"],
                "loes_score": item["loes_score"],
                "subject": item["subject"],
                "session": item["session"],
            }
            for _, item in pending
        ]
        flip_axis = self.lr_axis if tta == "flip" else None
        by_member = []
        for member in members:
            loader = make_loader(batch, batch_size, False, device)
            predicted = predict(member.model, loader, device, self.amp, layout, flip_axis)
            by_member.append(predicted["predicted"].to_numpy())
        values = np.stack(by_member, axis=1)  # (scans, members)
        return {index: values[i] for i, (index, _) in enumerate(pending)}

    def _table(
        self, done: list[dict], outputs: dict[int, np.ndarray], members: list[Member], coverage
    ) -> pd.DataFrame:
        scored = sorted(outputs)
        means = np.array([outputs[i].mean() for i in scored])
        lower, upper = self.calibration.interval(means, coverage)
        bounds = {i: (lo, hi) for i, lo, hi in zip(scored, lower, upper, strict=True)}
        too_small = self.calibration.too_small(coverage)
        low, high = self.score_range
        rows = []
        for index, item in enumerate(done):
            row = {key: item[key] for key in ("subject", "session", "image", "loes_score")}
            flags = [f"image: {w}" for w in item.get("warnings", [])]
            if index not in outputs:
                rows.append({**row, "flags": "; ".join(flags), "error": item["error"]})
                continue
            values = outputs[index]
            predicted = float(values.mean())
            lo, hi = bounds[index]
            if too_small:
                flags.append(
                    f"the run has {self.calibration.n} out-of-fold predictions, too few for a "
                    f"{coverage:.0%} interval: it spans the whole scale"
                )
            if predicted > high + 0.5:
                flags.append(
                    f"predicted {predicted:.1f}, above the highest score trained on ({high:g})"
                )
            if not self.include_gd and _POST_CONTRAST.search(Path(item["image"]).name):
                flags.append(
                    "post-contrast (ce- in the file name); the run trained on pre-contrast "
                    "scans only"
                )
            score = item["loes_score"]
            if np.isfinite(score) and not low <= score <= high:
                flags.append(
                    f"given score {score:g} is outside the scores trained on ({low:g}-{high:g})"
                )
            if self.profile is not None and "features" in item:
                flags += self.profile.flags(item["features"])
            rows.append(
                {
                    **row,
                    "predicted": predicted,
                    "lower": float(lo),
                    "upper": float(hi),
                    "spread": float(values.std(ddof=1)) if len(values) > 1 else np.nan,
                    "call": f"{'>=' if predicted >= self.threshold else '<'} {self.threshold:g}",
                    "call_sure": bool(lo >= self.threshold or hi < self.threshold),
                    "flags": "; ".join(flags),
                    "error": "",
                    **{f"member_{m.name}": float(v) for m, v in zip(members, values, strict=True)},
                }
            )
        columns = ["subject", "session", "image", "loes_score", "predicted", "lower", "upper"]
        columns += ["spread", "call", "call_sure", "flags", "error"]
        columns += [f"member_{m.name}" for m in members]
        return pd.DataFrame(rows, columns=columns)

    def save(self, folder: str | os.PathLike) -> Path:
        """Write every member (``<name>.pt``, :meth:`LoesModel.save`) and ``ensemble.json``
        (members, calibration, threshold, score range, profile) into ``folder``; returns the
        description's path. :func:`load_ensemble` reads it back."""
        folder = Path(folder)
        for member in self.members:
            member.model.save(folder / f"{member.name}.pt")
        description = {
            "members": [
                {"name": m.name, "file": f"{m.name}.pt", "repeat": m.repeat, "fold": m.fold}
                for m in self.members
            ],
            "calibration": {"y_true": self.calibration.y_true, "y_pred": self.calibration.y_pred},
            "threshold": self.threshold,
            "score_range": list(self.score_range),
            "profile": None if self.profile is None else self.profile.to_dict(),
            "batch_size": self.batch_size,
            "amp": self.amp,
            "layout": self.layout,
            "include_gd": self.include_gd,
        }
        write_json(folder / ENSEMBLE_FILE, description)
        return folder / ENSEMBLE_FILE


def _fold_members(run_dir: Path) -> list[Member]:
    members = []
    for folder in [*run_dir.glob("fold_*"), *run_dir.glob("repeat_*/fold_*")]:
        match = _FOLD.match(folder.relative_to(run_dir).as_posix())
        if match and folder.is_dir() and is_finished(folder):
            repeat, fold = int(match[1] or 0), int(match[2])
            model, _ = load_fold_model(folder)
            name = folder.relative_to(run_dir).as_posix().replace("/", "_")
            members.append(Member(name, model.eval(), repeat, fold))
    return sorted(members, key=lambda m: (m.repeat, m.fold))


def run_table(run_dir: str | os.PathLike) -> pd.DataFrame | None:
    """The table of the scans a run was made with (its ``data`` settings read again), or None
    when its source cannot be read here."""
    from loes.pipeline.cohort import synthetic_cohort_dir

    config = load_run_config(run_dir)
    d = config.data
    source = d.source if d.source is not None else synthetic_cohort_dir(config) / "manifest.csv"
    return read_table(source, d.format, d.images_dir, d.include_gd, d.suffix).table


def _run_scan_images(run_dir: Path) -> list[str]:
    """The image paths of a run's scans, when its source can still be read here."""
    table = run_table(run_dir)
    if table is None:
        return []
    return [p for p in table["image"] if p and Path(p).is_file()]


def _run_profile(run_dir: Path, ensemble: FoldEnsemble) -> TrainingProfile | None:
    """The run's training profile: from ``PROFILE_FILE`` when there, else computed on up to 32
    of its scans and kept there (when the folder is writable)."""
    path = run_dir / PROFILE_FILE
    if path.is_file():
        return TrainingProfile.from_dict(json.loads(path.read_text()))
    images = _run_scan_images(run_dir)
    if not images:
        note(
            f"warning: the scans of {run_dir} are not readable here; scans far from them in field "
            "of view or intensity cannot be flagged."
        )
        return None
    chosen = [images[int(i)] for i in np.linspace(0, len(images) - 1, min(len(images), 32))]
    chosen = list(dict.fromkeys(chosen))
    items = [{"image": p, "subject": "", "session": "", "loes_score": np.nan} for p in chosen]
    dataset = _Preprocessed(
        items, ensemble._transform, ensemble.spec["preprocessing"].get("pixdim")
    )
    features = [
        item["features"]
        for item in map(dataset.__getitem__, range(len(items)))
        if "features" in item
    ]
    if not features:
        return None
    profile = TrainingProfile.from_features(features)
    with contextlib.suppress(OSError):  # a read-only run folder: computed again next time
        write_json(path, profile.to_dict())
    return profile


def _from_run(run_dir: Path) -> FoldEnsemble:
    from loes.pipeline.report.collect import collect_predictions

    config = load_run_config(run_dir)
    members = _fold_members(run_dir)
    if not members:
        raise LoesError(
            f"{run_dir} holds no finished fold model (fold_K/ with best.pt and metrics.json); "
            "wait for `loes cv` to finish a fold."
        )
    oof = collect_predictions(run_dir)
    oof = oof[oof["model"] == NETWORK]
    ensemble = FoldEnsemble(
        members=members,
        calibration=ConformalCalibration(oof["loes_score"], oof["predicted"]),
        threshold=float(config.report.threshold),
        score_range=(float(oof["loes_score"].min()), float(oof["loes_score"].max())),
        batch_size=int(config.training.batch_size),
        amp=bool(config.training.amp),
        layout=config.training.memory_format,
        include_gd=bool(config.data.include_gd),
        source=str(run_dir),
    )
    ensemble.profile = _run_profile(run_dir, ensemble)
    return ensemble


def _from_description(path: Path) -> FoldEnsemble:
    try:
        data = json.loads(path.read_text())
        members = [
            Member(
                m["name"], LoesModel.load(path.parent / m["file"])[0].eval(), m["repeat"], m["fold"]
            )
            for m in data["members"]
        ]
        calibration = ConformalCalibration(**data["calibration"])
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
        raise LoesError(f"cannot load the ensemble {path}: {error}") from None
    return FoldEnsemble(
        members=members,
        calibration=calibration,
        threshold=float(data["threshold"]),
        score_range=tuple(data["score_range"]),
        profile=None if data.get("profile") is None else TrainingProfile.from_dict(data["profile"]),
        batch_size=int(data.get("batch_size", 8)),
        amp=bool(data.get("amp", True)),
        layout=str(data.get("layout", "auto")),
        include_gd=bool(data.get("include_gd", False)),
        source=str(path.parent),
    )


def load_ensemble(path: str | os.PathLike) -> FoldEnsemble:
    """The fold ensemble of a ``loes cv`` run folder, or of a folder :meth:`FoldEnsemble.save`
    wrote (a bundle's ``models/``, or the bundle itself).

    From a run folder: every finished fold (``fold_K/`` or ``repeat_R/fold_K/`` with
    ``metrics.json``), its ``best.pt`` loaded with ``torch.load(weights_only=True)``; the
    calibration from the folds' out-of-fold ``predictions.csv``; threshold, batch size and mixed
    precision from ``config.yaml``; the training profile from ``training_profile.json``, else
    computed on up to 32 of the run's scans when they are readable here, and saved there.

    Raises:
        LoesError: when ``path`` is neither, or holds no finished fold.

    Examples::

        >>> from loes.pipeline import load_ensemble
        >>> table = load_ensemble("runs/synthetic-cpu").predict(["scan.nii.gz"])  # doctest: +SKIP
    """
    path = Path(path)
    for candidate in (path / ENSEMBLE_FILE, path / "models" / ENSEMBLE_FILE):
        if candidate.is_file():
            return _from_description(candidate)
    if (path / CONFIG_FILE).is_file():
        return _from_run(path)
    if not path.is_dir():
        raise LoesError(f"{path} is not a folder; pass the --out folder of `loes cv`.")
    raise LoesError(
        f"{path} is neither a run folder ({CONFIG_FILE}) nor an exported ensemble "
        f"({ENSEMBLE_FILE}); pass the --out folder of `loes cv` or a `loes export` bundle."
    )
