"""A BIDS dataset: images found under ``sub-*/[ses-*/]anat/``, scores in its TSV files.

Scores (and extra columns such as ``age`` or ``site``) come from ``sub-*/sub-*_sessions.tsv``
(one row per session, as ``loes synth`` writes them), ``phenotype/loes.tsv`` and
``participants.tsv``, the most specific source winning.
Scans with a ``ce-*`` entity are post-contrast.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from loes.data.readers.delimited import MISSING, read_delimited
from loes.data.readers.reading import NO_SESSION, RawTable, TableReading, scan_label
from loes.errors import LoesError

__all__ = ["NO_SESSION", "read_bids"]


def read_bids(root: Path, suffix: str, reading: TableReading) -> RawTable | None:
    """Read the BIDS dataset at ``root``: one row per ``*_{suffix}.nii[.gz]`` image in
    ``sub-*/[ses-*/]anat/``, ``session`` being ``NO_SESSION`` without ``ses-*`` folders.

    Rows have ``image`` (absolute path), ``gd`` (a ``ce-*`` entity in the name), the score
    and the extra columns of the score files, ``lesion_mask`` when a derivative holds lesion
    label maps (``derivatives/*/..._desc-lesion_dseg.nii.gz``) and ``brain_mask`` when one holds
    brain masks (``derivatives/*/..._desc-brain_mask.nii.gz``). An image whose name does not
    match its folders, and a scan without a score, are recorded in ``reading``. Returns
    ``None`` when no image is usable.

    Raises:
        LoesError: when ``root`` is not a folder or holds no such image.
    """
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
    where: list[str] = []
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
                f"the file name does not match its folders ({scan_label(subject, session)}); "
                "rename it.",
            )
            continue
        rows.append(
            {
                "subject": subject,
                "session": session,
                "image": os.path.abspath(file),
                "gd": "ce" in entities,
                "lesion_mask": _derived(root, rel, suffix, "desc-lesion_dseg"),
                "brain_mask": _derived(root, rel, suffix, "desc-brain_mask"),
            }
        )
        where.append(str(rel))
    if not rows:
        return None
    frame = pd.DataFrame(rows)
    frame = frame.drop(columns=[c for c in ("lesion_mask", "brain_mask") if not frame[c].any()])
    frame["loes_score"] = ""
    score_where, unscored = _attach_bids_scores(root, frame, where, reading)
    return RawTable(
        frame,
        tuple(where),
        image_hint=f"images are found under {root}",
        score_where=score_where,
        unscored=unscored,
    )


def _derived(root: Path, rel: Path, suffix: str, kind: str) -> str:
    """The file a BIDS derivative holds for the image at ``rel``
    (``derivatives/*/<same folders>/<same entities>_<kind>.nii[.gz]``, as ``loes synth`` writes
    lesion label maps and brain masks), or ``""``."""
    stem = re.sub(rf"_{re.escape(suffix)}\.nii(\.gz)?$", "", rel.name)
    found = sorted(root.glob(f"derivatives/*/{rel.parent.as_posix()}/{stem}_{kind}.nii*"))
    return os.path.abspath(found[0]) if found else ""


def _attach_bids_scores(
    root: Path, frame: pd.DataFrame, where: list[str], reading: TableReading
) -> tuple[tuple[str, ...], tuple[bool, ...]]:
    """Fill ``loes_score`` and extra columns from phenotype/loes.tsv, sessions.tsv and
    participants.tsv, the most specific source winning; return where each row's score came
    from and which rows have none (already reported)."""
    score_where = list(where)
    unscored = [False] * len(frame)
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
                    f"give one score per session (in {subject}/{subject}_sessions.tsv, or a "
                    "session_id column in phenotype/loes.tsv).",
                )
                continue
            score = entry
        extras.append(merged)
        if score is None:
            if session == NO_SESSION:
                fix = (
                    "add a row with participant_id and loes_score to phenotype/loes.tsv (or a "
                    "loes_score column to participants.tsv)"
                )
            else:
                fix = (
                    f"add a row with session_id and loes_score to {subject}/{subject}"
                    "_sessions.tsv (or with participant_id, session_id and loes_score to "
                    "phenotype/loes.tsv)"
                )
            reading.error(where[i], f"no Loes score for {scan_label(subject, session)}: {fix}.")
            unscored[i] = True
        else:
            frame.at[i, "loes_score"] = score["score"]
            score_where[i] = score["where"]
    extra = pd.DataFrame(extras, index=frame.index)
    for column in extra.columns:
        if column not in frame.columns:
            frame[column] = extra[column]
    return tuple(score_where), tuple(unscored)


def _bids_score_file(
    path: Path, root: Path, per_session: bool, reading: TableReading, subject: str | None = None
) -> dict[tuple[str, str | None], dict]:
    """``{(subject, session or None): {"score", "extra", "where"}}`` from one BIDS TSV."""
    if not path.is_file():
        return {}
    name = str(path.relative_to(root))
    try:
        table = read_delimited(path)
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
        where = f"{name} row {i} ({sub}{'' if ses is None else ' ' + ses})"
        if (sub, ses) in entries:
            who = sub if ses is None else f"{sub} {ses}"
            reading.error(where, f"{who} is listed twice; keep one row.")
            continue
        raw = row.get("loes_score")
        extra = {
            k: v
            for k, v in row.items()
            if k not in ("participant_id", "session_id", "loes_score") and v not in MISSING
        }
        entries[(sub, ses)] = {
            "score": None if raw is None or raw in MISSING else raw,
            "extra": extra,
            "where": where,
        }
    return entries


def _bids_entities(name: str, suffix: str) -> dict[str, str]:
    stem = name.removesuffix(".gz").removesuffix(".nii").removesuffix(f"_{suffix}")
    return dict(part.split("-", 1) for part in stem.split("_") if "-" in part)


def _bids_label(prefix: str, value: str) -> str:
    value = str(value).strip()
    return value if value.startswith(f"{prefix}-") else f"{prefix}-{value}"
