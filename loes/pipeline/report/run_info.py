"""What was run: the facts every report page starts with, from the run's saved settings.

:func:`describe_run` reads the run's configuration (``config.yaml`` as a dict), its
``environment.json`` (the device and package versions that trained it) and the fold histories,
and says in plain words when the run is a smoke run whose numbers mean little.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from loes.errors import LoesError
from loes.pipeline.run.effective import effective_values, lookup

__all__ = ["SMOKE_EPOCHS", "SMOKE_SCANS", "describe_run", "read_environment"]

#: Fewer training epochs than this make a smoke run: a network this briefly trained has not
#: converged, whatever its numbers say.
SMOKE_EPOCHS = 10

#: Fewer scans than this make a smoke run: with five folds, each test fold holds a handful of
#: subjects and every interval spans most of the score range.
SMOKE_SCANS = 40


def read_environment(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """``run_dir/environment.json`` as a dict (device, GPU, package versions), or ``None``.

    Raises :class:`LoesError` naming the file if it exists but is not valid JSON.
    """
    path = Path(run_dir) / "environment.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise LoesError(f"{path} is not readable JSON ({error}); delete it or re-run.") from None
    return data if isinstance(data, dict) else None


def _data_source(config: dict[str, Any] | None) -> str | None:
    if lookup(config, "data") is None:
        return None
    source = lookup(config, "data.source")
    if source is not None:
        return str(source)
    subjects, seed = (
        lookup(config, "data.synthetic_subjects"),
        lookup(config, "data.synthetic_seed"),
    )
    return f"built-in synthetic cohort ({subjects} subjects, seed {seed})"


def _device(config: dict[str, Any] | None, environment: dict[str, Any] | None) -> str | None:
    device, gpu = lookup(environment, "device"), lookup(environment, "gpu")
    if device:
        return f"{device} ({gpu})" if gpu else str(device)
    setting = lookup(config, "device")
    return None if setting is None else f"{setting} (setting; environment.json not found)"


def _effective(config: dict[str, Any] | None, environment: dict[str, Any] | None) -> dict[str, Any]:
    if not isinstance(config, dict):
        return {}
    device = lookup(environment, "device")
    try:
        return effective_values(config, str(device) if device else None)
    except RuntimeError:  # a device name this PyTorch does not know
        return effective_values(config, None)


def describe_run(
    summary: dict[str, Any],
    config: dict[str, Any] | None = None,
    environment: dict[str, Any] | None = None,
    histories: dict[tuple[int, int], pd.DataFrame] | None = None,
    expected: list[list[int]] | None = None,
) -> dict[str, Any]:
    """The run at a glance, for the top of every report page.

    ``summary`` is :func:`loes.pipeline.report.summary.summarize`'s dict (counts of scans, subjects,
    folds and repeats); ``config`` the run's settings as a nested dict (``Config.to_dict()``);
    ``environment`` its ``environment.json``; ``histories`` the folds' ``history.csv`` tables;
    ``expected`` the ``[repeat, fold]`` pairs the run should have (``splits.json``, see
    :func:`~loes.pipeline.run.collect.fold_status`). Any of them may be ``None``: what
    cannot be known is ``None``. Returns::

        {"model", "data_source", "n_scans", "n_subjects", "n_folds", "n_repeats",
         "epochs", "epochs_run", "patience", "pixdim", "spatial_size", "device",
         "loes_version", "effective", "smoke", "smoke_text"}

    Folds and repeats are the planned ones (from ``expected``, else ``cv.folds`` x
    ``cv.repeats``), else those found. ``epochs`` is the setting (the most a fold trains),
    ``epochs_run`` the fewest and most epochs the folds' histories hold (early stopping ends
    folds sooner); ``pixdim`` is in mm,
    ``spatial_size`` in voxels; ``loes_version`` the version that trained (from
    ``environment.json``); ``effective`` the values the settings took in effect on the device
    that trained (:func:`loes.pipeline.run.effective.effective_values`: mixed precision off on
    a CPU, the network's own dropout for ``model.dropout: null``...; ``{}`` without a
    configuration). ``smoke`` is true when the run trained fewer than
    :data:`SMOKE_EPOCHS` epochs or has fewer than :data:`SMOKE_SCANS` scans; ``smoke_text``
    then says so in plain words (else it is empty).
    """
    epochs = lookup(config, "training.epochs")
    lengths = [
        int(pd.to_numeric(h["epoch"], errors="coerce").max())
        for h in (histories or {}).values()
        if "epoch" in h and pd.to_numeric(h["epoch"], errors="coerce").notna().any()
    ]
    epochs_run = [min(lengths), max(lengths)] if lengths else None
    trained = epochs if isinstance(epochs, int) else (epochs_run[1] if epochs_run else None)
    reasons = []
    if trained is not None and trained < SMOKE_EPOCHS:
        reasons.append(f"{trained} training epoch{'s' * (trained != 1)} (under {SMOKE_EPOCHS})")
    if summary["n_scans"] < SMOKE_SCANS:
        reasons.append(f"{summary['n_scans']} scans (under {SMOKE_SCANS})")
    smoke_text = ""
    if reasons:
        smoke_text = (
            f"Smoke run: {' and '.join(reasons)}. It shows that the pipeline runs end to end; "
            "its numbers say little about how well the network scores real scans."
        )
    packages = lookup(environment, "packages")
    folds, repeats = lookup(config, "cv.folds"), lookup(config, "cv.repeats")
    planned = (
        isinstance(folds, int) and isinstance(repeats, int) and not lookup(config, "cv.by_site")
    )
    if expected:
        per_repeat = Counter(repeat for repeat, _ in expected)
        folds, repeats, planned = max(per_repeat.values()), len(per_repeat), True
    return {
        "model": lookup(config, "model.name"),
        "data_source": _data_source(config),
        "n_scans": summary["n_scans"],
        "n_subjects": summary["n_subjects"],
        "n_folds": folds if planned else summary["n_folds"],
        "n_repeats": repeats if planned else summary["n_repeats"],
        "epochs": epochs if isinstance(epochs, int) else None,
        "epochs_run": epochs_run,
        "patience": lookup(config, "training.patience"),
        "pixdim": lookup(config, "preprocessing.pixdim"),
        "spatial_size": lookup(config, "preprocessing.spatial_size"),
        "device": _device(config, environment),
        "loes_version": lookup(packages, "loes") if isinstance(packages, dict) else None,
        "effective": _effective(config, environment),
        "smoke": bool(reasons),
        "smoke_text": smoke_text,
    }
