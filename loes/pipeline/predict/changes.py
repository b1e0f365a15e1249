"""Change between consecutive sessions of one subject, from predicted scores, with a conformal
interval and the progression call.

When the scans ``loes predict`` scores hold several sessions of a subject, the question a
clinic asks is whether the disease moved between them: a rise of at least 0.5 Loes points is
radiological progression (Liberato et al., Neurology 2019;92:e1698;
:data:`loes.data.follow_up.PROGRESSION`). Each subject's scored sessions are put in order
(:func:`loes.data.follow_up.consecutive_pairs`: by age when every session of the subject has
one, else by session id; ties in age by session id), and each consecutive pair gives one row:
the predicted change (the later predicted score minus the earlier, as the predictions table
shows them), an interval for the change, and a call.

The interval is split conformal (Vovk et al. 2005; Lei et al. 2018, JASA 113:1094) on the
run's out-of-fold consecutive pairs: both sessions of a pair sit in one test fold (folds keep
subjects whole), so ``true change - predicted change`` of each such pair is an honest sample of
the error of a new pair; the interval is the predicted change plus or minus the quantile of
their absolute values that holds the asked share (the finite-sample quantile of ``crepes``,
through :class:`~loes.pipeline.predict.conformal.ConformalCalibration` with one bin). The
residuals are those of single fold models, so for the ensemble's changes the interval tends to
be conservative. The call: ``"progressed"`` when the whole interval lies at or above +0.5,
``"no progression"`` when it lies below +0.5, ``"cannot tell"`` otherwise, made from the
rounded numbers the table shows.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from loes.data.follow_up import PROGRESSION, consecutive_pairs, session_key
from loes.errors import LoesError
from loes.io import csv_text, write_json, write_text
from loes.pipeline.predict.conformal import ConformalCalibration
from loes.pipeline.predict.table import DECIMALS, join_flags, split_flags
from loes.pipeline.run.predictions import CHANGE_RANGE

__all__ = [
    "CALLS",
    "CHANGE_COLUMNS",
    "CHANGE_RANGE",
    "calibration_pairs",
    "change_calibration",
    "change_column_definitions",
    "change_metrics",
    "change_table",
    "changes_path",
    "half_width",
    "oof_change_calibration",
    "write_changes",
]

#: the calls of a change: progressed, no progression, cannot tell
CALLS = ("progressed", "no progression", "cannot tell")
#: each column of the change table and what it means ({coverage}, {n}, {progression} filled in)
CHANGE_COLUMNS = {
    "subject": "the subject, from the table or the BIDS file name",
    "from_session": "the earlier session of the pair",
    "to_session": "the next scored session of the subject: sessions are in order of age when "
    "every session of the subject has one (ties by session id), else of session id "
    "(ses-2 before ses-10)",
    "years": "the time between the two sessions, years (the difference of the ages at the "
    "scans; empty when they are not known)",
    "given_change": "the later given score minus the earlier, Loes points (empty unless both "
    "scans came with a score)",
    "predicted_change": "{predicted_change}, Loes points",
    "change_low": "the lower end of the change interval, Loes points",
    "change_high": "the upper end of the change interval, Loes points",
    "call": "'progressed' when the whole interval lies at or above +{progression} (a rise of "
    "{progression} points is radiological progression, Liberato et al. 2019), 'no progression' "
    "when it lies below +{progression}, 'cannot tell' otherwise",
    "call_sure": "true when the call is 'progressed' or 'no progression' and no flag is "
    "raised; false means: do not act on the call without a reading",
    "flags": "reasons to distrust the change, separated by '; ': sessions from different sites "
    "or protocols, the scans' own flags (prefixed by the session when only one of the two has "
    "it), a session of the subject between them that could not be scored, a paired change "
    "that the two predicted scores contradict",
}
#: what ``predicted_change`` is, by the run's ``change.model``
_PREDICTED_CHANGE = {
    "paired": "the mean over the fold models of their paired networks' reading of the later "
    "scan rigidly registered onto the earlier one and subtracted",
    "subtraction": "the later session's predicted score minus the earlier's, as the predictions "
    "table shows them",
}
#: a paired change and the difference of the two predicted scores further apart than this
#: (Loes points) is flagged: on the main job 90% of the scores' differences were within 2.5
#: points of the true change, so a gap of 3 points says the scans or their order need a look
DISAGREEMENT = 3.0
#: what the interval is, for the sidecar ({coverage}, {n} filled in)
_INTERVAL = (
    "a {coverage} split-conformal interval for the change, from the run's {n} out-of-fold "
    "consecutive pairs (true change minus predicted change; crepes' finite-sample quantile)"
)

#: BIDS entities of a file name that tell the acquisition protocol, and its suffix (``T1w``)
_ENTITY = re.compile(r"(?:^|_)(acq|ce|rec)-([A-Za-z0-9]+)")
_SUFFIX = re.compile(r"_([A-Za-z0-9]+)\.(?:nii(?:\.gz)?|mgz|mgh|hdr|img)$")


def change_calibration(y_true: np.ndarray, y_pred: np.ndarray) -> ConformalCalibration:
    """The split-conformal calibration of change intervals: true and predicted changes of
    out-of-fold pairs, (n,) each, Loes points; intervals within :data:`CHANGE_RANGE`, one bin
    (a single quantile of ``|true - predicted|``).

    Raises:
        ValueError: when the two differ in length, are empty or not finite.
    """
    return ConformalCalibration(y_true, y_pred, y_range=CHANGE_RANGE, max_bins=1)


def calibration_pairs(oof: pd.DataFrame) -> pd.DataFrame:
    """The consecutive pairs of a run's out-of-fold predictions, within each repeat.

    Args:
        oof: the network's long out-of-fold table (``repeat, subject, session, loes_score,
            predicted``, and ``age`` when the run had ages;
            :func:`loes.pipeline.run.collect.collect_predictions`).

    Returns:
        One row per pair: ``repeat, subject, from_session, to_session, years``,
        ``loes_score_change`` (true) and ``predicted_change`` (Loes points).

    Raises:
        LoesError: a missing column or a session predicted twice in one repeat.
    """
    table = oof.assign(subject=oof["subject"].astype(str), session=oof["session"].astype(str))
    if "repeat" not in table:
        table = table.assign(repeat=0)
    pairs, _ = consecutive_pairs(table, ["loes_score", "predicted"], groups=("repeat", "subject"))
    return pairs


def oof_change_calibration(oof: pd.DataFrame) -> ConformalCalibration | None:
    """:func:`change_calibration` on the :func:`calibration_pairs` of a run's out-of-fold
    predictions; None when no subject has two sessions in a test fold.

    Raises:
        LoesError: as :func:`calibration_pairs`.
    """
    pairs = calibration_pairs(oof)
    if pairs.empty:
        return None
    return change_calibration(pairs["loes_score_change"], pairs["predicted_change"])


def half_width(calibration: ConformalCalibration | None, coverage: float) -> float | None:
    """Half the width of the change interval (Loes points), or None when there is none."""
    if calibration is None or calibration.too_small(coverage):
        return None
    return float(calibration.interval([0.0], coverage)[1][0])


def change_column_definitions(
    coverage: float, n: int, method: str = "subtraction"
) -> dict[str, str]:
    """:data:`CHANGE_COLUMNS` with the coverage, calibration size, progression and what the
    predicted change is (``method``: ``"paired"`` or ``"subtraction"``) filled in."""
    values = {
        "coverage": f"{coverage:.0%}",
        "n": n,
        "progression": f"{PROGRESSION:g}",
        "predicted_change": _PREDICTED_CHANGE[method],
    }
    columns = {name: text.format(**values) for name, text in CHANGE_COLUMNS.items()}
    interval = _INTERVAL.format(**values)
    for end in ("change_low", "change_high"):
        columns[end] += f": {interval}"
    return columns


#: the BIDS entities of a protocol, as a flag names them
_ENTITY_NAMES = {"ce": "contrast", "acq": "acquisition", "rec": "reconstruction"}


def _protocol(image: str) -> dict[str, str]:
    """What a BIDS-like file name says of the acquisition: its ``acq-``, ``ce-`` and ``rec-``
    entities and its suffix (``T1w``); empty for a name without ``sub-``."""
    name = Path(str(image)).name
    if "sub-" not in name:
        return {}
    found = dict(_ENTITY.findall(name))
    suffix = _SUFFIX.search(name)
    found["suffix"] = suffix[1] if suffix else ""
    return found


def _text(value: object) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def _pair_flags(earlier: pd.Series, later: pd.Series) -> list[str]:
    """Why the change of two scans may not be the disease's: other sites, other protocols,
    and the scans' own flags (shared ones once, the others with their session)."""
    flags = []
    sites = (_text(earlier.get("site")), _text(later.get("site")))
    if all(sites) and sites[0] != sites[1]:
        flags.append(f"sessions from different sites ({sites[0]}, then {sites[1]})")
    protocols = (_protocol(earlier["image"]), _protocol(later["image"]))
    if all(protocols) and protocols[0] != protocols[1]:
        keys = sorted(set(protocols[0]) | set(protocols[1]))
        told = [
            f"{_ENTITY_NAMES.get(k, k)} {protocols[0].get(k) or 'none'} then "
            f"{protocols[1].get(k) or 'none'}"
            for k in keys
            if protocols[0].get(k) != protocols[1].get(k)
        ]
        flags.append(f"sessions with different protocols ({', '.join(told)})")
    own = [split_flags(row.get("flags")) for row in (earlier, later)]
    flags += [f for f in own[0] if f in own[1]]
    for row, its in zip((earlier, later), own, strict=True):
        other = own[1] if row is earlier else own[0]
        flags += [f"{row.name}: {f}" for f in its if f not in other]
    return flags


def _call(low: float, high: float) -> str:
    if low >= PROGRESSION:
        return CALLS[0]
    if high < PROGRESSION:
        return CALLS[1]
    return CALLS[2]


def change_table(
    predictions: pd.DataFrame,
    calibration: ConformalCalibration | None,
    coverage: float = 0.9,
    pair_change: Callable[[pd.Series, pd.Series], float] | None = None,
) -> pd.DataFrame:
    """The change between each pair of consecutive scored sessions of each subject.

    Args:
        predictions: the table of :meth:`FoldEnsemble.predict
            <loes.pipeline.predict.ensemble.FoldEnsemble.predict>` (or its CSV read back):
            ``subject, session, image, loes_score, predicted, flags``, and ``age`` (years) and
            ``site`` when known; rows whose ``predicted`` is empty (not scored) pair with no
            other, and rows without a subject are left out.
        calibration: :func:`change_calibration` of the run's out-of-fold pairs, or None when
            the run has none (every interval is then the whole -34 to 34 range, and flagged).
        coverage: the share of true changes the interval should hold, in (0, 1).
        pair_change: ``pair_change(earlier, later)``, the predicted change of a pair from its
            two rows (e.g. :class:`~loes.pipeline.predict.paired.PairedChange`); None: the
            later ``predicted`` minus the earlier.

    Returns:
        One row per consecutive pair, subjects in natural order (columns and their meaning:
        :data:`CHANGE_COLUMNS`; Loes points to :data:`~loes.pipeline.predict.table.DECIMALS`
        decimals, ``years`` to 0.01). A subject with one scored session gives no row.
        ``attrs["order"]`` says what ordered the sessions (``"age"``, ``"session id"`` or
        ``"age where every session of a subject has one, else session id"``),
        ``attrs["left_out"]`` names the subjects that could not be paired and why.

    Raises:
        LoesError: when ``predictions`` lacks a column it needs, or ``coverage`` is not in
            (0, 1).
    """
    if not 0 < coverage < 1:
        raise LoesError(f"coverage must be between 0 and 1 (0.9 for 90%), got {coverage}.")
    missing = [c for c in ("subject", "session", "image", "predicted") if c not in predictions]
    if missing:
        raise LoesError(
            f"the predictions table lacks the column(s) {', '.join(missing)}; changes need the "
            "table `loes predict` writes."
        )
    table = predictions.reset_index(drop=True).copy()
    for column in ("subject", "session"):
        table[column] = table[column].map(_text)
    for column, default in (("loes_score", np.nan), ("age", np.nan), ("flags", "")):
        if column not in table:
            table[column] = default
    for column in ("age", "loes_score", "predicted"):  # a CSV read as text: blanks are NaN
        table[column] = pd.to_numeric(table[column], errors="coerce")
    table = table[table["subject"] != ""]
    scored = table[table["predicted"].notna()]
    too_small = calibration is None or calibration.too_small(coverage)
    shared = []
    if calibration is None:
        shared.append(
            "the run has no out-of-fold consecutive pairs (no subject with two sessions in a "
            "test fold), so the change interval is the whole -34 to 34 range"
        )
    elif too_small:
        shared.append(
            f"the run has {calibration.n} out-of-fold consecutive pairs, too few for a "
            f"{coverage:.0%} change interval: it spans the whole -34 to 34 range"
        )
    rows, bases, left_out = [], set(), []
    for subject in sorted(set(scored["subject"]), key=session_key):
        series = scored[scored["subject"] == subject]
        if len(series) < 2:
            continue
        twice = series["session"].duplicated(keep=False)
        if twice.any():
            left_out.append(
                f"{subject}: session {series.loc[twice, 'session'].iloc[0] or '(none)'} is on "
                f"{int(twice.sum())} scored rows, so its sessions cannot be put in order"
            )
            continue
        pairs, basis = consecutive_pairs(series, ["predicted", "loes_score"])
        bases.add(basis)
        by_session = series.set_index("session")
        everything = table[table["subject"] == subject]
        unscored = everything[~everything.index.isin(series.index)]
        for pair in pairs.itertuples(index=False):
            earlier, later = by_session.loc[pair.from_session], by_session.loc[pair.to_session]
            flags = _pair_flags(earlier, later) + shared
            change = pair.predicted_change
            if pair_change is not None:
                change = pair_change(earlier, later)
                if abs(change - pair.predicted_change) > DISAGREEMENT:
                    flags.append(
                        f"the predicted scores changed by {pair.predicted_change:+.1f} but the "
                        f"paired networks read {change:+.1f}: check the scans and their order"
                    )
            between = _between(unscored, earlier, later, basis)
            if between:
                flags.append(
                    f"session {', '.join(between)} between them could not be scored: the "
                    "change may span it"
                )
            rows.append(
                {
                    "subject": subject,
                    "from_session": pair.from_session,
                    "to_session": pair.to_session,
                    "years": round(pair.years, 2) if np.isfinite(pair.years) else np.nan,
                    "given_change": round(pair.loes_score_change, DECIMALS) + 0.0,
                    "predicted_change": round(change, DECIMALS) + 0.0,  # never -0.0
                    "flags": join_flags(flags),
                }
            )
    changes = pd.DataFrame(rows, columns=[*list(CHANGE_COLUMNS)[:6], "flags"])
    _intervals(changes, calibration, coverage, too_small)
    changes = changes[list(CHANGE_COLUMNS)]
    changes.attrs["order"] = (
        next(iter(bases))
        if len(bases) == 1
        else "age where every session of a subject has one, else session id"
    )
    changes.attrs["left_out"] = left_out
    return changes


def _between(unscored: pd.DataFrame, earlier: pd.Series, later: pd.Series, basis: str) -> list:
    """The unscored sessions that lie between two scored ones in the order of ``basis``."""
    if unscored.empty:
        return []
    if basis == "age":
        ages = unscored["age"]
        inside = (ages >= earlier["age"]) & (ages <= later["age"])
    else:
        keys = unscored["session"].map(session_key)
        start, end = session_key(earlier.name), session_key(later.name)
        inside = keys.map(lambda k: start < k < end)
    return sorted(unscored.loc[inside, "session"].map(str), key=session_key)


def _intervals(
    changes: pd.DataFrame,
    calibration: ConformalCalibration | None,
    coverage: float,
    too_small: bool,
) -> None:
    """Fill in ``change_low``, ``change_high``, ``call`` and ``call_sure`` of ``changes``."""
    predicted = changes["predicted_change"].to_numpy(dtype=float)
    if too_small or calibration is None:
        low = np.full(predicted.shape, CHANGE_RANGE[0])
        high = np.full(predicted.shape, CHANGE_RANGE[1])
    else:
        low, high = calibration.interval(predicted, coverage)
    changes["change_low"] = np.round(low, DECIMALS)
    changes["change_high"] = np.round(high, DECIMALS)
    changes["call"] = [
        _call(lo, hi) for lo, hi in zip(changes["change_low"], changes["change_high"], strict=True)
    ]
    changes["call_sure"] = (changes["call"] != CALLS[2]) & (changes["flags"] == "")


def change_metrics(changes: pd.DataFrame) -> dict[str, float]:
    """How the change intervals did against the given changes (rows with a ``given_change``).

    Returns:
        ``n`` (pairs with a given change), ``coverage`` (share of given changes inside
        ``[change_low, change_high]``), ``mean_width`` (Loes points), ``mae`` (of
        ``predicted_change``, Loes points), ``no_change_mae`` (of predicting no change), and
        for progression (a given rise of at least :data:`PROGRESSION`): ``progressed`` (pairs
        that did), ``called_progressed`` and ``called_no_progression`` (calls made) and
        ``wrong_calls`` (calls the given change contradicts); NaN where ``n`` is 0.
    """
    known = changes[pd.to_numeric(changes["given_change"], errors="coerce").notna()]
    given = known["given_change"].to_numpy(dtype=float)
    low, high = known["change_low"].to_numpy(float), known["change_high"].to_numpy(float)
    rose = given >= PROGRESSION - 1e-9
    called = known["call"].to_numpy(dtype=str)
    wrong = ((called == CALLS[0]) & ~rose) | ((called == CALLS[1]) & rose)
    n = len(known)

    def mean(values: np.ndarray) -> float:
        return float(np.mean(values)) if n else float("nan")

    return {
        "n": n,
        "coverage": mean((given >= low - 1e-9) & (given <= high + 1e-9)),
        "mean_width": mean(high - low),
        "mae": mean(np.abs(known["predicted_change"].to_numpy(float) - given)),
        "no_change_mae": mean(np.abs(given)),
        "progressed": int(rose.sum()),
        "called_progressed": int((called == CALLS[0]).sum()),
        "called_no_progression": int((called == CALLS[1]).sum()),
        "wrong_calls": int(wrong.sum()),
    }


def changes_path(predictions: str | os.PathLike) -> Path:
    """Where the change table of a predictions CSV goes: ``changes.csv`` beside
    ``predictions.csv``, ``new_changes.csv`` beside any other name (``new.csv``)."""
    predictions = Path(predictions)
    name = "changes.csv" if predictions.stem == "predictions" else f"{predictions.stem}_changes.csv"
    return predictions.with_name(name)


def write_changes(changes: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write the change table as CSV and, beside it, its provenance
    (``changes.attrs["provenance"]``, when present) as the sidecar JSON of the same name
    (``changes.csv`` -> ``changes.json``), each atomically; returns the CSV's path."""
    path = Path(path)
    if "provenance" in changes.attrs:
        write_json(path.with_suffix(".json"), changes.attrs["provenance"])
    rows = pd.DataFrame(changes, copy=True)
    rows.attrs = {}
    write_text(path, csv_text(rows))
    return path
