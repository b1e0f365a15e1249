"""The row checks every format goes through once its reader is done: one final table.

Ids present, ``gd`` flags readable (post-contrast rows dropped unless asked for), scores
numbers within 0-34, no scan or image listed twice, images present, item subscores within
their range and summing to the total, lesion masks present. Every problem is recorded and
the checks go on.
"""

from __future__ import annotations

import math
import os

import pandas as pd

from loes.data.loes_items import ITEMS, MAX_LOES_SCORE
from loes.data.readers.delimited import is_missing, parse_flag
from loes.data.readers.lab import LAB_IMAGE_PATTERN
from loes.data.readers.reading import RawTable, TableReading

__all__ = ["FIRST_COLUMNS", "check_rows"]

#: the columns every checked table starts with, in this order
FIRST_COLUMNS = ("subject", "session", "image", "loes_score", "gd")


def check_rows(
    raw: RawTable, reading: TableReading, include_gd: bool
) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Check the values of every row of ``raw``, recording problems in ``reading``.

    Returns the rows kept (post-contrast rows dropped unless ``include_gd``) and each one's
    place for messages. The table's columns are ``FIRST_COLUMNS`` (``subject``, ``session``,
    ``image`` as stripped text, ``loes_score`` as a float, NaN when unusable, ``gd`` as a bool)
    followed by the source's other columns, as floats where every filled cell is a number.
    Columns whose name starts with ``_`` are dropped. Bad values are recorded, never raised.
    """
    frame = raw.table.reset_index(drop=True)
    frame = frame[[c for c in frame.columns if not str(c).startswith("_")]].copy()
    where = list(raw.where)
    score_where = list(raw.score_where if raw.score_where is not None else raw.where)
    unscored = list(raw.unscored if raw.unscored is not None else [False] * len(frame))
    for column in ("subject", "session", "image"):
        frame[column] = frame[column].map(lambda v: "" if is_missing(v) else str(v).strip())

    if "gd" in frame:
        flags = []
        for place, value in zip(where, frame["gd"], strict=True):
            flag = parse_flag(value)
            if isinstance(flag, str):
                reading.error(place, f"gd is {value!r}; write 1 for post-contrast, 0 otherwise.")
                flag = False
            flags.append(flag)
        frame["gd"] = pd.Series(flags, index=frame.index, dtype=bool)
        if not include_gd:
            frame = frame[~frame["gd"]].reset_index(drop=True)
            where, score_where, unscored = (
                [value for value, flag in zip(values, flags, strict=True) if not flag]
                for values in (where, score_where, unscored)
            )
    else:
        frame["gd"] = False

    ids = frame[["subject", "session", "image"]]
    for place, (subject, session, image) in zip(where, ids.itertuples(index=False), strict=True):
        for column, value in (("subject", subject), ("session", session)):
            if not value:
                reading.error(place, f"{column} is empty; every row needs a {column} id.")
        if image == "":
            reading.error(place, "image is empty; give the path of the scan's NIfTI file.")

    # scans already reported as having no score at all are not reported again
    frame["loes_score"] = [
        math.nan if skip else _parse_score(value, place, raw.score_column, reading)
        for value, place, skip in zip(frame["loes_score"], score_where, unscored, strict=True)
    ]
    _check_duplicates(frame, where, reading)
    _check_images_exist(frame, where, raw, reading)
    _check_items(frame, where, reading)
    if "lesion_mask" in frame:
        for place, mask in zip(where, frame["lesion_mask"], strict=True):
            if not is_missing(mask) and not os.path.exists(mask):
                reading.warning(place, f"lesion_mask not found: {mask}; fix the path or clear it.")

    for column in frame.columns:
        if column not in FIRST_COLUMNS:
            frame[column] = _maybe_numeric(frame[column])
    frame = frame[list(FIRST_COLUMNS) + [c for c in frame.columns if c not in FIRST_COLUMNS]]
    return frame.reset_index(drop=True), tuple(where)


def _parse_score(raw: object, where: str, column: str, reading: TableReading) -> float:
    top = f"{MAX_LOES_SCORE:g}"
    if is_missing(raw):
        reading.error(
            where, f"{column} is missing; fill in the total Loes score (0-{top}) or drop the row."
        )
        return math.nan
    try:
        score = float(str(raw).strip())
    except ValueError:
        reading.error(
            where,
            f"{column} {str(raw)!r} is not a number; write the total Loes score as a number "
            f"from 0 to {top}.",
        )
        return math.nan
    if not math.isfinite(score):
        reading.error(where, f"{column} is {raw!r}; write the total Loes score (0-{top}).")
        return math.nan
    if not 0 <= score <= MAX_LOES_SCORE:
        reading.error(
            where,
            f"{column} {score:g} is outside 0-{top}, the range of the Loes score; check for a "
            "typo or a score on another scale.",
        )
    elif abs(score * 2 - round(score * 2)) > 1e-6:
        reading.warning(
            where,
            f"{column} {score:g} is not a multiple of 0.5 (items score 0, 0.5 or 1); check for "
            "a typo (an average of several readers is fine).",
        )
    return score


def _check_duplicates(frame: pd.DataFrame, where: list[str], reading: TableReading) -> None:
    first_seen: dict[tuple, str] = {}
    keys = frame[["subject", "session", "gd"]].itertuples(index=False)
    for place, (subject, session, gd) in zip(where, keys, strict=True):
        if not subject or not session:
            continue
        key = (subject, session, gd)
        if key in first_seen:
            scan = f"{subject} {session}{' (post-contrast)' if gd else ''}"
            if reading.format == "bids":  # several runs: the user picks the one to score
                message = (
                    f"is a second image of {scan} (first: {first_seen[key]}); loes uses one scan "
                    "per session: move the other runs out of anat/ (e.g. into sourcedata/), or "
                    "list the scans to use in a manifest."
                )
            else:
                message = (
                    f"{scan} is listed again (first at {first_seen[key]}); keep one row per scan."
                )
            reading.error(place, message)
        else:
            first_seen[key] = place
    first_image: dict[str, str] = {}
    for place, image in zip(where, frame["image"], strict=True):
        if not image:
            continue
        if image in first_image:
            reading.error(
                place,
                f"image {image} is also listed at {first_image[image]}; each scan needs its own "
                "file (a copy-paste slip?).",
            )
        else:
            first_image[image] = place


def _check_images_exist(
    frame: pd.DataFrame, where: list[str], raw: RawTable, reading: TableReading
) -> None:
    missing = [
        (place, image)
        for place, image in zip(where, frame["image"], strict=True)
        if image and not os.path.exists(image)
    ]
    if not missing:
        return
    if raw.guessed_images_dir is not None and len(missing) == len(frame):
        reading.error(
            reading.source,
            f"none of the {len(frame)} images is in {raw.guessed_images_dir}; pass the "
            f"folder holding {LAB_IMAGE_PATTERN} files with --images-dir.",
        )
        return
    for place, image in missing:
        reading.error(place, f"image file not found: {image}; fix the path ({raw.image_hint}).")


def _check_items(frame: pd.DataFrame, where: list[str], reading: TableReading) -> None:
    """Item subscores, when all are given: each within its range, summing to the total."""
    if not all(item.column in frame for item in ITEMS):
        return
    for i, place in enumerate(where):
        summed = 0.0
        for item in ITEMS:
            raw = frame.at[i, item.column]
            value = math.nan if is_missing(raw) else _as_float(raw)
            if not is_missing(raw) and not 0 <= value <= item.max:
                reading.error(
                    place, f"{item.column} is {raw!r}; this item scores from 0 to {item.max:g}."
                )
            summed += value
        total = frame.at[i, "loes_score"]
        if math.isfinite(summed) and math.isfinite(total) and abs(summed - total) > 1e-6:
            reading.warning(
                place,
                f"the item subscores sum to {summed:g} but loes_score is {total:g}; one of them "
                "is wrong (the total is what the model learns).",
            )


def _as_float(raw: object) -> float:
    """``raw`` as a number; NaN (which fails every range check) when it is not one."""
    try:
        return float(str(raw).strip())
    except ValueError:
        return math.nan


def _maybe_numeric(column: pd.Series) -> pd.Series:
    """Numbers as floats when every filled cell is a number, otherwise the column unchanged."""
    if column.dtype.kind in "biuf":
        return column
    filled = [v for v in column if not is_missing(v)]
    if not filled:
        return column
    try:
        [float(v) for v in filled]
    except (TypeError, ValueError):
        return column
    return pd.Series([math.nan if is_missing(v) else float(v) for v in column], index=column.index)
