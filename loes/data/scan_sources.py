"""The scans to score with a trained model, from whatever the user points at: NIfTI files,
folders of them, or any table ``loes`` reads (manifest, the lab's CSV, BIDS), scores optional.

Unlike ``load_dataset`` (training, where every scan needs a score), a missing or unusable score
only leaves that scan's ``loes_score`` empty; images are not opened here (a scan that cannot
be read is the prediction's own row, with the reason).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from loes.data.problems import Problem, errors_message
from loes.data.readers import read_table
from loes.errors import LoesError

__all__ = ["SCAN_COLUMNS", "TABLE_SUFFIXES", "is_nifti", "read_scans"]

#: the columns of :func:`read_scans`' table, in this order, before any the source adds
SCAN_COLUMNS = ("subject", "session", "image", "loes_score")
_NIFTI = (".nii", ".nii.gz")
_ENTITY = re.compile(r"(?:^|_)(sub|ses)-([A-Za-z0-9]+)")
#: markers of a BIDS dataset root, as opposed to a plain folder of NIfTI files
_BIDS_MARKERS = ("dataset_description.json", "participants.tsv")


def is_nifti(path: str | os.PathLike) -> bool:
    """Whether the file name ends in ``.nii`` or ``.nii.gz`` (any case)."""
    return str(path).lower().endswith(_NIFTI)


def _is_bids(folder: Path) -> bool:
    return any((folder / m).is_file() for m in _BIDS_MARKERS) or any(folder.glob("sub-*/"))


def _ids(image: Path) -> tuple[str, str]:
    """``(subject, session)`` from BIDS entities in the file name (``sub-01_ses-02_T1w``), else
    the name without its extension and no session."""
    name = image.name
    entities = dict(_ENTITY.findall(name))
    if "sub" in entities:
        return f"sub-{entities['sub']}", f"ses-{entities['ses']}" if "ses" in entities else ""
    return re.sub(r"\.nii(\.gz)?$", "", name, flags=re.IGNORECASE), ""


def _file_rows(images: Iterable[Path]) -> pd.DataFrame:
    rows = []
    for image in images:
        subject, session = _ids(image)
        rows.append((subject, session, os.path.abspath(image), math.nan))
    return pd.DataFrame(rows, columns=list(SCAN_COLUMNS))


def _is_score_problem(problem: Problem) -> bool:
    """A problem with a scan's score only, which prediction does not need."""
    text = problem.message.lower()
    return "loes score" in text or "loes_score" in text or "loes-score" in text


def _table_rows(source: Path, include_gd: bool, images_dir, suffix: str, fmt) -> pd.DataFrame:
    reading = read_table(source, fmt, images_dir, include_gd, suffix)
    fatal = [p for p in reading.errors if not _is_score_problem(p)]
    if reading.table is None or fatal:
        raise LoesError(errors_message(str(source), fatal or reading.errors))
    return reading.table


TABLE_SUFFIXES = frozenset({"", ".csv", ".tsv", ".tab", ".txt", ".xlsx", ".xls", ".ods"})
"""File suffixes read as tables; any other file that is not NIfTI is a scan of its own that
cannot be scored (a DICOM slice, a picture)."""


def read_scans(
    sources: Iterable[str | os.PathLike],
    *,
    format: str | None = None,
    images_dir: str | os.PathLike | None = None,
    include_gd: bool = False,
    suffix: str = "T1w",
) -> pd.DataFrame:
    """One row per scan from every source, in the order given.

    Each source is a NIfTI file (``.nii``/``.nii.gz``; it need not exist: predicting reports
    it; another file whose suffix is not in :data:`TABLE_SUFFIXES` is a scan too), a folder (a
    BIDS dataset when it holds ``dataset_description.json``, ``participants.tsv`` or ``sub-*``
    folders, else every NIfTI file under it, sorted), or a table read by
    :func:`loes.data.readers.read_table` (``format``, ``images_dir``, ``include_gd`` and
    ``suffix`` as there).

    Returns a DataFrame with ``subject``, ``session`` (``""`` when unknown; BIDS ``sub-``/``ses-``
    entities of a loose file's name are used), ``image`` (absolute path) and ``loes_score``
    (float, NaN when the source gives none or an unusable one), then the source's other columns.

    Raises:
        LoesError: when a source does not exist, a folder holds no NIfTI file, or a table cannot
            be read or has errors other than in its scores (naming each file and row).
    """
    tables = []
    for source in sources:
        path = Path(source).expanduser()
        if is_nifti(path):
            tables.append(_file_rows([path]))
        elif path.is_dir() and not _is_bids(path):
            images = sorted(p for p in path.rglob("*") if is_nifti(p) and p.is_file())
            if not images:
                raise LoesError(
                    f"{source} holds no NIfTI file (.nii or .nii.gz) and is not a BIDS dataset; "
                    "give NIfTI files, a folder of them, a manifest, the lab's CSV or a BIDS root."
                )
            tables.append(_file_rows(images))
        elif path.is_file() and path.suffix.lower() not in TABLE_SUFFIXES:
            tables.append(_file_rows([path]))  # DICOM, PNG, ...: its row says it is not NIfTI
        elif path.exists():
            tables.append(_table_rows(path, include_gd, images_dir, suffix, format))
        else:
            raise LoesError(
                f"{source} does not exist; give NIfTI files, a folder of them, a manifest, the "
                "lab's CSV or a BIDS root."
            )
    if not tables:
        raise LoesError("no SOURCE given; name NIfTI files, folders or tables to predict.")
    table = pd.concat(tables, ignore_index=True)
    table["loes_score"] = table["loes_score"].astype(float)
    first = list(SCAN_COLUMNS)
    return table[first + [c for c in table.columns if c not in first]]
