"""Read a cohort into one table, one row per scan, from any of the three formats we accept.

1. ``manifest``: the project's own CSV/TSV (what ``loes synth`` writes) with ``subject``,
   ``session``, ``image`` (relative to the manifest's folder, or absolute) and ``loes_score``,
   plus optional columns (``gd``, ``age``, ``site``, ``pattern``, ``lesion_mask``, item
   subscores...) that are kept as they are.
2. ``lab``: the reference lab's CSV (``anonymized_subject_id, anonymized_session_id, scan,
   loes-score, Gd-enhanced``) plus a folder of
   ``{subject}_{session}_space-MNI_brain_mprage_RAVEL.nii.gz`` images.
3. ``bids``: a BIDS dataset root, ``sub-*/[ses-*/]anat/*_T1w.nii[.gz]``, with scores in
   ``phenotype/loes.tsv``, ``sub-*/sub-*_sessions.tsv`` or ``participants.tsv``.

Every reader keeps reading after a problem so that ``loes validate`` can list them all;
``load_dataset`` raises one ``LoesError`` naming them.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from loes.data.loes_items import ITEMS
from loes.data.problems import Problem, errors_message
from loes.errors import LoesError

__all__ = [
    "FORMATS",
    "LAB_IMAGE_PATTERN",
    "MAX_LOES_SCORE",
    "NO_SESSION",
    "REQUIRED_COLUMNS",
    "TableReading",
    "detect_format",
    "load_dataset",
    "read_table",
]

FORMATS = ("manifest", "lab", "bids")
REQUIRED_COLUMNS = ("subject", "session", "image", "loes_score")
MAX_LOES_SCORE = 34.0
#: session label given to scans of a BIDS dataset without ``ses-*`` folders
NO_SESSION = "ses-none"
LAB_IMAGE_PATTERN = "{subject}_{session}_space-MNI_brain_mprage_RAVEL.nii.gz"
_LAB_COLUMNS = {
    "anonymized_subject_id": "subject",
    "anonymized_session_id": "session",
    "loes-score": "loes_score",
    "Gd-enhanced": "gd",
    "scan": "scan",
}
_LAB_REQUIRED = ("anonymized_subject_id", "anonymized_session_id", "loes-score")
_MISSING = {"", "n/a", "na", "N/A", "NA"}
#: manifest columns holding paths, resolved like ``image``
_PATH_COLUMNS = ("image", "lesion_mask")
_TRUE = {"1", "1.0", "true", "yes", "y"}
_FALSE = {"0", "0.0", "false", "no", "n"}
_GD_TOKEN = re.compile(r"(^|[^a-z])gd([^a-z]|$)", re.IGNORECASE)


@dataclass
class TableReading:
    """A table as read, with every problem met on the way (``table`` is None if unreadable).

    Besides the public columns the table has private ``_where`` (the row, for messages) and
    ``_score_where`` (where the score came from) columns; ``load_dataset`` drops them.
    """

    source: str
    format: str | None
    table: pd.DataFrame | None = None
    problems: list[Problem] = field(default_factory=list)

    def error(self, where: str, message: str) -> None:
        self.problems.append(Problem("error", where, message))

    def warning(self, where: str, message: str) -> None:
        self.problems.append(Problem("warning", where, message))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


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
    return public_columns(reading.table)


def public_columns(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` without the private bookkeeping columns, index reset."""
    keep = [c for c in table.columns if not str(c).startswith("_")]
    return table[keep].reset_index(drop=True)


def detect_format(source: str | os.PathLike) -> str:
    """Tell which format ``source`` is: a folder is BIDS, a table is told by its columns."""
    try:
        return _detect_format(Path(source).expanduser())
    except LoesError as error:
        raise LoesError(f"{source}: {error}") from None


def _detect_format(path: Path) -> str:
    if path.is_dir():
        return "bids"
    if not path.exists():
        raise LoesError("not found; give a manifest (CSV/TSV), the lab's CSV or a BIDS folder.")
    columns = set(_read_delimited(path).columns)
    if columns & set(_LAB_COLUMNS) - {"scan"}:
        return "lab"
    if columns & set(REQUIRED_COLUMNS):
        return "manifest"
    raise LoesError(
        f"cannot tell the format from the columns ({', '.join(sorted(columns))}); a manifest "
        f"needs {', '.join(REQUIRED_COLUMNS)}, the lab's CSV needs {', '.join(_LAB_COLUMNS)}. "
        "Rename the columns or pass --format."
    )


def read_table(
    source: str | os.PathLike,
    format: str | None = None,
    images_dir: str | os.PathLike | None = None,
    include_gd: bool = False,
    suffix: str = "T1w",
) -> TableReading:
    """Read ``source`` and check the table, collecting every problem instead of raising."""
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
            frame = _read_bids(path, suffix, reading)
        else:
            if not path.is_file():
                raise LoesError(
                    f"is not a file; the {reading.format} format is a CSV or TSV table."
                )
            table = _read_delimited(path)
            reader = _read_manifest if reading.format == "manifest" else _read_lab
            frame = reader(path, table, images_dir, reading)
    except LoesError as error:
        reading.error(str(source), str(error))
        return reading
    if frame is not None:
        reading.table = _check_rows(frame, reading, include_gd)
    return reading


# --- the three formats ---------------------------------------------------------------------


def _has_columns(
    path: Path,
    table: pd.DataFrame,
    required,
    what: str,
    reading: TableReading,
    expected=None,
) -> bool:
    """Record an error naming the missing columns; True when none is missing."""
    missing = [c for c in required if c not in table.columns]
    if missing:
        reading.error(
            path.name,
            f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} (found "
            f"{', '.join(map(str, table.columns))}); {what} needs "
            f"{', '.join(expected if expected is not None else required)}.",
        )
    return not missing


def _read_manifest(
    path: Path, table: pd.DataFrame, images_dir: str | os.PathLike | None, reading: TableReading
) -> pd.DataFrame | None:
    if not _has_columns(path, table, REQUIRED_COLUMNS, "a manifest", reading):
        return None
    base = Path(images_dir).expanduser() if images_dir is not None else path.parent
    frame = table.copy()
    frame["_where"] = [
        f"{path.name} row {i + 2} ({s} {e})"
        for i, (s, e) in enumerate(zip(frame["subject"], frame["session"], strict=True))
    ]
    for column in _PATH_COLUMNS:
        if column in frame:
            frame[column] = [_absolute(base, value) for value in frame[column]]
    frame.attrs["image_hint"] = (
        f"relative paths are read from {'--images-dir' if images_dir else 'the manifest'}'s "
        f"folder {base}"
    )
    return frame


def _read_lab(
    path: Path, table: pd.DataFrame, images_dir: str | os.PathLike | None, reading: TableReading
) -> pd.DataFrame | None:
    if not _has_columns(path, table, _LAB_REQUIRED, "the lab's CSV", reading, _LAB_COLUMNS):
        return None
    frame = table.rename(columns=_LAB_COLUMNS)
    folder = Path(images_dir).expanduser() if images_dir is not None else path.parent
    frame["image"] = [
        os.path.abspath(folder / LAB_IMAGE_PATTERN.format(subject=s, session=e))
        for s, e in zip(frame["subject"], frame["session"], strict=True)
    ]
    # a row is post-contrast when its scan name says "Gd" or its Gd-enhanced flag is set;
    # an unreadable flag is kept as text so that the row checks report it
    by_name = frame["scan"].map(_is_gd_name) if "scan" in frame else pd.Series(False, frame.index)
    flags = frame["gd"].map(_parse_flag) if "gd" in frame else by_name
    frame["gd"] = [
        flag if isinstance(flag, str) else bool(flag or named)
        for flag, named in zip(flags, by_name, strict=True)
    ]
    frame["_where"] = [
        f"{path.name} row {i + 2} ({s} {e})"
        for i, (s, e) in enumerate(zip(frame["subject"], frame["session"], strict=True))
    ]
    frame.attrs["score_column"] = "loes-score"
    frame.attrs["image_hint"] = (
        f"the lab's images are named {LAB_IMAGE_PATTERN} in "
        f"{'--images-dir' if images_dir else 'the CSV folder'} {folder}"
    )
    if images_dir is None:
        frame.attrs["lab_without_images_dir"] = str(folder)
    return frame


def _read_bids(root: Path, suffix: str, reading: TableReading) -> pd.DataFrame | None:
    if not root.is_dir():
        raise LoesError("is not a folder; a BIDS dataset is a folder of sub-* folders.")
    names = (f"_{suffix}.nii", f"_{suffix}.nii.gz")
    files = sorted(
        f
        for pattern in ("sub-*/anat/*", "sub-*/ses-*/anat/*")
        for f in root.glob(pattern)
        if f.name.endswith(names)
    )
    if not files:
        raise LoesError(
            f"no sub-*/[ses-*/]anat/*_{suffix}.nii[.gz] images in this folder; is it a BIDS "
            f"dataset? Pick another suffix with --suffix (now {suffix!r})."
        )
    rows = []
    for file in files:
        rel = file.relative_to(root)
        subject = rel.parts[0]
        session = rel.parts[1] if len(rel.parts) == 4 else NO_SESSION
        entities = _bids_entities(file.name, suffix)
        if f"sub-{entities.get('sub', '')}" != subject or (
            session != NO_SESSION and f"ses-{entities.get('ses', '')}" != session
        ):
            reading.error(
                str(rel),
                f"the file name does not match its folders ({subject}"
                f"{'' if session == NO_SESSION else ' ' + session}); rename it.",
            )
            continue
        rows.append(
            {
                "subject": subject,
                "session": session,
                "image": os.path.abspath(file),
                "gd": "ce" in entities,
                "_where": str(rel),
            }
        )
    if not rows:
        return None
    frame = pd.DataFrame(rows)
    frame["loes_score"] = ""
    frame["_score_where"] = frame["_where"]
    frame["_no_score"] = False
    _attach_bids_scores(root, frame, reading)
    frame.attrs["image_hint"] = f"images are found under {root}"
    return frame


def _attach_bids_scores(root: Path, frame: pd.DataFrame, reading: TableReading) -> None:
    """Fill ``loes_score`` and extra columns from phenotype/loes.tsv, sessions.tsv and
    participants.tsv, the most specific source winning."""
    n_sessions = frame.groupby("subject")["session"].transform("nunique")
    participants = _bids_score_file(root / "participants.tsv", root, False, reading)
    phenotype = _bids_score_file(root / "phenotype" / "loes.tsv", root, True, reading)
    sessions: dict[tuple[str, str | None], dict] = {}
    for subject in frame["subject"].unique():
        sessions |= _bids_score_file(
            root / subject / f"{subject}_sessions.tsv", root, True, reading, subject
        )
    extras: list[dict] = []
    for i, (subject, session) in enumerate(zip(frame["subject"], frame["session"], strict=True)):
        merged: dict = {}
        score = None
        # least to most specific: a per-session entry overrides a per-subject one
        candidates = [
            (participants.get((subject, None)), True),
            (sessions.get((subject, session)), False),
            (phenotype.get((subject, None)), True),
            (phenotype.get((subject, session)), False),
        ]
        for entry, per_subject in candidates:
            if entry is None:
                continue
            merged |= entry["extra"]
            if entry["score"] is None:
                continue
            if per_subject and n_sessions.iloc[i] > 1:
                reading.error(
                    entry["where"],
                    f"gives one loes_score for {subject}, who has {n_sessions.iloc[i]} sessions; "
                    "give one score per session (a session_id column in phenotype/loes.tsv or "
                    f"{subject}/{subject}_sessions.tsv).",
                )
                continue
            score = entry
        extras.append(merged)
        if score is None:
            reading.error(
                frame.at[i, "_where"],
                f"no Loes score for {subject} {session}: add a row with participant_id, "
                "session_id and loes_score to phenotype/loes.tsv (or a loes_score column to "
                f"{subject}/{subject}_sessions.tsv).",
            )
            frame.at[i, "_no_score"] = True
        else:
            frame.at[i, "loes_score"] = score["score"]
            frame.at[i, "_score_where"] = score["where"]
    extra = pd.DataFrame(extras, index=frame.index)
    for column in extra.columns:
        if column not in frame.columns:
            frame[column] = extra[column]


def _bids_score_file(
    path: Path, root: Path, per_session: bool, reading: TableReading, subject: str | None = None
) -> dict[tuple[str, str | None], dict]:
    """``{(subject, session or None): {"score", "extra", "where"}}`` from one BIDS TSV."""
    if not path.is_file():
        return {}
    name = str(path.relative_to(root))
    try:
        table = _read_delimited(path)
    except LoesError as error:
        reading.error(name, str(error))
        return {}
    id_columns = ["participant_id"] if subject is None else []
    if per_session and subject is not None:
        id_columns = ["session_id"]
    missing = [c for c in id_columns if c not in table.columns]
    if missing:
        reading.error(name, f"missing column {missing[0]}; BIDS tables are keyed by it.")
        return {}
    entries: dict[tuple[str, str | None], dict] = {}
    for i, row in table.iterrows():
        sub = subject or _bids_label("sub", row["participant_id"])
        ses = None
        if per_session and "session_id" in table.columns:
            ses = _bids_label("ses", row["session_id"])
        where = f"{name} row {int(i) + 2} ({sub}{'' if ses is None else ' ' + ses})"
        if (sub, ses) in entries:
            who = sub if ses is None else f"{sub} {ses}"
            reading.error(where, f"{who} is listed twice; keep one row.")
            continue
        raw = row.get("loes_score")
        extra = {
            k: v
            for k, v in row.items()
            if k not in ("participant_id", "session_id", "loes_score") and v not in _MISSING
        }
        entries[(sub, ses)] = {
            "score": None if raw is None or raw in _MISSING else raw,
            "extra": extra,
            "where": where,
        }
    return entries


# --- checks shared by every format ---------------------------------------------------------


def _check_rows(frame: pd.DataFrame, reading: TableReading, include_gd: bool) -> pd.DataFrame:
    """Check the values of every row; return the rows kept (post-contrast dropped)."""
    attrs = dict(frame.attrs)
    score_column = attrs.get("score_column", "loes_score")
    frame = frame.reset_index(drop=True)
    if "_score_where" not in frame:
        frame["_score_where"] = frame["_where"]
    for column in ("subject", "session", "image"):
        frame[column] = frame[column].map(lambda v: "" if _is_missing(v) else str(v).strip())

    if "gd" in frame:
        flags = []
        for where, raw in zip(frame["_where"], frame["gd"], strict=True):
            flag = _parse_flag(raw)
            if isinstance(flag, str):
                reading.error(where, f"gd is {raw!r}; write 1 for post-contrast, 0 otherwise.")
                flag = False
            flags.append(flag)
        frame["gd"] = pd.Series(flags, index=frame.index, dtype=bool)
        if not include_gd:
            frame = frame[~frame["gd"]].reset_index(drop=True)
    else:
        frame["gd"] = False

    ids = frame[["_where", "subject", "session", "image"]]
    for where, subject, session, image in ids.itertuples(index=False):
        for column, value in (("subject", subject), ("session", session)):
            if not value:
                reading.error(where, f"{column} is empty; every row needs a {column} id.")
        if image == "":
            reading.error(where, "image is empty; give the path of the scan's NIfTI file.")

    # scans already reported as having no score at all are not reported again
    unscored = frame["_no_score"] if "_no_score" in frame else pd.Series(False, frame.index)
    frame["loes_score"] = [
        math.nan if skip else _parse_score(raw, where, score_column, reading)
        for raw, where, skip in zip(
            frame["loes_score"], frame["_score_where"], unscored, strict=True
        )
    ]
    _check_duplicates(frame, reading)
    _check_images_exist(frame, reading, attrs)
    _check_items(frame, reading)
    if "lesion_mask" in frame:
        for where, mask in frame[["_where", "lesion_mask"]].itertuples(index=False):
            if not _is_missing(mask) and not os.path.exists(mask):
                reading.warning(where, f"lesion_mask not found: {mask}; fix the path or clear it.")

    for column in frame.columns:
        if column not in ("subject", "session", "image", "loes_score", "gd") and not str(
            column
        ).startswith("_"):
            frame[column] = _maybe_numeric(frame[column])
    first = ["subject", "session", "image", "loes_score", "gd"]
    frame = frame[first + [c for c in frame.columns if c not in first]]
    frame.attrs = {}
    return frame


def _parse_score(raw: object, where: str, column: str, reading: TableReading) -> float:
    if _is_missing(raw):
        reading.error(
            where, f"{column} is missing; fill in the total Loes score (0-34) or drop the row."
        )
        return math.nan
    try:
        score = float(str(raw).strip())
    except ValueError:
        reading.error(
            where,
            f"{column} {str(raw)!r} is not a number; write the total Loes score as a number "
            "from 0 to 34.",
        )
        return math.nan
    if not math.isfinite(score):
        reading.error(where, f"{column} is {raw!r}; write the total Loes score (0-34).")
        return math.nan
    if not 0 <= score <= MAX_LOES_SCORE:
        reading.error(
            where,
            f"{column} {score:g} is outside 0-34, the range of the Loes score; check for a typo "
            "or a score on another scale.",
        )
    elif abs(score * 2 - round(score * 2)) > 1e-6:
        reading.warning(
            where,
            f"{column} {score:g} is not a multiple of 0.5 (items score 0, 0.5 or 1); check for "
            "a typo (an average of several readers is fine).",
        )
    return score


def _check_duplicates(frame: pd.DataFrame, reading: TableReading) -> None:
    first_seen: dict[tuple, str] = {}
    for where, subject, session, gd in frame[["_where", "subject", "session", "gd"]].itertuples(
        index=False
    ):
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
            reading.error(where, message)
        else:
            first_seen[key] = where
    first_image: dict[str, str] = {}
    for where, image in frame[["_where", "image"]].itertuples(index=False):
        if not image:
            continue
        if image in first_image:
            reading.error(
                where,
                f"image {image} is also listed at {first_image[image]}; each scan needs its own "
                "file (a copy-paste slip?).",
            )
        else:
            first_image[image] = where


def _check_items(frame: pd.DataFrame, reading: TableReading) -> None:
    """Item subscores, when all are given: each within its range, summing to the total."""
    if not all(item.column in frame for item in ITEMS):
        return
    for i, where in enumerate(frame["_where"]):
        summed = 0.0
        for item in ITEMS:
            raw = frame.at[i, item.column]
            value = math.nan if _is_missing(raw) else _as_float(raw)
            if not _is_missing(raw) and not 0 <= value <= item.max:
                reading.error(
                    where, f"{item.column} is {raw!r}; this item scores from 0 to {item.max:g}."
                )
            summed += value
        total = frame.at[i, "loes_score"]
        if math.isfinite(summed) and math.isfinite(total) and abs(summed - total) > 1e-6:
            reading.warning(
                where,
                f"the item subscores sum to {summed:g} but loes_score is {total:g}; one of them "
                "is wrong (the total is what the model learns).",
            )


def _as_float(raw: object) -> float:
    """``raw`` as a number; NaN (which fails every range check) when it is not one."""
    try:
        return float(str(raw).strip())
    except ValueError:
        return math.nan


def _check_images_exist(frame: pd.DataFrame, reading: TableReading, attrs: dict) -> None:
    missing = [
        (where, image)
        for where, image in frame[["_where", "image"]].itertuples(index=False)
        if image and not os.path.exists(image)
    ]
    if not missing:
        return
    if "lab_without_images_dir" in attrs and len(missing) == len(frame):
        reading.error(
            reading.source,
            f"none of the {len(frame)} images is in {attrs['lab_without_images_dir']}; pass the "
            f"folder holding {LAB_IMAGE_PATTERN} files with --images-dir.",
        )
        return
    hint = attrs.get("image_hint", "")
    for where, image in missing:
        reading.error(where, f"image file not found: {image}; fix the path ({hint}).")


# --- small helpers -------------------------------------------------------------------------


def _read_delimited(path: Path) -> pd.DataFrame:
    """Read a CSV or TSV as strings (ids like ``007`` stay strings), cells stripped."""
    try:
        with open(path, encoding="utf-8-sig") as handle:
            first = handle.readline()
        sep = "\t" if path.suffix.lower() in (".tsv", ".tab") or "\t" in first else ","
        table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise LoesError(
            f"cannot be read as a CSV/TSV table ({type(error).__name__}: {error}); check that "
            "it is a text table with a header row."
        ) from None
    table.columns = [str(c).strip() for c in table.columns]
    return table.apply(lambda column: column.str.strip())


def _absolute(base: Path, image: object) -> str:
    if _is_missing(image):
        return ""
    path = Path(str(image).strip()).expanduser()
    return os.path.abspath(path if path.is_absolute() else base / path)


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() in _MISSING


def _parse_flag(raw: object) -> bool | str:
    """True/False for a yes/no cell (missing means no); the raw text when unreadable."""
    if isinstance(raw, bool | np.bool_):
        return bool(raw)
    if _is_missing(raw):
        return False
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return str(raw)


def _is_gd_name(scan: object) -> bool:
    text = "" if _is_missing(scan) else str(scan)
    return "Gd" in text or bool(_GD_TOKEN.search(text))


def _bids_entities(name: str, suffix: str) -> dict[str, str]:
    stem = name.removesuffix(".gz").removesuffix(".nii").removesuffix(f"_{suffix}")
    return dict(part.split("-", 1) for part in stem.split("_") if "-" in part)


def _bids_label(prefix: str, value: str) -> str:
    value = str(value).strip()
    return value if value.startswith(f"{prefix}-") else f"{prefix}-{value}"


def _maybe_numeric(column: pd.Series) -> pd.Series:
    """Numbers as floats when every filled cell is a number, otherwise the column unchanged."""
    if column.dtype.kind in "biuf":
        return column
    filled = [v for v in column if not _is_missing(v)]
    if not filled:
        return column
    try:
        [float(v) for v in filled]
    except (TypeError, ValueError):
        return column
    return pd.Series([math.nan if _is_missing(v) else float(v) for v in column], index=column.index)
