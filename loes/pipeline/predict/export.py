"""``loes export``: a run's fold ensemble as a MONAI bundle (MONAI Bundle Specification,
https://docs.monai.io/en/latest/mb_specification.html).

Layout::

    OUT_DIR/configs/metadata.json    versions, task, intended use, input and output formats
    OUT_DIR/configs/inference.json   `python -m monai.bundle run --config_file ...`: every NIfTI
                                     file of dataset_dir -> output_dir/predictions.csv, the
                                     table `loes predict` writes (same ensemble, same code),
                                     and output_dir/changes.csv, the changes between
                                     consecutive sessions of each subject
    OUT_DIR/models/<member>.pt       each fold model (LoesModel.save: weights_only loadable)
    OUT_DIR/models/ensemble.json     members, conformal calibrations (scores; changes between
                                     consecutive sessions), threshold, training profile
    OUT_DIR/models/model.ts          the members and the flip averaging as TorchScript, when
                                     the network traces to the same outputs
    OUT_DIR/docs/README.md           the run's cross-validation figures and intended use
    OUT_DIR/LICENSE

The inference config names ``loes`` components (``loes.pipeline.load_ensemble``), so the
bundle needs the ``loes`` package installed (``required_packages_version``).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from torch import nn

from loes import __version__
from loes.errors import LoesError, WriteError
from loes.io import atomic_path, check_writable, write_error, write_json, write_text
from loes.pipeline.predict.ensemble import FoldEnsemble
from loes.pipeline.predict.members import load_ensemble
from loes.pipeline.predict.provenance import REPORT_FILE
from loes.pipeline.run.messages import note

__all__ = ["SCHEMA_URL", "FlipEnsemble", "export_bundle", "inference_config", "metadata_for"]

#: the MONAI bundle metadata schema this metadata follows (MONAI's ``meta_schema.json``)
SCHEMA_URL = (
    "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/"
    "meta_schema_20240725.json"
)
_LICENSE = Path(__file__).resolve().parents[3] / "LICENSE"  # the checkout's


class FlipEnsemble(nn.Module):
    """Every member on the input and on its left-right mirror: (B, 1, D, H, W) model inputs
    -> (B, members) predictions in Loes points, each clipped to 0-34 and flip-averaged. The
    ensemble's prediction is their mean over the last axis."""

    def __init__(self, models: list[nn.Module], lr_axis: int) -> None:
        super().__init__()
        self.models = nn.ModuleList(models)
        self.dim = 2 + lr_axis

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mirrored = torch.flip(x, dims=[self.dim])
        outputs = [(m(x).clamp(0.0, 34.0) + m(mirrored).clamp(0.0, 34.0)) / 2 for m in self.models]
        return torch.stack(outputs, dim=1)


def _torchscript(ensemble: FoldEnsemble, path: Path) -> str | None:
    """Trace :class:`FlipEnsemble` to ``path`` when the trace gives the eager outputs (to 1e-4
    Loes points); returns why not otherwise."""
    module = FlipEnsemble([m.model.cpu().eval() for m in ensemble.members], ensemble.lr_axis)
    example = torch.randn(
        2, 1, *ensemble.spec["spatial_size"], generator=torch.Generator().manual_seed(0)
    )
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(module, example, check_trace=False)
            same = torch.allclose(traced(example), module(example), atol=1e-4)
            if not same:
                return "the traced ensemble's outputs differ from the eager ones"
            with atomic_path(path) as tmp:
                torch.jit.save(traced, str(tmp))
    except Exception as error:  # tracing is optional: any failure leaves it out, with the reason
        return f"{type(error).__name__}: {error}"
    return None


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def metadata_for(ensemble: FoldEnsemble, report: dict | None) -> dict:
    """The bundle's ``metadata.json`` (fields of MONAI's ``meta_schema.json``)."""
    pooled = ((report or {}).get("metrics", {}).get("network", {}) or {}).get("pooled", {})
    metrics = {
        k: pooled[k] for k in ("mae", "rmse", "standardized_rmse", "pearson_r") if k in pooled
    }
    spatial = list(ensemble.spec["spatial_size"])
    return {
        "schema": SCHEMA_URL,
        "version": __version__,
        "changelog": {
            __version__: f"exported by loes {__version__} from {Path(ensemble.source).name}"
        },
        "monai_version": _version("monai"),
        "pytorch_version": torch.__version__.split("+")[0],
        "numpy_version": np.__version__,
        "required_packages_version": {
            "loes": __version__,
            "nibabel": _version("nibabel"),
            "crepes": _version("crepes"),
            "fire": _version("fire"),
        },
        "task": "Loes score (0-34) of cerebral X-linked adrenoleukodystrophy from a 3D brain MRI",
        "description": (
            f"An ensemble of {len(ensemble.members)} cross-validation fold models "
            f"({ensemble.spec['network']}) with left-right flip test-time augmentation; a "
            "conformal prediction interval from the run's out-of-fold residuals; the call at "
            f"Loes >= {ensemble.threshold:g}."
        ),
        "authors": "loes contributors",
        "copyright": "Copyright (c) loes contributors; Apache-2.0",
        "data_source": ensemble.trained,
        "data_type": "nibabel",
        "image_classes": "one channel: the MRI, reoriented, resampled, cropped to the head and "
        "normalised by the loes preprocessing in the models' description",
        "label_classes": "",
        "pred_classes": "one value: the Loes score, in points from 0 to 34",
        "eval_metrics": metrics,
        "intended_use": "Research only; not for diagnostic use.",
        "references": [
            "Loes DJ et al. Adrenoleukodystrophy: a scoring method for brain MR observations. "
            "AJNR 1994;15:1761-1766.",
            "Barber RF, Candes EJ, Ramdas A, Tibshirani RJ. Predictive inference with the "
            "jackknife+. Annals of Statistics 2021;49:486-507.",
        ],
        "network_data_format": {
            "inputs": {
                "image": {
                    "type": "image",
                    "format": "magnitude",
                    "modality": "MR",
                    "num_channels": 1,
                    "spatial_shape": spatial,
                    "dtype": "float32",
                    "value_range": [],
                    "is_patch_data": False,
                    "channel_def": {"0": "T1w MRI"},
                }
            },
            "outputs": {
                "pred": {
                    "type": "tuples",
                    "format": "regression",
                    "num_channels": len(ensemble.members),
                    "spatial_shape": [1],
                    "dtype": "float32",
                    "value_range": [0, 34],
                    "is_patch_data": False,
                    "channel_def": {str(i): m.name for i, m in enumerate(ensemble.members)},
                }
            },
        },
    }


def inference_config() -> dict:
    """The bundle's ``inference.json``: ``dataset_dir`` (a folder of NIfTI files, or any
    ``loes predict`` source) -> ``output_dir/predictions.csv`` and ``output_dir/changes.csv``
    (the changes between consecutive sessions of each subject; no row when every subject has
    one session)."""
    return {
        "imports": [
            "$from loes.pipeline import write_predictions",
            "$from loes.pipeline.predict import write_changes",
        ],
        "bundle_root": ".",
        "dataset_dir": "$@bundle_root + '/input'",
        "output_dir": "$@bundle_root + '/eval'",
        "device": "auto",
        "tta": "flip",
        "coverage": 0.9,
        "batch_size": None,
        "ensemble": {
            "_target_": "loes.pipeline.load_ensemble",
            "path": "$@bundle_root + '/models'",
        },
        "predictions": (
            "$@ensemble.predict([@dataset_dir], tta=@tta, coverage=@coverage, device=@device, "
            "batch_size=@batch_size)"
        ),
        "changes": "$@ensemble.changes(@predictions, @coverage)",
        "run": [
            "$write_predictions(@predictions, @output_dir + '/predictions.csv')",
            "$write_changes(@changes, @output_dir + '/changes.csv')",
        ],
    }


def _readme(ensemble: FoldEnsemble, report: dict | None, torchscript: str | None) -> str:
    shown = ensemble.card.warnings if ensemble.card else ()
    pooled = ((report or {}).get("metrics", {}).get("network", {}) or {}).get("pooled", {})
    lines = [
        "# Loes score ensemble (MONAI bundle)",
        "",
        f"Exported by loes {__version__} from the cross-validation run "
        f"`{Path(ensemble.source).name}`: {len(ensemble.members)} fold models "
        f"({ensemble.spec['network']}, input "
        f"{'x'.join(map(str, ensemble.spec['spatial_size']))} voxels at "
        f"{ensemble.spec['preprocessing'].get('pixdim')} mm).",
        "",
        "## Provenance",
        "",
        f"The models were {ensemble.trained}.",
        "",
        *[f"**Warning from the run's report**: {w}." for w in shown],
        "",
        "## Intended use",
        "",
        "Research only, not for diagnosis: the Loes score (0-34) of cerebral X-linked "
        "adrenoleukodystrophy from a 3D brain MRI of the contrast the run was trained on. "
        "Each prediction comes with a conformal prediction interval calibrated on the run's "
        f"{ensemble.calibration.n} out-of-fold predictions, and the call at Loes >= "
        f"{ensemble.threshold:g}. The residuals are those of single fold models, so the "
        "ensemble's intervals tend to be conservative (wider than needed). Scans unlike the "
        "training scans are flagged, not refused, and a flagged prediction never gets a sure "
        "call. The run's warnings above are in the flags of every prediction.",
        "",
        "## Cross-validation figures of the run",
        "",
    ]
    if pooled:
        lines += ["| metric | value |", "|---|---:|"]
        for key in ("n", "mae", "rmse", "standardized_rmse", "pearson_r", "lin_ccc"):
            if pooled.get(key) is not None:
                value = pooled[key]
                lines.append(
                    f"| {key} | {value:.3g} |"
                    if isinstance(value, float)
                    else f"| {key} | {value} |"
                )
        lines.append("")
        lines.append("Pooled out-of-fold metrics in Loes points (from the run's report.json).")
    else:
        lines.append("The run folder held no report.json; run `loes report` on it for its figures.")
    lines += [
        "",
        "## Use",
        "",
        "```bash",
        "pip install -e /path/to/loes   # a loes checkout: the bundle runs loes code",
        "python -m monai.bundle run --config_file configs/inference.json \\",
        "    --bundle_root . --dataset_dir /path/to/niftis --output_dir eval",
        "```",
        "",
        "writes `eval/predictions.csv`, the table `loes predict` writes, and "
        "`eval/changes.csv`, the change between consecutive sessions of each subject (from "
        "`sub-`/`ses-` in the file names; with a conformal interval calibrated on the run's "
        f"{0 if ensemble.change_calibration is None else ensemble.change_calibration.n} "
        "out-of-fold consecutive pairs, and the call at a rise of 0.5 points). `loes predict "
        "BUNDLE_DIR SOURCE...` uses the bundle directly. Every `models/*.pt` loads with "
        "`torch.load(weights_only=True)`.",
        "",
        "TorchScript: "
        + (
            "`models/model.ts` maps (B, 1, D, H, W) preprocessed inputs to (B, members) "
            "flip-averaged predictions: the network alone, without the preprocessing, the "
            "interval, the call or any flag, which `loes predict` and `inference.json` give."
            if torchscript is None
            else f"not written ({torchscript})."
        ),
        "",
    ]
    return "\n".join(lines)


def _check_exportable(run_dir: str | os.PathLike, ensemble: FoldEnsemble) -> None:
    """Refuse a run whose bundle could not say where its models come from or screen scans."""
    if ensemble.card is None:
        raise LoesError(
            f"{run_dir} has no report.json, so a bundle could not say how good its models are; "
            f"write it with `loes report {run_dir}`, then export."
        )
    if ensemble.profile is None:
        raise LoesError(
            f"{run_dir} has no training_profile.json and its scans are not readable here, so a "
            "bundle could not flag scans unlike them; export where the run's data is readable "
            "(for a run made by an older loes: the folder `loes cv` was started in)."
        )


def _write_bundle(folder: Path, ensemble: FoldEnsemble, report: dict | None) -> None:
    ensemble.save(folder / "models")
    torchscript = _torchscript(ensemble, folder / "models" / "model.ts")
    write_json(folder / "configs" / "metadata.json", metadata_for(ensemble, report))
    write_json(folder / "configs" / "inference.json", inference_config())
    write_text(folder / "docs" / "README.md", _readme(ensemble, report, torchscript))
    if _LICENSE.is_file():
        shutil.copyfile(_LICENSE, folder / "LICENSE")


def export_bundle(run_dir: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Write the MONAI bundle of the run ``run_dir`` into ``out_dir`` (new or empty); returns
    ``out_dir``.

    The bundle carries the run's provenance and warnings (``ensemble.json``, ``metadata.json``'s
    ``data_source``, ``docs/README.md``) and its training profile, so that its predictions are
    screened and flagged as ``loes predict``'s are.

    Raises:
        LoesError: when ``run_dir`` holds no finished fold, no report (``loes report`` writes
            it), no training profile and unreadable scans, or ``out_dir`` is a file or a folder
            that is not empty; a ``WriteError`` (one) when the bundle cannot be written (no
            space, a file-size limit, no permission), leaving nothing of it behind.
    """
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise LoesError(f"{out} exists and is not an empty folder; choose a new OUT_DIR.")
    if out.resolve().is_relative_to(Path(run_dir).resolve()):
        raise LoesError(
            f"{out} is inside the run folder {run_dir}, whose files loes keeps; choose an "
            "OUT_DIR elsewhere."
        )
    check_writable(out.parent, "choose another OUT_DIR")
    ensemble = load_ensemble(run_dir)
    _check_exportable(run_dir, ensemble)
    for warning in ensemble.card.warnings:
        note(f"warning: the run's report: {warning}; the bundle and its predictions say so")
    report = json.loads((Path(run_dir) / REPORT_FILE).read_text())  # there: the card came from it
    # built beside OUT_DIR and renamed when whole: a failed export leaves nothing behind, and
    # the same command succeeds once the cause is gone
    staging = out.parent / f".{out.name}.partial-{secrets.token_hex(4)}"
    try:
        staging.parent.mkdir(parents=True, exist_ok=True)
        staging.mkdir()
        _write_bundle(staging, ensemble, report)
        os.replace(staging, out)
    except WriteError:
        raise
    except OSError as error:
        raise write_error(out, error) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
