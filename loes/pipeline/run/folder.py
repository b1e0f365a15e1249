"""The run folder of ``loes cv``: created once, refused when it holds another run, with the
resolved configuration and the environment recorded beside the results.

Layout (nnU-Net style: everything a run decided is saved beside its results)::

    RUN_DIR/config.yaml  environment.json  splits.json  scans.csv (subject, session, score)
    RUN_DIR/fold_K/ or RUN_DIR/repeat_R/fold_K/   best.pt last.pt history.csv predictions.csv
                                                  metrics.json (written last: the fold is done)
    RUN_DIR/predictions.csv  report.json  report.md  report.html
"""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import pandas as pd
import torch

from loes import __version__
from loes.errors import LoesError
from loes.io import csv_text, is_temporary, read_csv, write_json, write_new, write_text
from loes.pipeline.run.config import Config
from loes.pipeline.run.config_loading import read_yaml
from loes.pipeline.run.device import available_cpus

__all__ = [
    "CHANGE_FOLDER",
    "CONFIG_FILE",
    "FINISHED_MARKER",
    "check_run_folder",
    "check_scans",
    "environment",
    "fold_dir",
    "is_finished",
    "load_run_config",
    "prepare_run_folder",
    "run_dir_of",
    "write_environment",
    "write_scans",
]

CONFIG_FILE = "config.yaml"
#: the scans and scores a run was made with; a resumed run must see the same
SCANS_FILE = "scans.csv"
_SCAN_COLUMNS = ["subject", "session", "loes_score"]
#: the file a fold writes last; a fold folder holding it is finished
FINISHED_MARKER = "metrics.json"
#: The paired change model's folder inside a fold's folder (``best.pt``, ``last.pt``, ...).
CHANGE_FOLDER = "change"
_PACKAGES = ("loes", "torch", "monai", "numpy", "scikit-learn", "SimpleITK", "nibabel", "nilearn")


def fold_dir(run_dir: str | os.PathLike, repeat: int, fold: int, repeats: int) -> Path:
    """``run_dir/fold_K``, or ``run_dir/repeat_R/fold_K`` when the run has several repeats."""
    run_dir = Path(run_dir)
    return run_dir / (f"fold_{fold}" if repeats == 1 else f"repeat_{repeat}/fold_{fold}")


def run_dir_of(folder: str | os.PathLike) -> Path:
    """The run folder a ``fold_K`` folder belongs to (its parent, or grandparent under
    ``repeat_R``)."""
    parent = Path(folder).resolve().parent
    return parent.parent if parent.name.startswith("repeat_") else parent


def is_finished(folder: str | os.PathLike) -> bool:
    """Whether the fold folder holds its results (its last file is written)."""
    return (Path(folder) / FINISHED_MARKER).exists()


#: Settings loes gained after runs were made whose default is not what those runs did, with the
#: value a ``config.yaml`` without them means; :func:`check_run_folder` refuses to resume such
#: a run, whose method differs in more than these settings.
ADDED_SETTINGS = {"change.model": "subtraction", "change.thick_slices": 0.0}


def _saved_config(run_dir: str | os.PathLike) -> tuple[Config, list[str]]:
    """The configuration saved in a run folder, and the :data:`ADDED_SETTINGS` its file lacks
    (given their values there)."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise LoesError(f"{run_dir} holds no {CONFIG_FILE}; pass the --out folder of `loes cv`.")
    saved = read_yaml(path)
    absent = []
    for dotted, before in ADDED_SETTINGS.items() if isinstance(saved, dict) else ():
        section, key = dotted.split(".")
        part = saved.setdefault(section, {})
        if isinstance(part, dict) and key not in part:
            part[key] = before
            absent.append(dotted)
    return Config.from_dict(saved, where=str(path)), absent


def load_run_config(run_dir: str | os.PathLike) -> Config:
    """The configuration saved in a run folder.

    Settings added to loes after the run was made take the value of :data:`ADDED_SETTINGS`,
    where it names them, else their defaults.

    Raises:
        LoesError: when the folder holds no readable, valid ``config.yaml``.
    """
    return _saved_config(run_dir)[0]


def _differences(a: dict, b: dict, prefix: str = "") -> dict[str, tuple]:
    """Dotted keys whose values differ between two nested settings dicts, with both values."""
    out = {}
    for key in set(a) | set(b):
        if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
            out |= _differences(a[key], b[key], f"{prefix}{key}.")
        elif a.get(key) != b.get(key):
            out[f"{prefix}{key}"] = (a.get(key), b.get(key))
    return out


def check_run_folder(config: Config) -> Path:
    """The run folder ``config.out``, checked without writing anything: it is new, or the run it
    holds decided its results with the same settings (:meth:`Config.deciding_results`), so
    resuming it is safe.

    Raises:
        LoesError: when the folder holds a run with other settings or made by an earlier loes
            (:data:`ADDED_SETTINGS`), results without the ``config.yaml`` that says how they
            were made, or other files.
    """
    run_dir = Path(config.out)
    if (run_dir / CONFIG_FILE).exists():
        saved, older = _saved_config(run_dir)
        if older:  # its method differs in more than settings can say
            raise LoesError(
                f"{run_dir} holds a run made by an earlier loes, before it had the setting "
                + " or ".join(older)
                + ", so this loes cannot resume it without mixing two methods; choose another "
                "--out, or finish it with the loes that made it (`loes report` still reads it)."
            )
        changed = _differences(saved.deciding_results(), config.deciding_results())
        if changed:
            raise LoesError(
                f"{run_dir} holds a run with another configuration (differs in "
                + "; ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in sorted(changed.items()))
                + "); choose another --out or delete that folder."
            )
    elif run_dir.is_dir() and any(run_dir.glob("*fold_*")):
        raise LoesError(
            f"{run_dir} holds fold results but no {CONFIG_FILE} saying how they were made; "
            f"restore {run_dir / CONFIG_FILE}, or choose another --out."
        )
    elif run_dir.is_dir() and any(not is_temporary(p) for p in run_dir.iterdir()):
        # never write into someone's data; a fold job starting at the same moment may be
        # writing config.yaml's temporary beside it, or have just renamed it into place
        if (run_dir / CONFIG_FILE).exists():
            return check_run_folder(config)
        raise LoesError(
            f"{run_dir} is not empty and holds no loes run ({CONFIG_FILE}); choose a new or "
            "empty folder for --out."
        )
    elif run_dir.exists() and not run_dir.is_dir():
        raise LoesError(f"the run folder {run_dir} is a file; choose another --out.")
    return run_dir


def check_scans(run_dir: Path, table: pd.DataFrame) -> None:
    """Refuse to resume a run whose data changed: ``run_dir/scans.csv`` (when there is one)
    must list the same scans (subject, session) with the same Loes scores as ``table``, or
    finished folds and new ones would mix two versions of the data.

    Raises:
        LoesError: naming up to five changed, added or removed scans.
    """
    path = run_dir / SCANS_FILE
    if not path.is_file():
        return
    try:
        saved = read_csv(path, dtype={"subject": str, "session": str})
    except (OSError, ValueError) as error:
        raise LoesError(f"cannot read {path}: {error}; restore it or delete the run.") from error
    merged = saved.merge(
        table[_SCAN_COLUMNS], on=["subject", "session"], how="outer", indicator="side"
    )
    changes = []
    for row in merged.itertuples():
        scan = f"{row.subject} {row.session}"
        if row.side == "left_only":
            changes.append(f"{scan} is gone")
        elif row.side == "right_only":
            changes.append(f"{scan} is new")
        elif abs(row.loes_score_x - row.loes_score_y) > 1e-6:
            changes.append(f"{scan} scored {row.loes_score_x:g} then, {row.loes_score_y:g} now")
    if changes:
        shown = "; ".join(changes[:5]) + (
            f"; and {len(changes) - 5} more" if len(changes) > 5 else ""
        )
        raise LoesError(
            f"{run_dir} was run on other data ({shown}); its finished folds would mix two "
            "versions of the data. Choose another --out, or delete that folder."
        )


def write_scans(run_dir: Path, table: pd.DataFrame) -> None:
    """Record the scans and scores of a new run in ``run_dir/scans.csv`` (kept when it exists:
    :func:`check_scans` has already compared it; of fold jobs starting together, one writes
    it)."""
    if not (run_dir / SCANS_FILE).exists():
        write_new(run_dir / SCANS_FILE, csv_text(table[_SCAN_COLUMNS]))


def prepare_run_folder(config: Config) -> Path:
    """Create ``config.out`` and save ``config.yaml`` there, after :func:`check_run_folder`.

    Raises:
        LoesError: when the folder holds another run, or cannot be created.
    """
    run_dir = check_run_folder(config)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise LoesError(f"cannot create the run folder {run_dir}: {error.strerror}.") from error
    write_text(run_dir / CONFIG_FILE, config.to_yaml())
    return run_dir


def package_versions(packages: tuple[str, ...]) -> dict[str, str | None]:
    """The installed version of each of ``packages`` (None when it is not installed; loes run
    from a source tree: its ``__version__``)."""
    versions = {}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = __version__ if package == "loes" else None
    return versions


def environment(device: torch.device) -> dict:
    """What ran the run: package versions, git revision, Python, machine, threads and GPU."""
    versions = package_versions(_PACKAGES)
    try:
        revision = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        revision = None
    return {
        "packages": versions,
        "git_revision": revision,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "node": platform.node(),
        "cpu_count": os.cpu_count(),
        "available_cpus": available_cpus(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }


def write_environment(run_dir: str | os.PathLike, device: torch.device) -> None:
    """Write :func:`environment` to ``run_dir/environment.json``."""
    write_json(Path(run_dir) / "environment.json", environment(device))
