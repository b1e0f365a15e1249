"""The row checks every format goes through once its reader is done: one final table.

Ids present, ``gd`` flags readable (post-contrast rows dropped unless asked for), scores
numbers within 0-34, no scan or image listed twice, no subject under two spellings of its id,
images present (or the actual reason they cannot be reached), item subscores within their
range and summing to the total, lesion masks present. Every problem is recorded and the checks
go on.
"""

from __future__ import annotations

import math
import re

import pandas as pd

from loes.data.loes_items import ITEMS, MAX_LOES_SCORE
from loes.data.readers.delimited import is_missing, parse_flag, parse_number
from loes.data.readers.files import DOES_NOT_EXIST, likely_cause, unreachable_text
from loes.data.readers.lab import LAB_IMAGE_PATTERN
from loes.data.readers.reading import SET_ASIDE_COLUMNS, RawTable, TableReading, scan_label

__all__ = ["FIRST_COLUMNS", "POST_CONTRAST", "check_rows"]

#: the columns every checked table starts with, in this order
FIRST_COLUMNS = ("subject", "session", "image", "loes_score", "gd")

#: why a post-contrast row is set aside (see ``TableReading.set_aside``)
POST_CONTRAST = (
    "post-contrast scan (gd); left out unless data.include_gd (--include-gd): contrast changes "
    "how lesions look"
)


def check_rows(
    raw: RawTable, reading: TableReading, include_gd: bool
) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Check the values of every row of ``raw``, recording problems in ``reading``.

    Returns the rows kept (post-contrast rows dropped unless ``include_gd``, and recorded in
    ``reading.set_aside`` with the reason) and each one's
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
            reading.set_aside = _set_aside(frame[frame["gd"]], POST_CONTRAST)
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
    _check_subject_spellings(frame, where, reading)
    _check_images_exist(frame, where, raw, reading)
    _check_items(frame, where, reading)
    for column in [c for c in ("lesion_mask", "brain_mask") if c in frame]:
        for place, mask in zip(where, frame[column], strict=True):
            reason = None if is_missing(mask) else unreachable_text(mask)
            if reason == DOES_NOT_EXIST:
                reading.warning(place, f"{column} not found: {mask}; fix the path or clear it.")
            elif reason is not None:
                reading.warning(place, f"{column} {mask} {reason}")

    for column in frame.columns:
        if column not in FIRST_COLUMNS:
            frame[column] = _maybe_numeric(frame[column])
    frame = frame[list(FIRST_COLUMNS) + [c for c in frame.columns if c not in FIRST_COLUMNS]]
    return frame.reset_index(drop=True), tuple(where)


def _set_aside(rows: pd.DataFrame, reason: str) -> pd.DataFrame:
    """``rows`` as :data:`~loes.data.readers.reading.SET_ASIDE_COLUMNS`, each with ``reason``."""
    scores = [math.nan if (v := parse_number(s)) is None else v for s in rows["loes_score"]]
    return pd.DataFrame(
        {
            "image": rows["image"].tolist(),
            "subject": rows["subject"].tolist(),
            "session": rows["session"].tolist(),
            "loes_score": pd.Series(scores, dtype=float).tolist(),
            "reason": [reason] * len(rows),
        },
        columns=list(SET_ASIDE_COLUMNS),
    )


def _parse_score(raw: object, where: str, column: str, reading: TableReading) -> float:
    top = f"{MAX_LOES_SCORE:g}"
    if is_missing(raw):
        reading.error(
            where, f"{column} is missing; fill in the total Loes score (0-{top}) or drop the row."
        )
        return math.nan
    score = parse_number(raw)
    if score is None:
        text = str(raw).strip()
        if re.fullmatch(r"[+-]?[0-9]*,[0-9]+", text):
            fix = f"write it with a decimal point ({text.replace(',', '.')})"
        else:
            fix = f"write the total Loes score as a number from 0 to {top}"
        reading.error(where, f"{column} {text!r} is not a number; {fix}.")
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
            scan = f"{scan_label(subject, session)}{' (post-contrast)' if gd else ''}"
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
    """One error per image that cannot be reached, naming the cause: not found (the path is
    wrong), a broken link (content not fetched), a folder closed to the user..."""
    unreachable = [
        (place, image, reason)
        for place, image in zip(where, frame["image"], strict=True)
        if image and (reason := unreachable_text(image)) is not None
    ]
    if not unreachable:
        return
    if (
        raw.guessed_images_dir is not None
        and len(unreachable) == len(frame)
        and all(reason == DOES_NOT_EXIST for _, _, reason in unreachable)
    ):
        what = "the image is not" if len(frame) == 1 else f"none of the {len(frame)} images is"
        reading.error(
            reading.source,
            f"{what} in {raw.guessed_images_dir}; pass the folder holding "
            f"{LAB_IMAGE_PATTERN} files with --images-dir.",
        )
        return
    for place, image, reason in unreachable:
        if reason == DOES_NOT_EXIST:
            cause = likely_cause(image)
            likely = f"; most likely {cause}" if cause else ""
            message = f"image file not found: {image}{likely}; fix the path ({raw.image_hint})."
        else:
            message = f"image {image} {reason}"
        reading.error(place, message)


def _check_subject_spellings(frame: pd.DataFrame, where: list[str], reading: TableReading) -> None:
    """Warn about subject ids that differ only by leading zeros, case, blanks or a ``sub-``
    prefix (``004`` and ``4``: a spreadsheet dropped the zeros): to loes they are two subjects,
    so the folds may put the same brain in training and test."""
    first: dict[str, tuple[str, str]] = {}  # spelling -> its first place and its key
    for place, subject in zip(where, frame["subject"], strict=True):
        if subject and subject not in first:
            first[subject] = (place, _subject_key(subject))
    by_key: dict[str, list[str]] = {}
    for subject, (_, key) in first.items():
        by_key.setdefault(key, []).append(subject)
    rows = frame["subject"].value_counts()
    for spellings in by_key.values():
        kept = spellings[0]
        for other in spellings[1:]:
            n = int(rows[other])
            reading.warning(
                first[other][0],
                f"subject {other!r} ({n} row{'' if n == 1 else 's'}) and subject {kept!r} "
                f"(first at {first[kept][0]}) differ only by {_spelling_difference(kept, other)}, "
                "so loes counts two subjects and may put the same brain in training and test. "
                "If they are one person, write the id the same way in every row; if not, make "
                "the ids clearly different.",
            )


#: the ways one subject id gets spelt differently, each with how to undo it
_SPELLINGS = {
    "blanks": lambda s: re.sub(r"\s+", "", s),
    "case": str.casefold,
    "a sub- prefix": lambda s: re.sub(r"^sub[-_]", "", s),  # after casefold: Sub- too
    "leading zeros": lambda s: re.sub(r"(?<![0-9])0+(?=[0-9])", "", s),
}


def _subject_key(subject: str, skip: str | None = None) -> str:
    for name, undo in _SPELLINGS.items():
        if name != skip:
            subject = undo(subject)
    return subject


def _spelling_difference(a: str, b: str) -> str:
    """What tells two spellings of one id apart, e.g. ``"leading zeros"`` or ``"case and a
    sub- prefix"``: each way of spelling without which they would not match."""
    ways = [name for name in _SPELLINGS if _subject_key(a, name) != _subject_key(b, name)]
    if not ways:  # only a combination tells them apart
        return "blanks, case, a sub- prefix or leading zeros"
    return ways[0] if len(ways) == 1 else f"{', '.join(ways[:-1])} and {ways[-1]}"


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
    value = parse_number(raw)
    return math.nan if value is None else value


def _maybe_numeric(column: pd.Series) -> pd.Series:
    """Numbers as floats when every filled cell is a number, otherwise the column unchanged."""
    if column.dtype.kind in "biuf":
        return column
    filled = [v for v in column if not is_missing(v)]
    if not filled:
        return column
    if any(parse_number(v) is None for v in filled):
        return column
    return pd.Series(
        [math.nan if is_missing(v) else parse_number(v) for v in column], index=column.index
    )
