"""The table ``loes predict`` writes: one row per scan with the ensemble's prediction, its
interval, the threshold call and every reason to distrust the row.

The score and its interval are rounded once, here, to :data:`DECIMALS` decimal (the scale moves
in 0.5-point steps), and the call and whether it is sure are made from the rounded values, so
that they agree with what the reader sees. The members' scores and their spread keep float
precision in Python; the CSV holds them to :data:`DETAIL_DECIMALS` decimals. A flagged row
never gets a sure call: a flag is a reason to distrust the number.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from loes.pipeline.predict.ensemble import FoldEnsemble, Member

__all__ = [
    "COLUMNS",
    "DECIMALS",
    "DETAIL_DECIMALS",
    "FLAG_SEPARATOR",
    "column_definitions",
    "join_flags",
    "prediction_table",
    "split_flags",
]

#: decimals of the score and its interval
DECIMALS = 1
#: decimals of the spread and the members' scores in the CSV
DETAIL_DECIMALS = 3

#: what separates a row's flags in the ``flags`` column of the predictions and changes tables
FLAG_SEPARATOR = "; "


def join_flags(flags: list[str]) -> str:
    """The ``flags`` cell of ``flags``: each once, in order, without its closing full stop,
    any separator inside one made ``", "`` (a header warning may hold one), so that
    :func:`split_flags` gives them back whole."""
    whole = (f.replace(FLAG_SEPARATOR, ", ").removesuffix(".") for f in flags if f)
    return FLAG_SEPARATOR.join(dict.fromkeys(whole))


def split_flags(cell: object) -> list[str]:
    """The flags of a ``flags`` cell (empty, NaN or None: none)."""
    return [] if pd.isna(cell) else [f for f in str(cell).split(FLAG_SEPARATOR) if f]


#: each column of the table and what it means ({coverage}, {threshold}, {n} filled in)
COLUMNS = {
    "subject": "the subject, from the table or the BIDS file name",
    "session": "the session, from the table or the BIDS file name",
    "age": "the age at the scan in years, from the table (empty when not given); it puts a "
    "subject's sessions in order for the changes between them",
    "site": "the site (scanner) of the scan, from the table (empty when not given); a change "
    "between sessions of two sites is flagged",
    "image": "the scan's file (or DICOM folder)",
    "loes_score": "the score given with the scan, in Loes points (empty when none was given)",
    "predicted": "the ensemble's Loes score (0-34 points): the mean of the fold models' "
    "predictions, each the mean of the scan and its left-right mirror",
    "lower": "the lower end of the prediction interval, Loes points",
    "upper": "the upper end of the prediction interval, Loes points",
    "coverage": "the share of true scores the interval is built to hold ({coverage}): a "
    "conformal interval (Mondrian split-conformal, crepes) from the run's {n} out-of-fold "
    "errors, wider where the run erred more; it holds for scans like the run's, not for "
    "flagged ones",
    "spread": "the SD of the fold models' predictions, Loes points: how much they disagree "
    "(empty with one model)",
    "call": "'>= {threshold}' when the predicted score is at least {threshold} (the transplant "
    "threshold of the run), else '< {threshold}'",
    "call_sure": "true when the whole interval lies on the call's side of {threshold} and no "
    "flag is raised; false means: do not act on the call without a reading",
    "flags": "reasons to distrust the row, separated by '; ' (a scan unlike the training "
    "scans, a scan the run trained on, a warning of the run itself)",
    "error": "why the scan could not be scored (its numbers are then empty)",
    "member_<name>": "each fold model's prediction (scan and mirror averaged), Loes points",
}

#: a BIDS ``ce-`` (contrast enhancement) entity in a file name: a post-contrast scan
_POST_CONTRAST = re.compile(r"(?:^|_)ce-[A-Za-z0-9]+")


def column_definitions(ensemble: FoldEnsemble, coverage: float) -> dict[str, str]:
    """:data:`COLUMNS` with the ensemble's threshold, coverage and calibration size."""
    values = {
        "coverage": f"{coverage:.0%}",
        "threshold": f"{ensemble.threshold:g}",
        "n": ensemble.calibration.n,
    }
    return {name: text.format(**values) for name, text in COLUMNS.items()}


def _run_flags(ensemble: FoldEnsemble, coverage: float) -> list[str]:
    """The flags every prediction of this ensemble carries: the run's own warnings, and what
    the ensemble does not know."""
    flags = []
    if ensemble.card is None:
        flags.append(
            "run: no report (report.json), so its accuracy is unknown (`loes report RUN` writes it)"
        )
    else:
        flags += [f"run: {warning}" for warning in ensemble.card.warnings]
    if ensemble.profile is None:
        flags.append(
            "not screened: the run's training profile is missing and its scans were not "
            "readable here, so a scan unlike them cannot be told"
        )
    else:
        missing = [
            name
            for name, known in (
                ("orientation", ensemble.profile.template),
                ("in-sample", ensemble.profile.fingerprints),
                ("thick-slice", ensemble.profile.slice_max),
            )
            if known is None
        ]
        if missing:
            flags.append(
                "partly screened: the run's training_profile.json predates the "
                f"{' and '.join(missing)} screen{'s' if len(missing) > 1 else ''} (delete it "
                "where the run's scans are readable to measure it again)"
            )
    high = ensemble.score_range[1]
    if high < ensemble.threshold:
        flags.append(
            f"run: it trained on no scan at or above {ensemble.threshold:g} (its highest score "
            f"is {high:g}), so it cannot tell a scan above the threshold"
        )
    if ensemble.calibration.too_small(coverage):
        flags.append(
            f"the run has {ensemble.calibration.n} out-of-fold predictions, too few for a "
            f"{coverage:.0%} interval: it spans the whole scale"
        )
    return flags


def _scan_flags(ensemble: FoldEnsemble, item: dict, predicted: float, spread: float) -> list[str]:
    """Why this scan's prediction may not hold: unlike the training scans, trained on, or
    outside the scores the run knows."""
    flags = []
    low, high = ensemble.score_range
    if predicted > high + 0.5:
        flags.append(f"predicted {predicted:.1f}, above the highest score trained on ({high:g})")
    if not ensemble.include_gd and _POST_CONTRAST.search(Path(item["image"]).name):
        flags.append(
            "post-contrast (ce- in the file name), but the run trained on pre-contrast scans only"
        )
    score = item["loes_score"]
    if np.isfinite(score) and not low <= score <= high:
        flags.append(f"given score {score:g} is outside the scores trained on ({low:g}-{high:g})")
    profile = ensemble.profile
    if profile is not None and "features" in item:
        axes = {d: ensemble.axis(d) for d in ("SI", "AP")}
        flags += profile.flags(item["features"])
        found = (
            profile.orientation_flag(item.get("picture"), axes),
            profile.skull_flag(item["features"], ensemble.spec["preprocessing"].get("skull_strip")),
            profile.slice_flag(item["features"]),
            profile.spread_flag(spread),
            profile.in_sample_flag(item.get("fingerprint")),
        )
        flags += [flag for flag in found if flag]
    return flags


def prediction_table(
    ensemble: FoldEnsemble,
    done: list[dict],
    outputs: dict[int, np.ndarray],
    members: list[Member],
    coverage: float,
) -> pd.DataFrame:
    """The rows :meth:`FoldEnsemble.predict` returns: each scan in input order with its mean
    prediction (Loes points), the conformal interval, the members' spread, the threshold call,
    the flags that say why to distrust it, or the reason it could not be scored (columns and
    their meaning: :data:`COLUMNS`)."""
    threshold = ensemble.threshold
    scored = sorted(outputs)
    means = np.array([outputs[i].mean() for i in scored])
    lower, upper = ensemble.calibration.interval(means, coverage)
    bounds = {i: (lo, hi) for i, lo, hi in zip(scored, lower, upper, strict=True)}
    shared = _run_flags(ensemble, coverage)
    rows = []
    for index, item in enumerate(done):
        row = {key: item[key] for key in ("subject", "session", "age", "site", "image")}
        row["loes_score"] = item["loes_score"]
        flags = [f"image: {w}" for w in item.get("warnings", [])]
        if index not in outputs:
            rows.append({**row, "flags": join_flags(flags), "error": item["error"]})
            continue
        values = outputs[index]
        predicted = round(float(values.mean()), DECIMALS)
        lo, hi = (round(float(b), DECIMALS) for b in bounds[index])
        spread = float(values.std(ddof=1)) if len(values) > 1 else np.nan
        flags += shared + _scan_flags(ensemble, item, predicted, spread)
        rows.append(
            {
                **row,
                "predicted": predicted,
                "lower": lo,
                "upper": hi,
                "coverage": coverage,
                "spread": spread,
                "call": f"{'>=' if predicted >= threshold else '<'} {threshold:g}",
                "call_sure": bool((lo >= threshold or hi < threshold) and not flags),
                "flags": join_flags(flags),
                "error": "",
                **{f"member_{m.name}": float(v) for m, v in zip(members, values, strict=True)},
            }
        )
    columns = [c for c in COLUMNS if c != "member_<name>"]
    columns += [f"member_{m.name}" for m in members]
    return pd.DataFrame(rows, columns=columns)
