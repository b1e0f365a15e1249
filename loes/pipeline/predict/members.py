"""Finding and loading a fold ensemble: every finished fold model of a ``loes cv`` run folder, or
the members a saved ensemble (a ``loes export`` bundle) describes."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from loes.errors import LoesError
from loes.models import LoesModel
from loes.pipeline.predict.changes import change_calibration, oof_change_calibration
from loes.pipeline.predict.conformal import ConformalCalibration
from loes.pipeline.predict.ensemble import ENSEMBLE_FILE, FoldEnsemble, Member
from loes.pipeline.predict.provenance import RunCard, read_run_card
from loes.pipeline.predict.run_profile import run_profile
from loes.pipeline.predict.scan_profile import TrainingProfile
from loes.pipeline.run.checkpoints import load_fold_model
from loes.pipeline.run.collect import collect_changes, collect_predictions
from loes.pipeline.run.folder import CHANGE_FOLDER, CONFIG_FILE, is_finished, load_run_config
from loes.pipeline.run.messages import note
from loes.pipeline.run.predictions import NETWORK

__all__ = ["fold_members", "load_ensemble", "warn_if_partial"]

_FOLD = re.compile(r"^(?:repeat_(\d+)/)?fold_(\d+)$")


def fold_members(run_dir: Path) -> list[Member]:
    members = []
    for folder in [*run_dir.glob("fold_*"), *run_dir.glob("repeat_*/fold_*")]:
        match = _FOLD.match(folder.relative_to(run_dir).as_posix())
        if match and folder.is_dir() and is_finished(folder):
            repeat, fold = int(match[1] or 0), int(match[2])
            model, _ = load_fold_model(folder)
            name = folder.relative_to(run_dir).as_posix().replace("/", "_")
            change = folder / CHANGE_FOLDER / "best.pt"  # the paired change model, if trained
            change_model = _change_model(change.parent, change.name if change.is_file() else None)
            members.append(Member(name, model.eval(), repeat, fold, change_model))
    return sorted(members, key=lambda m: (m.repeat, m.fold))


def _from_run(run_dir: Path) -> FoldEnsemble:
    config = load_run_config(run_dir)
    members = fold_members(run_dir)
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
        amp=bool(config.training.mixed_precision),
        deterministic=bool(config.training.deterministic),
        layout=config.training.memory_format,
        include_gd=bool(config.data.include_gd),
        source=str(run_dir),
        card=read_run_card(run_dir),
        change_calibration=_change_calibration(run_dir, oof),
    )
    ensemble.profile = run_profile(run_dir, ensemble)
    return ensemble


def _change_calibration(run_dir: Path, oof) -> ConformalCalibration | None:
    """The calibration of change intervals: on the paired network's out-of-fold changes when
    the run trained it, else on the differences of the network's out-of-fold scores."""
    paired = collect_changes(run_dir)
    if paired is None:
        return oof_change_calibration(oof)
    if paired.empty:
        return None
    return change_calibration(paired["loes_score_change"], paired["predicted_change"])


def _from_description(path: Path) -> FoldEnsemble:
    try:
        data = json.loads(path.read_text())
        members = [
            Member(
                m["name"],
                LoesModel.load(path.parent / m["file"])[0].eval(),
                m["repeat"],
                m["fold"],
                _change_model(path.parent, m.get("change_file")),
            )
            for m in data["members"]
        ]
        calibration = ConformalCalibration(**data["calibration"])
        card = None if data.get("card") is None else RunCard.from_dict(data["card"])
        changes = data.get("change_calibration")  # None in a bundle of an older loes
        changes = None if changes is None else change_calibration(**changes)
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
        deterministic=bool(data.get("deterministic", False)),
        layout=str(data.get("layout", "auto")),
        include_gd=bool(data.get("include_gd", False)),
        source=str(path.parent),
        card=card,
        change_calibration=changes,
    )


def _change_model(folder: Path, file: str | None) -> LoesModel | None:
    return None if file is None else LoesModel.load(folder / file)[0].eval()


def load_ensemble(path: str | os.PathLike) -> FoldEnsemble:
    """The fold ensemble of a ``loes cv`` run folder, or of a folder :meth:`FoldEnsemble.save`
    wrote (a bundle's ``models/``, or the bundle itself).

    From a run folder: every finished fold (``fold_K/`` or ``repeat_R/fold_K/`` with
    ``metrics.json``), its ``best.pt`` loaded with ``torch.load(weights_only=True)``; the
    calibration from the folds' out-of-fold ``predictions.csv`` (of the scores, and of the
    changes between consecutive sessions of a subject); threshold, batch size and mixed
    precision from ``config.yaml``; the training profile from ``training_profile.json`` (see
    :func:`~loes.pipeline.predict.run_profile.run_profile`); the run card (provenance and
    quality) from ``report.json``.

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
