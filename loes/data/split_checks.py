"""The checks of :mod:`loes.data.splits`: the table and parameters before folds are drawn, and a
``splits.json`` (written by hand, edited, or another run's) against the table, every problem
named with what to fix."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loes.data.fold import SIDES, Fold
from loes.errors import LoesError

__all__ = [
    "check_parameters",
    "check_same_parameters",
    "check_table",
    "parse_folds",
    "scan_list_problems",
    "sessions_by_subject",
    "split_problems",
]

#: the parameters a saved splits.json must share with the run that reuses it
COMPARED = ("n_folds", "repeats", "seed", "val_fraction", "by_site")


def check_table(table: pd.DataFrame, by_site: bool) -> None:
    needed = ["subject", "session", "loes_score"] + (["site"] if by_site else [])
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise LoesError(
            f"the table has no {', '.join(missing)} column"
            f"{'s' if len(missing) > 1 else ''}; "
            + (
                "leave-one-site-out needs a site per scan."
                if missing == ["site"]
                else "load it with loes.data.load_dataset."
            )
        )
    if table.empty:
        raise LoesError("the table has no scans to split.")


def check_parameters(
    table: pd.DataFrame, n_folds: int, repeats: int, seed: int, val_fraction: float, by_site: bool
) -> None:
    n_subjects = table["subject"].nunique()
    if repeats < 1:
        raise LoesError(f"repeats must be at least 1, got {repeats}.")
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise LoesError(f"seed must be a non-negative integer, got {seed!r}.")
    if not 0 <= val_fraction < 1:
        raise LoesError(f"val_fraction must be in [0, 1), got {val_fraction}.")
    scores = pd.to_numeric(table["loes_score"], errors="coerce")
    if scores.isna().any():
        raise LoesError(
            "some scans have no numeric loes_score; run `loes validate` and fix the data first."
        )
    if by_site:
        per_subject = table.groupby(table["subject"].astype(str))["site"].nunique(dropna=False)
        moved = sorted(per_subject[per_subject > 1].index)
        if moved:
            raise LoesError(
                f"subjects scanned at several sites ({', '.join(moved[:5])}) cannot be kept on "
                "one side of a leave-one-site-out split; give each subject one site or drop "
                "by_site."
            )
        if table["site"].isna().any():
            raise LoesError("some scans have no site; fill the site column or drop by_site.")
        if table["site"].nunique() < 2:
            raise LoesError("leave-one-site-out needs at least 2 sites; there is one.")
        if repeats != 1:
            raise LoesError("leave-one-site-out has a single split; use repeats=1 with by_site.")
        return
    if n_folds < 2:
        raise LoesError(f"n_folds must be at least 2, got {n_folds}.")
    if n_subjects < n_folds:
        raise LoesError(
            f"{n_folds} folds need at least {n_folds} subjects, and the table has "
            f"{n_subjects}; ask for fewer folds."
        )


def check_same_parameters(saved: dict, requested: dict, path: Path) -> None:
    different = [
        key
        for key in COMPARED
        if key in saved
        and not (key == "n_folds" and requested["by_site"])
        and saved[key] != requested[key]
    ]
    if different:
        made = ", ".join(f"{k}={saved[k]!r}" for k in different)
        asked = ", ".join(f"{k}={requested[k]!r}" for k in different)
        raise LoesError(
            f"{path} was made with {made}, but {asked} was asked for; ask for the same, or "
            "delete the file (or use another run folder) to split again."
        )


def split_problems(
    folds: list[Fold],
    table: pd.DataFrame,
    scans: dict[tuple[int, int], dict[str, list[tuple[str, str]]]],
) -> list[str]:
    known = set(table["subject"].astype(str))
    table_scans = set(zip(table["subject"].astype(str), table["session"].astype(str), strict=True))
    problems: list[str] = []
    if not folds:
        return ["it has no folds."]
    for repeat in sorted({f.repeat for f in folds}):
        in_repeat = [f for f in folds if f.repeat == repeat]
        tested: dict[str, list[int]] = {}
        for fold in in_repeat:
            sides = {side: fold.subjects(side) for side in SIDES}
            for side, subjects in sides.items():
                for subject, count in Counter(subjects).items():
                    if count > 1:
                        problems.append(
                            f"{fold.name}: {subject} is listed {count} times in {side}."
                        )
            seen: dict[str, str] = {}
            for side, subjects in sides.items():
                for subject in subjects:
                    if subject in seen and seen[subject] != side:
                        problems.append(
                            f"{fold.name}: {subject} is in both {seen[subject]} and {side}."
                        )
                    seen.setdefault(subject, side)
            unknown = sorted(set(seen) - known)
            if unknown:
                problems.append(
                    f"{fold.name}: {few(unknown)} {'is' if len(unknown) == 1 else 'are'} not in "
                    "the table."
                )
            absent = sorted(known - set(seen))
            if absent:
                problems.append(
                    f"{fold.name}: {few(absent)} {'is' if len(absent) == 1 else 'are'} on no "
                    "side; put each subject in train, val or test."
                )
            if not fold.test:
                problems.append(f"{fold.name}: test is empty.")
            if not fold.train:
                problems.append(f"{fold.name}: train is empty.")
            for subject in fold.test:
                tested.setdefault(subject, []).append(fold.fold)
            listed = scans.get((fold.repeat, fold.fold), {})
            for side, pairs in listed.items():
                problems += scan_list_problems(fold, side, pairs, table_scans)
        never = sorted(known - set(tested))
        if never:
            problems.append(f"repeat {repeat}: {few(never)} never tested; put each in one test.")
        twice = {s: k for s, k in tested.items() if len(k) > 1}
        for subject, where in sorted(twice.items()):
            problems.append(
                f"repeat {repeat}: {subject} is tested in folds "
                f"{', '.join(map(str, where))}; test each subject once per repeat."
            )
    return problems


def scan_list_problems(
    fold: Fold, side: str, pairs: list[tuple[str, str]], table_scans: set[tuple[str, str]]
) -> list[str]:
    """A side's optional scan list must be exactly the table's scans of that side's subjects."""
    problems = []
    on_side = set(fold.subjects(side))
    for (subject, session), count in Counter(pairs).items():
        if count > 1:
            problems.append(f"{fold.name}: scan {subject} {session} is listed {count} times.")
        if (subject, session) not in table_scans:
            problems.append(
                f"{fold.name}: scan {subject} {session} listed in {side} is not in the table."
            )
        elif subject not in on_side:
            problems.append(
                f"{fold.name}: scan {subject} {session} is listed in {side} but subject "
                f"{subject} is not."
            )
    lacking = sorted(p for p in table_scans - set(pairs) if p[0] in on_side)
    if lacking:
        problems.append(
            f"{fold.name}: scans.{side} lacks {few([f'{s} {e}' for s, e in lacking])}, which "
            "the table has (drop the scans lists, or delete the file to split again)."
        )
    return problems


def parse_folds(
    data: Any, path: Path
) -> tuple[list[Fold], dict[tuple[int, int], dict[str, list[tuple[str, str]]]]]:
    if not isinstance(data, dict) or not isinstance(data.get("folds"), list):
        raise LoesError(
            f'{path} has no "folds" list; expected '
            '{"folds": [{"repeat": 0, "fold": 0, "train": [...], "val": [...], "test": [...]}]}.'
        )
    folds: list[Fold] = []
    scans: dict[tuple[int, int], dict[str, list[tuple[str, str]]]] = {}
    for i, entry in enumerate(data["folds"]):
        where = f"{path} folds[{i}]"
        if not isinstance(entry, dict):
            raise LoesError(f"{where} is not an object with train, val and test lists.")
        repeat, fold = entry.get("repeat", 0), entry.get("fold")
        if not isinstance(repeat, int) or not isinstance(fold, int):
            raise LoesError(f'{where}: "repeat" and "fold" must be integers.')
        if (repeat, fold) in scans:
            raise LoesError(f"{where}: repeat {repeat} fold {fold} is listed twice.")
        sides = {}
        for side in SIDES:
            value = entry.get(side, [] if side == "val" else None)
            if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
                raise LoesError(f'{where}: "{side}" must be a list of subject ids (strings).')
            sides[side] = sorted(value)
        listed = entry.get("scans") or {}
        pairs: dict[str, list[tuple[str, str]]] = {}
        if not isinstance(listed, dict):
            raise LoesError(
                f'{where}: "scans" must map train/val/test to [subject, session] lists.'
            )
        for side, items in listed.items():
            if side not in SIDES or not isinstance(items, list):
                raise LoesError(f'{where}: "scans" has an unknown side {side!r}.')
            if not all(isinstance(p, list | tuple) and len(p) == 2 for p in items):
                raise LoesError(
                    f"{where}: scans.{side} must be a list of [subject, session] pairs."
                )
            pairs[side] = [(str(s), str(e)) for s, e in items]
        scans[(repeat, fold)] = pairs
        folds.append(Fold(repeat, fold, sides["train"], sides["val"], sides["test"]))
    for key in [k for k, v in scans.items() if not v]:
        del scans[key]
    return folds, scans


def sessions_by_subject(table: pd.DataFrame) -> dict[str, list[str]]:
    pairs = table[["subject", "session"]].astype(str).drop_duplicates()
    return {s: sorted(group["session"]) for s, group in pairs.groupby("subject")}


def few(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")
