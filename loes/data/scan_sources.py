"""The scans to score with a trained model, from whatever the user points at: scans in any
format of :data:`loes.data.readers.scans.SCAN_FORMATS` (NIfTI, ``.hdr``/``.img`` pairs, MGH,
DICOM series folders), folders of them, or any table ``loes`` reads (manifest, the lab's CSV,
BIDS), scores optional.

Unlike ``load_dataset`` (training, where every scan needs a score), a missing or unusable score
only leaves that scan's ``loes_score`` empty; images are not opened here (a scan that cannot
be read is the prediction's own row, with the reason).
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from loes.data.problems import Problem, errors_message, plural
from loes.data.readers import read_table
from loes.data.readers.dicom import is_dicom_file
from loes.data.readers.scans import FORMATS_TEXT, find_scans, format_by_name, scan_stem
from loes.errors import LoesError

__all__ = ["SCAN_COLUMNS", "TABLE_SUFFIXES", "is_nifti", "is_scan_source", "read_scans"]

#: the columns of :func:`read_scans`' table, in this order, before any the source adds
SCAN_COLUMNS = ("subject", "session", "image", "loes_score")
_NIFTI = (".nii", ".nii.gz")
_ENTITY = re.compile(r"(?:^|_)(sub|ses)-([A-Za-z0-9]+)")
#: markers of a BIDS dataset root, as opposed to a plain folder of NIfTI files
_BIDS_MARKERS = ("dataset_description.json", "participants.tsv")


#: where reading says what it set aside (the loes command prints it on stderr)
_log = logging.getLogger(__name__)


def is_nifti(path: str | os.PathLike) -> bool:
    """Whether the file name ends in ``.nii`` or ``.nii.gz`` (any case)."""
    return str(path).lower().endswith(_NIFTI)


def is_scan_source(source: str | os.PathLike) -> bool:
    """Whether ``source`` is scans rather than a table or a BIDS root: a scan file (by its name,
    or a DICOM or binary file) or a folder of scans that is not a BIDS dataset."""
    path = Path(source).expanduser()
    if path.is_dir():
        return not _is_bids(path)
    return format_by_name(path) is not None or (path.is_file() and _is_scan_file(path))


def _is_bids(folder: Path) -> bool:
    return any((folder / m).is_file() for m in _BIDS_MARKERS) or any(folder.glob("sub-*/"))


def _ids(image: Path, root: Path | None = None) -> tuple[str, str]:
    """``(subject, session)`` from BIDS entities in the file (or DICOM folder) name
    (``sub-01_ses-02_T1w``), else the name without its extension and no session; with
    ``root``, the path under it (``sub01/mri/orig`` for ``orig.mgz``, a name many scans share)."""
    entities = dict(_ENTITY.findall(image.name))
    if "sub" in entities:
        return f"sub-{entities['sub']}", f"ses-{entities['ses']}" if "ses" in entities else ""
    if root is not None and image != root:
        return (image.parent.relative_to(root) / scan_stem(image)).as_posix(), ""
    return scan_stem(image), ""


def _file_rows(images: Iterable[Path], root: Path | None = None) -> pd.DataFrame:
    """One row per scan; scans found in the folder ``root`` whose names (without BIDS
    entities) repeat are named by their path under it instead."""
    images = list(images)
    ids = [_ids(image) for image in images]
    if root is not None:
        counts = Counter(ids)
        ids = [
            _ids(i, root) if counts[id_] > 1 else id_ for i, id_ in zip(images, ids, strict=True)
        ]
    rows = [
        (subject, session, os.path.abspath(image), math.nan)
        for image, (subject, session) in zip(images, ids, strict=True)
    ]
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
    for reason, rows in reading.set_aside.groupby("reason", sort=False):  # never dropped unsaid
        _log.warning("%s: %s set aside: %s", source, plural(len(rows), "scan"), reason)
    return reading.table


TABLE_SUFFIXES = frozenset({"", ".csv", ".tsv", ".tab", ".txt", ".xlsx", ".xls", ".ods"})
"""File suffixes read as tables; any other file is a scan of its own (one that cannot be
scored, a picture, gets its row with the reason). A DICOM file (its ``DICM`` marker) and a
binary file without extension are scans whatever their suffix."""
_SNIFF = 8192


#: images in formats loes does not read, which a folder of scans may hold (NRRD, MetaImage,
#: Philips PAR/REC, compressed archives of NIfTI)
_OTHER_IMAGES = (".nrrd", ".nhdr", ".mha", ".mhd", ".par", ".rec", ".nii.bz2", ".nii.zip", ".zip")


def _say_skipped(folder: Path) -> None:
    """Say which images under ``folder`` are skipped, in a format loes does not read, so that
    none is dropped without a word."""
    skipped = Counter(
        next(s for s in _OTHER_IMAGES if p.name.lower().endswith(s))
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(_OTHER_IMAGES)
    )
    if skipped:
        kinds = ", ".join(f"{n} {suffix}" for suffix, n in sorted(skipped.items()))
        _log.warning(
            "%s: %s skipped, in a format loes does not read (%s); convert them to NIfTI",
            folder,
            plural(sum(skipped.values()), "file"),
            kinds,
        )


def _is_scan_file(path: Path) -> bool:
    """A file that is a scan (or meant as one) rather than a table: any suffix but a table's,
    a DICOM file, or a binary file (NUL bytes) without extension."""
    if path.suffix.lower() not in TABLE_SUFFIXES or is_dicom_file(path):
        return True
    if path.suffix:
        return False
    try:
        with open(path, "rb") as handle:
            return b"\0" in handle.read(_SNIFF)
    except OSError:
        return False


def read_scans(
    sources: Iterable[str | os.PathLike],
    *,
    format: str | None = None,
    images_dir: str | os.PathLike | None = None,
    include_gd: bool = False,
    suffix: str = "T1w",
) -> pd.DataFrame:
    """One row per scan from every source, in the order given.

    Each source is a scan named by its extension (NIfTI ``.nii``/``.nii.gz``, a pair's
    ``.hdr``/``.img``, ``.mgz``/``.mgh``, ``.dcm``; it need not exist: predicting reports it),
    a DICOM file whatever its name, a folder, or a table read by
    :func:`loes.data.readers.read_table` (``format``, ``images_dir``, ``include_gd`` and
    ``suffix`` as there). A folder is a BIDS dataset when it holds ``dataset_description.json``,
    ``participants.tsv`` or ``sub-*`` folders; else every scan under it
    (:func:`loes.data.readers.scans.find_scans`: NIfTI, MGH, pairs, and each folder of DICOM
    files, itself included, as one scan), sorted. Any other file that is not a table (a picture,
    a binary file without extension) is a scan of its own, whose prediction row says why it
    cannot be read: it never stops the others.

    Returns a DataFrame with ``subject``, ``session`` (``""`` when unknown; BIDS ``sub-``/``ses-``
    entities of a scan's name are used, else its name without extension, or its path under the
    folder given when several scans found there share a name), ``image`` (absolute path),
    ``loes_score`` (float, NaN when the source gives none or an unusable one), then the
    source's other columns.

    Raises:
        LoesError: when a source does not exist, a folder holds no scan, or a table cannot be
            read or has errors other than in its scores (naming each file and row).
    """
    tables = []
    for source in sources:
        path = Path(source).expanduser()
        if format_by_name(path) is not None and not path.is_dir():
            tables.append(_file_rows([path]))
        elif path.is_dir() and not _is_bids(path):
            images = find_scans(path)
            if not images:
                raise LoesError(
                    f"{source} is not a BIDS dataset and holds no scan loes reads: {FORMATS_TEXT}. "
                    "Give scans, a folder of them, a manifest, the lab's CSV or a BIDS root."
                )
            tables.append(_file_rows(images, path))
            _say_skipped(path)
        elif path.is_file() and _is_scan_file(path):
            tables.append(_file_rows([path]))  # DICOM, PNG, ...: its row says what it is
        elif path.exists():
            tables.append(_table_rows(path, include_gd, images_dir, suffix, format))
        else:
            raise LoesError(
                f"{source} does not exist; give scans (NIfTI, MGH, .hdr/.img, DICOM folders), "
                "a folder of them, a manifest, the lab's CSV or a BIDS root."
            )
    if not tables:
        raise LoesError("no SOURCE given; name scans, folders or tables to predict.")
    table = pd.concat(tables, ignore_index=True)
    table["loes_score"] = table["loes_score"].astype(float)
    first = list(SCAN_COLUMNS)
    return table[first + [c for c in table.columns if c not in first]]
