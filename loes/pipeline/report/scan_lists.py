"""The scans a reader of the report should look at by name: those the network predicted worst,
and those the run read but set aside (:mod:`loes.pipeline.report.left_out`).

:func:`worst_predictions` computes what ``report.json`` holds as ``worst``; :func:`scan_tables`
shows both lists in report.md and report.html.
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

from loes.pipeline.report.left_out import short_reason
from loes.pipeline.report.numbers import number, signed
from loes.pipeline.report.table import Table
from loes.pipeline.run.predictions import NETWORK

__all__ = ["N_WORST", "scan_tables", "worst_predictions"]

#: how many of the worst-predicted scans the report lists
N_WORST = 10


def _call(true: float, predicted: float, threshold: float) -> str:
    """``"missed"`` (true at or above the threshold, predicted below), ``"false alarm"`` (the
    reverse) or ``""`` (the call is right), as :func:`~loes.pipeline.run.metrics.threshold_metrics`
    calls a scan."""
    if true >= threshold > predicted:
        return "missed"
    if predicted >= threshold > true:
        return "false alarm"
    return ""


def worst_predictions(
    predictions: pd.DataFrame, threshold: float, n: int = N_WORST
) -> list[dict[str, Any]]:
    """The ``n`` scans with the largest absolute error of the network (else of the first model).

    ``predictions`` is the long out-of-fold table (``repeat, fold, subject, session,
    loes_score, predicted, model``; Loes points). With repeats, each repeat's prediction of a
    scan counts on its own. Returns one dict per scan, worst first (ties by repeat, fold,
    subject, session): ``repeat``, ``fold``, ``subject``, ``session``, ``loes_score``,
    ``predicted``, ``error`` (predicted - true, Loes points) and ``call`` at ``threshold``
    (``"missed"``, ``"false alarm"`` or ``""``, see :func:`_call`).
    """
    models = list(dict.fromkeys(predictions["model"]))
    model = NETWORK if NETWORK in models else models[0]
    rows = predictions[predictions["model"] == model].copy()
    rows["error"] = rows["predicted"] - rows["loes_score"]
    rows["size"] = rows["error"].abs()
    rows = rows.sort_values(
        ["size", "repeat", "fold", "subject", "session"],
        ascending=[False, True, True, True, True],
        kind="stable",
    ).head(n)
    return [
        {
            "model": model,
            "repeat": int(row.repeat),
            "fold": int(row.fold),
            "subject": str(row.subject),
            "session": str(row.session),
            "loes_score": float(row.loes_score),
            "predicted": float(row.predicted),
            "error": float(row.error),
            "call": _call(float(row.loes_score), float(row.predicted), threshold),
        }
        for row in rows.itertuples()
    ]


def _worst_table(report: dict[str, Any]) -> Table | None:
    worst = report.get("worst") or []
    if not worst:
        return None
    threshold = report["threshold"]
    repeated = report["n_repeats"] > 1
    header = ["fold", "subject", "session", "true", "predicted", "error", f"at {threshold:g}"]
    rows = [
        [
            f"{w['repeat']}/{w['fold']}" if repeated else str(w["fold"]),
            w["subject"],
            w["session"],
            number(w["loes_score"], 1),
            number(w["predicted"], 1),
            signed(w["error"], 1),
            w["call"] or "right",
        ]
        for w in worst
    ]
    missed = sum(w["call"] == "missed" for w in worst)
    alarms = sum(w["call"] == "false alarm" for w in worst)
    return Table(
        f"The {len(worst)} worst-predicted scans ({worst[0]['model']})",
        "The scans with the largest absolute error out of fold (error = predicted - true, Loes "
        f"points; fold = repeat/fold when repeated), worst first; {missed} missed and "
        f"{alarms} false alarm{'s' * (alarms != 1)} at the threshold (missed: true score ≥ "
        f"{threshold:g}, predicted below; false alarm: the reverse). Look at these scans first: "
        "a score typed wrong, an unusual scan, or what the network has not learnt.",
        header,
        rows,
    )


def _set_aside_table(report: dict[str, Any]) -> Table | None:
    s = report.get("set_aside")
    if not s or not s["n_set_aside"]:
        return None
    rows = [
        [
            row["subject"],
            row["session"],
            number(row["loes_score"], 1),
            short_reason(str(row["reason"])),
            os.path.basename(str(row["image"])),
        ]
        for row in s["scans"]
    ]
    reasons = " ".join(f"{r['reason']}." for r in s["reasons"])
    return Table(
        f"Scans set aside ({s['n_set_aside']} of {s['n_read']} read)",
        f"Read from the data but not used: {reasons} "
        f"Scans read {s['n_read']} = used {s['n_kept']} + set aside {s['n_set_aside']} "
        "(set_aside.csv in the run folder lists them with their full paths).",
        ["subject", "session", "Loes score", "why", "image"],
        rows,
    )


def scan_tables(report: dict[str, Any]) -> list[Table]:
    """The report's tables of named scans, for report.md and report.html: the worst-predicted
    scans, then the scans set aside (each only when there are any)."""
    return [t for t in (_worst_table(report), _set_aside_table(report)) if t is not None]
