"""What a run read but left out, and why: the scans set aside when it read its data
(``set_aside.csv``, see :mod:`loes.pipeline.run.set_aside`) beside those it kept
(``scans.csv``), as ``report.json`` holds them and as one sentence of "what was run"."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from loes.data.problems import plural
from loes.io import read_csv
from loes.pipeline.run.folder import SCANS_FILE
from loes.pipeline.run.set_aside import read_set_aside

__all__ = ["SHOWN_SUBJECTS", "set_aside_summary", "set_aside_text", "short_reason"]

#: how many subject ids a sentence names before "and N more"
SHOWN_SUBJECTS = 8


def _kept_scans(run_dir: Path) -> pd.DataFrame | None:
    path = run_dir / SCANS_FILE
    if not path.is_file():
        return None
    try:
        return read_csv(path, dtype={"subject": str, "session": str})
    except (OSError, ValueError):
        return None


def set_aside_summary(run_dir: str | os.PathLike, n_scans: int) -> dict[str, Any] | None:
    """What the run read, kept and set aside (``set_aside.csv`` beside ``scans.csv``), or
    ``None`` when the run folder does not record it (a run made before loes did, or no run
    folder).

    ``n_scans`` (the scans in the predictions) stands in for ``scans.csv`` when that is
    missing. Returns ``n_read`` = ``n_kept`` + ``n_set_aside`` (scans), ``subjects_read``,
    ``subjects_kept`` (``None`` without ``scans.csv``), ``subjects_left_out`` (the ids of
    subjects with every scan set aside), ``reasons`` (``[{"reason", "n_scans",
    "n_subjects"}]``) and ``scans`` (the rows of ``set_aside.csv``: ``image``, ``subject``,
    ``session``, ``loes_score``, ``reason``, by subject and session).

    Raises:
        LoesError: when ``set_aside.csv`` cannot be read.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None
    aside = read_set_aside(run_dir)
    if aside is None:
        return None
    kept = _kept_scans(run_dir)
    kept_subjects = set() if kept is None else set(kept["subject"])
    aside = aside.sort_values(["subject", "session"], kind="stable")
    reasons = [
        {"reason": reason, "n_scans": len(rows), "n_subjects": int(rows["subject"].nunique())}
        for reason, rows in aside.groupby("reason", sort=True)
    ]
    n_kept = n_scans if kept is None else len(kept)
    known = kept is not None
    return {
        "n_read": n_kept + len(aside),
        "n_kept": n_kept,
        "n_set_aside": len(aside),
        "subjects_read": len(kept_subjects | set(aside["subject"])) if known else None,
        "subjects_kept": len(kept_subjects) if known else None,
        "subjects_left_out": sorted(set(aside["subject"]) - kept_subjects) if known else [],
        "reasons": reasons,
        "scans": aside.to_dict("records"),
    }


def short_reason(reason: str) -> str:
    """A reason as a table cell: its first clause (``"post-contrast scan (gd)"``)."""
    return reason.split(";")[0].strip()


def _names(subjects: list[str]) -> str:
    shown = ", ".join(subjects[:SHOWN_SUBJECTS])
    more = len(subjects) - SHOWN_SUBJECTS
    return shown + (f" and {more} more" if more > 0 else "")


def set_aside_text(report: dict[str, Any]) -> str | None:
    """One sentence for "what was run": how many scans and subjects were set aside and why,
    e.g. ``"41 of 253 scans read: post-contrast scan (gd) (41 scans of 36 subjects); 5
    subjects had no other scan and are not in the run: sub-003, ..."``; ``"none of the N
    scans read"``; ``None`` when the run does not record it (``report["set_aside"]``, see
    :func:`set_aside_summary`)."""
    s = report.get("set_aside")
    if not s:
        return None
    if not s["n_set_aside"]:
        return f"none of the {plural(s['n_read'], 'scan')} read"
    reasons = "; ".join(
        f"{short_reason(r['reason'])} ({plural(r['n_scans'], 'scan')} of "
        f"{plural(r['n_subjects'], 'subject')})"
        for r in s["reasons"]
    )
    text = f"{s['n_set_aside']} of {s['n_read']} scans read: {reasons}"
    left_out = s.get("subjects_left_out") or []
    if left_out:
        had = "had no other scan and is" if len(left_out) == 1 else "had no other scan and are"
        text += f"; {plural(len(left_out), 'subject')} {had} not in the run: {_names(left_out)}"
    return text
