"""Read a cohort into one table, one row per scan, from any of the three formats we accept.

1. ``manifest`` (``readers.manifest``): the project's own CSV/TSV, what ``loes synth`` writes.
2. ``lab`` (``readers.lab``): the reference lab's CSV plus a folder of
   ``{subject}_{session}_space-MNI_brain_mprage_RAVEL.nii.gz`` images.
3. ``bids`` (``readers.bids``): a BIDS dataset root, ``sub-*/[ses-*/]anat/*_T1w.nii[.gz]``,
   with scores in ``sub-*/sub-*_sessions.tsv``, ``phenotype/loes.tsv`` or ``participants.tsv``.

Each reader returns a ``RawTable``; the checks of ``readers.checks`` (the same for every
format) turn it into the final table. Text tables are read by ``readers.delimited`` (any
separator, decimal commas); ``readers.files`` names why a file cannot be opened. Every step
keeps going after a problem so that ``loes validate`` can list them all; ``load_dataset``
raises one ``LoesError`` naming them.

The scans the tables name are opened by ``readers.scans`` (:func:`load_scan`): NIfTI,
``.hdr``/``.img`` pairs and FreeSurfer MGH through nibabel, DICOM series through SimpleITK
(``readers.dicom``), each as a nibabel image with its RAS affine.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from loes.data.problems import errors_message
from loes.data.readers.bids import read_bids
from loes.data.readers.checks import check_rows
from loes.data.readers.delimited import read_delimited
from loes.data.readers.files import DOES_NOT_EXIST, unreachable_text
from loes.data.readers.lab import LAB_COLUMNS, LAB_IMAGE_PATTERN, read_lab
from loes.data.readers.manifest import REQUIRED_COLUMNS, read_manifest
from loes.data.readers.reading import (
    NO_SESSION,
    SET_ASIDE_COLUMNS,
    RawTable,
    TableReading,
    scan_label,
)
from loes.data.readers.scans import (
    SCAN_FORMATS,
    ScanError,
    find_scans,
    load_scan,
    open_scan,
    scan_format,
)
from loes.errors import LoesError

__all__ = [
    "FORMATS",
    "LAB_IMAGE_PATTERN",
    "NO_SESSION",
    "REQUIRED_COLUMNS",
    "SCAN_FORMATS",
    "SET_ASIDE_COLUMNS",
    "RawTable",
    "ScanError",
    "TableReading",
    "detect_format",
    "find_scans",
    "load_dataset",
    "load_scan",
    "open_scan",
    "read_table",
    "scan_format",
    "scan_label",
]

FORMATS = ("manifest", "lab", "bids")


def load_dataset(
    source: str | os.PathLike,
    format: str | None = None,
    images_dir: str | os.PathLike | None = None,
    include_gd: bool = False,
    suffix: str = "T1w",
) -> pd.DataFrame:
    """Read a manifest, the lab's CSV or a BIDS dataset into one table, one row per scan.

    Columns: ``subject``, ``session``, ``image`` (absolute path), ``loes_score`` (float),
    ``gd`` (bool, post-contrast) and every optional column of the source. Post-contrast scans
    are left out unless ``include_gd``. The table is checked (columns, scores, duplicates,
    images present); image contents are checked by ``validate_dataset``.

    Raises:
        LoesError: naming each bad file or row and how to fix it.

    Examples::

        >>> table = load_dataset("data/synthetic/manifest.csv")  # doctest: +SKIP
        >>> table[["subject", "session", "loes_score"]].head(2)  # doctest: +SKIP
             subject session  loes_score
        0  sub-001  ses-01         3.0
        1  sub-001  ses-02         4.5
    """
    reading = read_table(source, format, images_dir, include_gd, suffix)
    if reading.errors or reading.table is None:
        raise LoesError(errors_message(str(source), reading.errors))
    return reading.table


def detect_format(source: str | os.PathLike) -> str:
    """Tell which format ``source`` is: a folder is BIDS, a table is told by its columns.

    Returns one of ``FORMATS``.

    Raises:
        LoesError: when ``source`` does not exist, cannot be read, or has neither the lab's
            columns nor the manifest's.
    """
    try:
        return _detect_format(Path(source).expanduser())
    except LoesError as error:
        raise LoesError(f"{source}: {error}") from None


def read_table(
    source: str | os.PathLike,
    format: str | None = None,
    images_dir: str | os.PathLike | None = None,
    include_gd: bool = False,
    suffix: str = "T1w",
) -> TableReading:
    """Read ``source`` with the reader of its format (told by ``detect_format`` when ``None``)
    and check its rows, collecting every problem instead of raising.

    The arguments are those of ``load_dataset``; the reading's ``table`` is ``None`` when the
    source could not be read at all.
    """
    path = Path(source).expanduser()
    reading = TableReading(str(source), format)
    if format is not None and format not in FORMATS:
        reading.error(str(source), f"unknown format {format!r}; use one of {', '.join(FORMATS)}.")
        return reading
    try:
        reading.format = format or _detect_format(path)
        if reading.format == "bids":
            if images_dir is not None:
                raise LoesError(
                    "--images-dir is for a manifest or the lab's CSV; a BIDS dataset holds its "
                    "own images: leave it out."
                )
            raw = read_bids(path, suffix, reading)
        else:
            reason = unreachable_text(path)
            if reason is not None:
                raise LoesError(
                    "not found; give the path of the table." if reason == DOES_NOT_EXIST else reason
                )
            if not path.is_file():
                raise LoesError(
                    f"is not a file; the {reading.format} format is a CSV or TSV table."
                )
            if images_dir is not None and not Path(images_dir).expanduser().is_dir():
                raise LoesError(  # one message, not one per image
                    f"--images-dir {images_dir} is not a folder; give the folder that holds the "
                    "images."
                )
            reader = read_manifest if reading.format == "manifest" else read_lab
            raw = reader(path, images_dir, reading)
    except LoesError as error:
        reading.error(str(source), str(error))
        return reading
    if raw is not None:
        reading.table, reading.where = check_rows(raw, reading, include_gd)
    return reading


def _detect_format(path: Path) -> str:
    if path.is_dir():
        return "bids"
    reason = unreachable_text(path)
    if reason == DOES_NOT_EXIST:
        raise LoesError("not found; give a manifest (CSV/TSV), the lab's CSV or a BIDS folder.")
    if reason is not None:
        raise LoesError(reason)
    columns = set(read_delimited(path).columns)
    if columns & set(LAB_COLUMNS) - {"scan"}:
        return "lab"
    if columns & set(REQUIRED_COLUMNS):
        return "manifest"
    one = (
        " Only one column was found: separate the columns with commas, semicolons or tabs."
        if len(columns) == 1
        else ""
    )
    raise LoesError(
        f"cannot tell the format from the columns ({', '.join(sorted(columns))}); a manifest "
        f"needs {', '.join(REQUIRED_COLUMNS)}, the lab's CSV needs {', '.join(LAB_COLUMNS)}. "
        f"Rename the columns or pass --format.{one}"
    )
