"""Cross-validation folds grouped by subject, stratified by score, written once and reused.

Every session of a subject stays on one side of a fold, so the test score measures how the
model does on people it has never seen. Folds are stratified by each subject's mean Loes
score, binned by quantiles so that a skewed cohort (a third of scans at 0) still spreads its
severe cases over every fold. Each fold also draws an inner validation set from its
training subjects for early stopping and model selection.

The folds are saved in ``splits.json`` (subjects and scans of every side of every fold, plus
the parameters) and reused on the next run; a file written or edited by hand is accepted
after checking it against the table.
"""

from __future__ import annotations

import json
import os
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loes.data.fold import SIDES, Fold
from loes.data.split_checks import (
    check_parameters,
    check_same_parameters,
    check_table,
    parse_folds,
    sessions_by_subject,
    split_problems,
)
from loes.errors import LoesError
from loes.io import json_text, write_new, write_text

__all__ = ["SIDES", "Fold", "Splits", "make_folds", "score_bins"]

_MAX_BINS = 10
_VERSION = 1


@dataclass(frozen=True)
class Splits:
    """All folds of all repeats, the parameters that made them, and each subject's sessions."""

    folds: list[Fold]
    parameters: dict[str, Any] = field(default_factory=dict)
    sessions: dict[str, list[str]] = field(default_factory=dict)

    @property
    def repeats(self) -> int:
        """Number of repeats of the k-fold split."""
        return len({f.repeat for f in self.folds})

    @property
    def n_folds(self) -> int:
        """Folds per repeat."""
        return max(Counter(f.repeat for f in self.folds).values(), default=0)

    def fold(self, repeat: int, fold: int) -> Fold:
        """The fold with these indices."""
        for candidate in self.folds:
            if (candidate.repeat, candidate.fold) == (repeat, fold):
                return candidate
        raise LoesError(f"no repeat {repeat} fold {fold} in these splits.")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: parameters, then per fold the subjects and scans of each side."""
        return {
            "version": _VERSION,
            "parameters": self.parameters,
            "folds": [
                {
                    "repeat": f.repeat,
                    "fold": f.fold,
                    **{side: f.subjects(side) for side in SIDES},
                    "scans": {
                        side: [[s, e] for s in f.subjects(side) for e in self.sessions.get(s, [])]
                        for side in SIDES
                    },
                }
                for f in self.folds
            ],
        }

    def to_json(self, path: str | os.PathLike, exclusive: bool = False) -> bool:
        """Write the splits to ``path`` atomically; return whether they were written.

        ``exclusive``: only when ``path`` does not exist yet, so that of several jobs starting
        together exactly one writes the run's folds and the others read them
        (:func:`loes.io.write_new`).
        """
        text = json_text(self.to_dict())
        if exclusive:
            return write_new(path, text)
        write_text(path, text)
        return True

    @classmethod
    def from_json(cls, path: str | os.PathLike, table: pd.DataFrame) -> Splits:
        """Read a splits file (ours or one written by hand) and check it against ``table``.

        Each fold needs ``fold``, ``train`` and ``test`` (subject ids), optionally ``repeat``
        (default 0), ``val`` (default none) and ``scans`` (``[subject, session]`` pairs per
        side, which must then match the table).

        Raises:
            LoesError: the file is unreadable, malformed, or breaks a guarantee (a subject on
                two sides of a fold, a subject tested never or twice in a repeat, a subject or
                scan unknown to the table).
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except OSError as error:
            raise LoesError(f"cannot read splits file {path}: {error.strerror or error}.") from None
        except json.JSONDecodeError as error:
            raise LoesError(
                f"{path} is not valid JSON (line {error.lineno}, column {error.colno}: "
                f"{error.msg}); fix it or delete it to split again."
            ) from None
        folds, scans = parse_folds(data, path)
        splits = cls(
            folds,
            dict(data.get("parameters") or {}),
            sessions_by_subject(table),
        )
        splits.check(table, scans, name=str(path))
        return splits

    def check(
        self,
        table: pd.DataFrame,
        scans: dict[tuple[int, int], dict[str, list[tuple[str, str]]]] | None = None,
        name: str = "splits",
    ) -> None:
        """Raise ``LoesError`` listing every broken guarantee of these splits for ``table``."""
        problems = split_problems(self.folds, table, scans or {})
        if problems:
            shown = "\n".join(f"  {p}" for p in problems[:20])
            more = f"\n  ... and {len(problems) - 20} more." if len(problems) > 20 else ""
            raise LoesError(
                f"{name} does not fit the data ({len(problems)} problem"
                f"{'' if len(problems) == 1 else 's'}):\n{shown}{more}\n"
                "Fix the file, or delete it to split again."
            )


def make_folds(
    table: pd.DataFrame,
    n_folds: int = 5,
    repeats: int = 1,
    seed: int = 0,
    val_fraction: float = 0.2,
    by_site: bool = False,
    path: str | os.PathLike | None = None,
) -> Splits:
    """Split ``table``'s subjects into folds, or reuse the splits saved at ``path``.

    Subjects are grouped (every session on one side) and stratified by their mean Loes
    score with ``StratifiedGroupKFold``; ``repeats`` repeats it with independent seeds. Each
    fold's ``val`` holds whole subjects with about ``val_fraction`` of its non-test scans
    (stratified too), ``train`` the rest. ``by_site=True`` leaves one site out per fold
    instead (``LeaveOneGroupOut`` on the ``site`` column).

    When ``path`` exists it is read, checked against ``table`` and returned; otherwise the
    new splits are written there atomically.

    Examples::

        >>> splits = make_folds(table, repeats=2, path="run/splits.json")  # doctest: +SKIP
        >>> fold = splits.folds[0]  # doctest: +SKIP
        >>> train, test = fold.scans(table, "train"), fold.scans(table, "test")  # doctest: +SKIP
    """
    check_table(table, by_site)
    requested = {
        "n_folds": n_folds,
        "repeats": repeats,
        "seed": seed,
        "val_fraction": val_fraction,
        "by_site": by_site,
    }
    if path is not None and Path(path).exists():
        splits = Splits.from_json(path, table)
        check_same_parameters(splits.parameters, requested, Path(path))
        return splits
    check_parameters(table, n_folds, repeats, seed, val_fraction, by_site)
    splits = _split(table, n_folds, repeats, seed, val_fraction, by_site)
    if path is not None:
        splits.to_json(path)
    return splits


def score_bins(scores: np.ndarray | list[float], n_bins: int, min_count: int) -> np.ndarray:
    """Quantile bins of ``scores`` (labels 0..k-1) with at least ``min_count`` members each.

    Ties (the many subjects scoring 0) share one bin; a bin left with fewer than ``min_count``
    members is merged into its smaller neighbour, so stratification works with few subjects.

    Examples::

        >>> score_bins([0, 0, 0, 0, 1, 2, 3, 8, 12, 20], n_bins=3, min_count=3).tolist()
        [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    """
    scores = np.asarray(scores, dtype=float)
    n_bins = max(1, min(n_bins, len(scores) // max(min_count, 1)))
    if n_bins == 1:
        return np.zeros(len(scores), dtype=int)
    edges = np.unique(np.quantile(scores, np.linspace(0, 1, n_bins + 1))[1:-1])
    # bin k holds (edge[k-1], edge[k]]: a score equal to an edge (the many zeros) stays low
    labels = np.searchsorted(edges, scores, side="left")
    while True:
        present, counts = np.unique(labels, return_counts=True)
        if len(present) <= 1 or counts.min() >= min_count:
            break
        i = int(np.argmin(counts))
        if i == 0:
            j = 1
        elif i == len(present) - 1:
            j = i - 1
        else:
            j = i - 1 if counts[i - 1] <= counts[i + 1] else i + 1
        labels[labels == present[i]] = present[j]
    return np.unique(labels, return_inverse=True)[1].astype(int)


# --- splitting -----------------------------------------------------------------------------


def _split(
    table: pd.DataFrame, n_folds: int, repeats: int, seed: int, val_fraction: float, by_site: bool
) -> Splits:
    # imported here: scikit-learn takes most of a second to import, and `loes synth` and the
    # readers in loes.data do not need it
    from sklearn.model_selection import LeaveOneGroupOut, StratifiedGroupKFold

    rows = table.assign(subject=table["subject"].astype(str)).sort_values(
        ["subject", "session"], kind="stable"
    )
    subject_score = rows.groupby("subject")["loes_score"].mean()
    subject_ids = rows["subject"].to_numpy()
    parameters: dict[str, Any] = {
        "n_folds": n_folds,
        "repeats": repeats,
        "seed": seed,
        "val_fraction": val_fraction,
        "by_site": by_site,
    }
    if by_site:
        site_of = rows.groupby("subject")["site"].first().astype(str)
        groups = site_of.loc[subject_ids].to_numpy()
        splitter: Any = LeaveOneGroupOut()
        labels = np.zeros(len(rows), dtype=int)
        parameters |= {"method": "LeaveOneGroupOut", "sites": sorted(set(groups))}
        parameters["n_folds"] = len(parameters["sites"])
    else:
        bins = score_bins(subject_score.to_numpy(), _MAX_BINS, n_folds)
        labels = pd.Series(bins, index=subject_score.index).loc[subject_ids].to_numpy()
        groups = subject_ids
        parameters |= {
            "method": "StratifiedGroupKFold",
            "stratified_by": f"subject mean Loes score in {bins.max() + 1} quantile bins",
        }
    folds = []
    for repeat in range(repeats):
        if not by_site:
            splitter = StratifiedGroupKFold(
                n_splits=n_folds, shuffle=True, random_state=_seed(seed, repeat)
            )
        with warnings.catch_warnings():
            # "the least populated class has fewer members than n_splits": expected, handled
            warnings.simplefilter("ignore", UserWarning)
            parts = list(splitter.split(np.zeros(len(rows)), labels, groups))
        for k, (train_rows, test_rows) in enumerate(parts):
            test = sorted(set(subject_ids[test_rows]))
            pool = sorted(set(subject_ids[train_rows]))
            val = _draw_val(
                subject_ids[train_rows], subject_score, val_fraction, _seed(seed, repeat, k)
            )
            train = sorted(set(pool) - set(val))
            folds.append(Fold(repeat, k, train, val, test))
    return Splits(folds, parameters, sessions_by_subject(table))


def _draw_val(scan_subjects: np.ndarray, score: pd.Series, fraction: float, seed: int) -> list[str]:
    """Subjects holding about ``fraction`` of the scans ``scan_subjects`` lists (one subject id
    per scan), stratified by the subjects' mean score.

    Subjects stay whole, so the share is met by scans, not subjects: the pool is split with
    ``StratifiedGroupKFold`` into ``round(1 / fraction)`` parts of about equal scan counts and
    score mix, and the part whose scan count is closest to ``fraction`` is kept.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    pool = sorted(set(scan_subjects))
    if fraction <= 0 or len(pool) < 2:
        return []
    n_parts = min(max(2, round(1 / fraction)), len(pool))
    bins = pd.Series(score_bins(score.loc[pool].to_numpy(), _MAX_BINS, n_parts), index=pool)
    splitter = StratifiedGroupKFold(n_splits=n_parts, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # fewer members in a stratum than parts
        parts = [
            rows
            for _, rows in splitter.split(scan_subjects, bins.loc[scan_subjects], scan_subjects)
        ]
    target = fraction * len(scan_subjects)
    best = min(parts, key=lambda rows: abs(len(rows) - target))
    return sorted(set(scan_subjects[best]))


def _seed(*parts: int) -> int:
    """An independent 32-bit seed for each (seed, repeat[, fold])."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])
