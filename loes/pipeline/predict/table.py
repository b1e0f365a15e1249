"""The table ``loes predict`` writes: one row per scan with the ensemble's prediction, its
interval, the threshold call and every reason to distrust the row."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from loes.pipeline.predict.ensemble import FoldEnsemble, Member

__all__ = ["prediction_table"]

#: a BIDS ``ce-`` (contrast enhancement) entity in a file name: a post-contrast scan
_POST_CONTRAST = re.compile(r"(?:^|_)ce-[A-Za-z0-9]+")


def prediction_table(
    ensemble: FoldEnsemble,
    done: list[dict],
    outputs: dict[int, np.ndarray],
    members: list[Member],
    coverage: float,
) -> pd.DataFrame:
    """The rows :meth:`FoldEnsemble.predict` returns: each scan in input order with its mean
    prediction (Loes points), the conformal interval, the members' spread, the threshold call,
    the flags that say why to distrust it, or the reason it could not be scored."""
    threshold = ensemble.threshold
    scored = sorted(outputs)
    means = np.array([outputs[i].mean() for i in scored])
    lower, upper = ensemble.calibration.interval(means, coverage)
    bounds = {i: (lo, hi) for i, lo, hi in zip(scored, lower, upper, strict=True)}
    too_small = ensemble.calibration.too_small(coverage)
    low, high = ensemble.score_range
    rows = []
    for index, item in enumerate(done):
        row = {key: item[key] for key in ("subject", "session", "image", "loes_score")}
        flags = [f"image: {w}" for w in item.get("warnings", [])]
        if index not in outputs:
            rows.append({**row, "flags": "; ".join(flags), "error": item["error"]})
            continue
        values = outputs[index]
        predicted = float(values.mean())
        lo, hi = bounds[index]
        if too_small:
            flags.append(
                f"the run has {ensemble.calibration.n} out-of-fold predictions, too few for a "
                f"{coverage:.0%} interval: it spans the whole scale"
            )
        if predicted > high + 0.5:
            flags.append(
                f"predicted {predicted:.1f}, above the highest score trained on ({high:g})"
            )
        if not ensemble.include_gd and _POST_CONTRAST.search(Path(item["image"]).name):
            flags.append(
                "post-contrast (ce- in the file name); the run trained on pre-contrast scans only"
            )
        score = item["loes_score"]
        if np.isfinite(score) and not low <= score <= high:
            flags.append(
                f"given score {score:g} is outside the scores trained on ({low:g}-{high:g})"
            )
        if ensemble.profile is not None and "features" in item:
            flags += ensemble.profile.flags(item["features"])
            strips = ensemble.spec["preprocessing"].get("skull_strip", False)
            spread = float(values.std(ddof=1)) if len(values) > 1 else np.nan
            for flag in (
                ensemble.profile.skull_flag(item["features"], strips),
                ensemble.profile.spread_flag(spread),
            ):
                if flag:
                    flags.append(flag)
        rows.append(
            {
                **row,
                "predicted": predicted,
                "lower": float(lo),
                "upper": float(hi),
                "spread": float(values.std(ddof=1)) if len(values) > 1 else np.nan,
                "call": f"{'>=' if predicted >= threshold else '<'} {threshold:g}",
                "call_sure": bool(lo >= threshold or hi < threshold),
                "flags": "; ".join(flags),
                "error": "",
                **{f"member_{m.name}": float(v) for m, v in zip(members, values, strict=True)},
            }
        )
    columns = ["subject", "session", "image", "loes_score", "predicted", "lower", "upper"]
    columns += ["spread", "call", "call_sure", "flags", "error"]
    columns += [f"member_{m.name}" for m in members]
    return pd.DataFrame(rows, columns=columns)
