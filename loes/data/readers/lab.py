"""The reference lab's CSV: one row per scan, images found by name in a folder beside it.

Columns ``anonymized_subject_id``, ``anonymized_session_id``, ``scan``, ``loes-score`` and
``Gd-enhanced``; each scan's image is ``LAB_IMAGE_PATTERN`` in ``--images-dir`` (default: the
CSV's folder).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from loes.data.readers.delimited import is_missing, parse_flag, read_delimited, require_columns
from loes.data.readers.reading import RawTable, TableReading

__all__ = ["LAB_COLUMNS", "LAB_IMAGE_PATTERN", "read_lab"]

LAB_IMAGE_PATTERN = "{subject}_{session}_space-MNI_brain_mprage_RAVEL.nii.gz"
#: the lab's column names and ours
LAB_COLUMNS = {
    "anonymized_subject_id": "subject",
    "anonymized_session_id": "session",
    "loes-score": "loes_score",
    "Gd-enhanced": "gd",
    "scan": "scan",
}
_LAB_REQUIRED = ("anonymized_subject_id", "anonymized_session_id", "loes-score")
_GD_TOKEN = re.compile(r"(^|[^a-z])gd([^a-z]|$)", re.IGNORECASE)


def read_lab(
    path: Path, images_dir: str | os.PathLike | None, reading: TableReading
) -> RawTable | None:
    """Read the lab's CSV at ``path``, its columns renamed to ours (``subject``, ``session``,
    ``loes_score``, ``gd``, ``scan``) and ``image`` added: ``LAB_IMAGE_PATTERN`` in
    ``images_dir``, or in the CSV's folder when it is ``None``.

    A row is post-contrast (``gd``) when its ``Gd-enhanced`` flag is set or its ``scan`` name
    says "Gd"; an unreadable flag is kept as text for the checks to report.

    Returns ``None`` (with an error recorded in ``reading``) when a required column is missing.

    Raises:
        LoesError: when the file cannot be read as a table.
    """
    table = read_delimited(path)
    if not require_columns(path, table, _LAB_REQUIRED, "the lab's CSV", reading, LAB_COLUMNS):
        return None
    frame = table.rename(columns=LAB_COLUMNS)
    folder = Path(images_dir).expanduser() if images_dir is not None else path.parent
    frame["image"] = [
        os.path.abspath(folder / LAB_IMAGE_PATTERN.format(subject=s, session=e))
        for s, e in zip(frame["subject"], frame["session"], strict=True)
    ]
    by_name = frame["scan"].map(_is_gd_name) if "scan" in frame else pd.Series(False, frame.index)
    flags = frame["gd"].map(parse_flag) if "gd" in frame else by_name
    frame["gd"] = [
        flag if isinstance(flag, str) else bool(flag or named)
        for flag, named in zip(flags, by_name, strict=True)
    ]
    where = tuple(
        f"{path.name} row {row} ({s} {e})"
        for row, s, e in zip(frame.index, frame["subject"], frame["session"], strict=True)
    )
    frame = frame.reset_index(drop=True)
    return RawTable(
        frame,
        where,
        image_hint=(
            f"the lab's images are named {LAB_IMAGE_PATTERN} in "
            f"{'--images-dir' if images_dir else 'the CSV folder'} {os.path.abspath(folder)}"
        ),
        score_column="loes-score",
        guessed_images_dir=os.path.abspath(folder) if images_dir is None else None,
    )


def _is_gd_name(scan: object) -> bool:
    text = "" if is_missing(scan) else str(scan)
    return "Gd" in text or bool(_GD_TOKEN.search(text))
