"""Use what was trained: every finished fold model of a run as one ensemble that scores new
scans, with left-right flip test-time augmentation, a conformal prediction interval, the
threshold call and flags for scans unlike the training scans.

Each scan is read and preprocessed once (a MONAI ``DataLoader`` over the run's own
preprocessing, from the saved model description), then every member predicts it and its mirror
image through :func:`loes.pipeline.run.inference.predict`, the loop the run itself tested with. The
ensemble's prediction is the mean of its members (nnU-Net's fold ensemble, Isensee et al. 2021,
Nature Methods), each member the mean of the scan and its left-right mirror (the Loes total is
symmetric); the interval is :class:`~loes.pipeline.predict.conformal.ConformalCalibration` on the
run's out-of-fold residuals.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from monai.data import DataLoader
from monai.transforms import Compose
from tqdm.auto import tqdm

from loes import __version__
from loes.data.follow_up import PROGRESSION
from loes.data.loes_items import MAX_LOES_SCORE
from loes.data.scan_sources import read_scans
from loes.errors import LoesError
from loes.io import write_json
from loes.models import LoesModel
from loes.pipeline.predict.changes import change_column_definitions, change_table, half_width
from loes.pipeline.predict.conformal import ConformalCalibration
from loes.pipeline.predict.paired import PairedChange
from loes.pipeline.predict.preprocessed import PreprocessedScans, single_item
from loes.pipeline.predict.provenance import RunCard
from loes.pipeline.predict.scan_profile import TrainingProfile
from loes.pipeline.predict.table import column_definitions, prediction_table
from loes.pipeline.run.device import (
    configure_backends,
    configure_cpu,
    memory_format,
    resolve_device,
    restore_backend_flags,
)
from loes.pipeline.run.inference import anatomical_axis, make_loader, predict
from loes.pipeline.run.metrics import TRANSPLANT_THRESHOLD

__all__ = ["ENSEMBLE_FILE", "TTA_MODES", "FoldEnsemble", "Member"]

#: the description of a saved ensemble (a bundle's ``models/``)
ENSEMBLE_FILE = "ensemble.json"
#: test-time augmentation: the scan and its left-right mirror, or the scan alone
TTA_MODES = ("flip", "none")


@dataclass
class Member:
    """One fold model: ``name`` (``fold_2``, or ``repeat_1_fold_2``), its repeat and fold, and
    the fold's paired change model when the run trained one (``change.model: paired``)."""

    name: str
    model: LoesModel
    repeat: int
    fold: int
    change_model: LoesModel | None = None


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
        deterministic: predict with the run's deterministic settings
            (``training.deterministic``: no TF32, no cuDNN autotuning; see
            :func:`loes.pipeline.run.device.configure_backends`), so that predictions on CUDA
            repeat the run's own.
        layout: the memory layout of model and batches (the run's ``training.memory_format``:
            ``"auto"``, ``"channels_last"``, ``"contiguous"``; see
            :func:`loes.pipeline.run.device.memory_format`).
        source: where the ensemble was loaded from, for messages.
        include_gd: the run trained on post-contrast scans too (the run's ``data.include_gd``);
            when not, a scan whose file name has a BIDS ``ce-`` entity is flagged.
        card: the run's provenance and quality (its data, accuracy and warnings), or None when
            the run has no report: every prediction then says its accuracy is unknown.
        change_calibration: the calibration of change intervals on the run's out-of-fold
            consecutive pairs (:func:`~loes.pipeline.predict.changes.change_calibration`), or
            None: :meth:`changes` then gives -34 to 34, flagged.
        preprocessing: the members' MONAI ``Compose`` from ``{"image": path}`` to the model
            input (not an argument: the first member's, which every member shares).

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
    deterministic: bool = False
    layout: str = "auto"
    include_gd: bool = False
    source: str = ""
    card: RunCard | None = None
    change_calibration: ConformalCalibration | None = None
    preprocessing: Compose = field(init=False, repr=False)

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
        self.preprocessing = self.members[0].model.preprocessing()

    @property
    def spec(self) -> dict:
        """The first member's model description (network, input size, preprocessing)."""
        return self.members[0].model.spec

    @property
    def lr_axis(self) -> int:
        """The spatial axis of the model input that runs left-right (0 in RAS)."""
        return self.axis("LR")

    @property
    def trained(self) -> str:
        """What the models were trained on, how well and when, in one sentence
        (:meth:`RunCard.describe`)."""
        return self.card.describe() if self.card else "trained by a run with no report"

    def axis(self, direction: str) -> int:
        """The spatial axis of the model input that runs ``"LR"``, ``"AP"`` or ``"SI"``."""
        return anatomical_axis(self.spec["preprocessing"], direction)

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
            A DataFrame, one row per scan (columns and their meaning:
            :data:`loes.pipeline.predict.table.COLUMNS`): ``subject, session, age`` (years, NaN
            when not given), ``site`` (``""`` when not given), ``image, loes_score`` (given
            score or NaN), ``predicted`` (mean of the members, Loes points,
            0-34, to 0.1), ``lower, upper`` (the interval), ``coverage``, ``spread`` (SD of the
            members' predictions, NaN with one member), ``call`` (``">= 9"`` or ``"< 9"``),
            ``call_sure`` (the interval lies on one side of the threshold and no flag is
            raised), ``flags`` (reasons to distrust the row, ``"; "``-separated), ``error``
            (why a scan could not be scored; its numbers are NaN), then one ``member_<name>``
            column per member. ``attrs["seconds"]`` holds the seconds spent loading and
            preprocessing and in the network, ``attrs["thumbnails"]`` a mid-axial slice (H, W)
            of each scored scan's input by row position, ``attrs["provenance"]``
            :meth:`provenance`.

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
        items = _items(scans)
        device = resolve_device(device) if isinstance(device, str) else device
        configure_cpu()  # the threads and allocator of the run's training
        chosen = self._chosen(members)
        for member in chosen:
            member.model.to(device)
        before = configure_backends(device, self.deterministic)
        try:
            done, outputs, seconds = self._score(
                items, chosen, tta, batch_size, device, workers, progress
            )
        finally:
            restore_backend_flags(before)
        table = prediction_table(self, done, outputs, chosen, coverage)
        table.attrs["seconds"] = {**seconds, "scans": len(outputs)}
        table.attrs["thumbnails"] = {i: done[i]["thumbnail"] for i in outputs}
        table.attrs["provenance"] = self.provenance(tta, coverage)
        return table

    def changes(self, predictions: pd.DataFrame, coverage: float | None = None) -> pd.DataFrame:
        """The change between consecutive sessions of each subject in a table of this
        ensemble's predictions (:meth:`predict`'s, or its CSV read back), with a conformal
        interval calibrated on the run's out-of-fold consecutive pairs and the progression call
        (:func:`~loes.pipeline.predict.changes.change_table`; a subject with one session gives
        no row).

        Args:
            predictions: the table of :meth:`predict`.
            coverage: the share of true changes the interval should hold, in (0, 1); default:
                the table's ``coverage`` (else 0.9).

        Returns:
            One row per consecutive pair (columns:
            :data:`~loes.pipeline.predict.changes.CHANGE_COLUMNS`; Loes points), with
            ``attrs["provenance"]``: the table's, the order of the sessions and the
            calibration, with the meaning of every column.

        Raises:
            LoesError: when the table lacks a column or ``coverage`` is not in (0, 1).

        Examples::

            >>> ensemble = load_ensemble("runs/synthetic-cpu")  # doctest: +SKIP
            >>> changes = ensemble.changes(ensemble.predict("follow_ups/"))  # doctest: +SKIP
        """
        if coverage is None:
            given = pd.to_numeric(predictions.get("coverage", pd.Series()), errors="coerce")
            coverage = float(given.dropna().iloc[0]) if given.notna().any() else 0.9
        paired = any(m.change_model is not None for m in self.members)
        method = "paired" if paired else "subtraction"
        tta = (predictions.attrs.get("provenance") or {}).get("tta", "flip")
        pairs = PairedChange(self, tta) if paired else None  # None: the scores' difference
        changes = change_table(predictions, self.change_calibration, coverage, pairs)
        calibration = self.change_calibration
        n = 0 if calibration is None else calibration.n
        provenance = predictions.attrs.get("provenance") or self.provenance("unknown", coverage)
        changes.attrs["provenance"] = {  # the table's, less its columns, and the change's
            **{k: v for k, v in provenance.items() if k != "columns"},
            "coverage": coverage,
            "order": changes.attrs["order"],
            "method": method,
            "progression": PROGRESSION,
            "calibration_pairs": n,
            "half_width": half_width(calibration, coverage),
            "left_out": changes.attrs["left_out"],
            "columns": change_column_definitions(coverage, n, method),
        }
        return changes

    def predict_changes(
        self,
        scans: pd.DataFrame | str | os.PathLike | Sequence[str | os.PathLike],
        **options,
    ) -> pd.DataFrame:
        """Score the scans (:meth:`predict`, with its ``options``) and return the change between
        consecutive sessions of each subject (:meth:`changes`); call the two to keep the scores.

        Raises:
            LoesError: as :meth:`predict` and :meth:`changes`.
        """
        predictions = self.predict(scans, **options)
        return self.changes(predictions, options.get("coverage", 0.9))

    def provenance(self, tta: str, coverage: float) -> dict:
        """What a table of this ensemble's predictions must carry (its sidecar JSON, its page):
        when and with which loes it was made, the models (``source``, the run card), the
        settings, and the meaning of every column."""
        return {
            "predicted_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "loes_version": __version__,
            "models": self.source,
            "n_models": len(self.members),
            "run": None if self.card is None else self.card.to_dict(),
            "trained": self.trained,
            "coverage": coverage,
            "calibration_scans": self.calibration.n,
            "tta": tta,
            "threshold": self.threshold,
            "columns": column_definitions(self, coverage),
        }

    def _score(
        self,
        items: list[dict],
        members: list[Member],
        tta: str,
        batch_size: int,
        device: torch.device,
        workers: int,
        progress: bool,
    ) -> tuple[list[dict], dict[int, np.ndarray], dict[str, float]]:
        """Preprocess each item (a bad scan keeps its ``error``) and score the good ones in
        batches: ``(items as preprocessed, {index: (n_members,) predictions}, seconds)``."""
        dataset = PreprocessedScans(
            items, self.preprocessing, self.spec["preprocessing"].get("pixdim")
        )
        loader = DataLoader(dataset, batch_size=1, collate_fn=single_item, num_workers=workers)
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
                outputs |= self.member_predictions(
                    pending, members, tta, batch_size, device, layout
                )
                seconds["network"] += time.perf_counter() - start
                pending = []
            bar.update()
        bar.close()
        return done, outputs, seconds

    def member_predictions(
        self,
        pending: list[tuple[int, dict]],
        members: list[Member],
        tta: str,
        batch_size: int,
        device: torch.device,
        layout: torch.memory_format,
    ) -> dict[int, np.ndarray]:
        """``{index: (n_members,) predictions in Loes points}`` of each pending ``(index, item)``
        (items as :class:`PreprocessedScans` gives them; ``tta="flip"`` averages the mirror)."""
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

    def save(self, folder: str | os.PathLike) -> Path:
        """Write every member (``<name>.pt``, :meth:`LoesModel.save`; its paired change model as
        ``<name>_change.pt``) and ``ensemble.json``
        (members, calibration, threshold, score range, profile, run card, and the true and
        predicted changes of the run's out-of-fold consecutive pairs that calibrate change
        intervals) into ``folder``;
        returns the description's path. :func:`load_ensemble` reads it back."""
        folder = Path(folder)
        for member in self.members:
            member.model.save(folder / f"{member.name}.pt")
            if member.change_model is not None:
                member.change_model.save(folder / f"{member.name}_change.pt")
        description = {
            "members": [
                {"name": m.name, "file": f"{m.name}.pt", "repeat": m.repeat, "fold": m.fold}
                | ({} if m.change_model is None else {"change_file": f"{m.name}_change.pt"})
                for m in self.members
            ],
            "calibration": self.calibration.to_dict(),
            "threshold": self.threshold,
            "score_range": list(self.score_range),
            "profile": None if self.profile is None else self.profile.to_dict(),
            "batch_size": self.batch_size,
            "amp": self.amp,
            "deterministic": self.deterministic,
            "layout": self.layout,
            "include_gd": self.include_gd,
            "card": None if self.card is None else self.card.to_dict(),
            "change_calibration": (
                None if self.change_calibration is None else self.change_calibration.to_dict()
            ),
        }
        write_json(folder / ENSEMBLE_FILE, description)
        return folder / ENSEMBLE_FILE


def _items(scans: pd.DataFrame | str | os.PathLike | Sequence[str | os.PathLike]) -> list[dict]:
    """The scans to score as items (``image``, ``subject``, ``session``, ``loes_score``): a
    table's rows, or what :func:`loes.data.read_scans` reads from sources."""
    if not isinstance(scans, pd.DataFrame):
        scans = read_scans([scans] if isinstance(scans, (str, os.PathLike)) else scans)
    if "image" not in scans:
        raise LoesError("the scans table needs an image column (paths of NIfTI files).")
    defaults = {"subject": "", "session": "", "loes_score": np.nan, "age": np.nan, "site": ""}
    scans = scans.assign(**{k: v for k, v in defaults.items() if k not in scans})
    ages = pd.to_numeric(scans["age"], errors="coerce")
    sites = scans["site"].map(lambda s: "" if pd.isna(s) else str(s))
    return [
        {
            "image": str(row.image),
            "subject": str(row.subject),
            "session": str(row.session),
            "age": float(age),
            "site": site,
            "loes_score": float(row.loes_score),
        }
        for row, age, site in zip(scans.itertuples(), ages, sites, strict=True)
    ]
