"""The project's own manifest: a CSV/TSV with one row per scan, image paths relative to it.

Columns ``subject``, ``session``, ``image`` (relative to the manifest's folder, or to
``--images-dir``, or absolute) are required, and ``loes_score`` to train on (``loes predict``
reads a manifest without it as unscored scans); optional columns (``gd``,
``age``, ``site``, ``pattern``, ``lesion_mask``, ``brain_mask``, item subscores...) are kept as
they are.
``loes synth`` writes this format.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from loes.data.readers.delimited import is_missing, read_delimited, require_columns
from loes.data.readers.reading import RawTable, TableReading
from loes.errors import LoesError

__all__ = ["REQUIRED_COLUMNS", "read_manifest"]

REQUIRED_COLUMNS = ("subject", "session", "image", "loes_score")
#: column names (lower case, letters only) a score column may be misspelt as
_SCORE_LIKE = frozenset({"loesscore", "loes", "score", "totalloes", "loestotal", "loesscoretotal"})
#: manifest columns holding paths, resolved like ``image``
_PATH_COLUMNS = ("image", "lesion_mask", "brain_mask")


def read_manifest(
    path: Path, images_dir: str | os.PathLike | None, reading: TableReading
) -> RawTable | None:
    """Read the manifest at ``path``; relative paths in ``image``, ``lesion_mask`` and
    ``brain_mask`` are made absolute against ``images_dir``, or the manifest's folder when it
    is ``None``.

    Returns ``None`` (with an error recorded in ``reading``) when a required column is missing,
    but for ``loes_score``: without it the rows are read unscored and one error names the
    column, which training stops on and ``loes predict`` (new scans, no scores) passes over.

    Raises:
        LoesError: when the file cannot be read as a table.
    """
    table = read_delimited(path)
    scored = "loes_score" in table.columns
    needed = [c for c in REQUIRED_COLUMNS if c != "loes_score"]
    expected = [*needed, "and loes_score to train on"]
    if not require_columns(path, table, needed, "a manifest", reading, expected):
        return None
    like = [c for c in table.columns if re.sub(r"[^a-z]", "", str(c).lower()) in _SCORE_LIKE]
    if not scored and like:  # never read as unscored: predict would drop the scores unsaid
        raise LoesError(
            f"column {like[0]!r} looks like the score; name it loes_score (the manifest's score "
            "column), or remove it to predict without scores."
        )
    if not scored:
        reading.error(
            path.name,
            f"no loes_score column (found {', '.join(map(str, table.columns))}); a manifest to "
            "train on needs one (loes predict scores scans without it).",
        )
        table = table.assign(loes_score="")
    base = Path(images_dir).expanduser() if images_dir is not None else path.parent
    where = tuple(
        f"{path.name} row {row} ({s} {e})"
        for row, s, e in zip(table.index, table["subject"], table["session"], strict=True)
    )
    frame = table.reset_index(drop=True)
    for column in _PATH_COLUMNS:
        if column in frame:
            frame[column] = [_absolute(base, value) for value in frame[column]]
    return RawTable(
        frame,
        where,
        unscored=None if scored else (True,) * len(frame),
        image_hint=(
            f"relative paths are read from {'--images-dir' if images_dir else 'the manifest'}'s "
            f"folder {os.path.abspath(base)}"
        ),
    )


def _absolute(base: Path, image: object) -> str:
    if is_missing(image):
        return ""
    path = Path(str(image).strip()).expanduser()
    return os.path.abspath(path if path.is_absolute() else base / path)
