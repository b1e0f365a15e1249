"""Coverage of the change intervals of ``loes predict`` on a cohort the run never saw.

``python -m benchmarks.change_coverage RUN COHORT [--out DIR] [--coverage 0.9] [--device cpu]``

RUN is a finished ``loes cv`` run folder; it is read, never written: the files an ensemble
loads (config, splits, report, training profile, each fold's ``best.pt``, ``metrics.json``,
out-of-fold ``predictions.csv`` and, with the paired change model, ``change/best.pt`` and
``changes.csv``) are copied into ``OUT/run`` first. COHORT is what ``loes
predict`` reads with the scores and ages of its scans: the ``manifest.csv`` of a synthetic
cohort (``loes synth --seed 1``, or the cache folder of ``data.synthetic_seed=1``), whose
post-contrast scans are set aside as the run's were. The script runs ``loes predict`` (all fold
models, flip TTA) into ``OUT`` and reads its ``changes.csv``: every pair of consecutive
sessions of a subject has a given change (the cohort's true one) and the interval ``loes
predict`` gave it. It prints the number of pairs, the share of true changes inside their
interval (nominal: ``--coverage``), the mean width, the change MAE beside predicting no change,
and the calls; with ``--out`` the files stay for a look.

Heavy: it scores every scan of COHORT (about 5 minutes for 211 scans at 1.5 mm on 2 CPU
cores, ``nice -n 10`` advised), so it is not one of the ``python -m benchmarks`` speed
benchmarks.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

#: what an ensemble loads from a run folder (the rest, ``last.pt`` and logs, stays behind)
_RUN_FILES = ("config.yaml", "splits.json", "report.json", "training_profile.json", "scans.csv")
_FOLD_FILES = ("best.pt", "metrics.json", "predictions.csv", "changes.csv", "change/best.pt")


def copy_run(run: Path, to: Path) -> Path:
    """The files of ``run`` that :func:`loes.pipeline.load_ensemble` reads, copied into
    ``to`` (so that nothing is written into ``run``); returns ``to``."""
    to.mkdir(parents=True)
    for name in _RUN_FILES:
        if (run / name).is_file():
            shutil.copy2(run / name, to / name)
    for folder in [*run.glob("fold_*"), *run.glob("repeat_*/fold_*")]:
        target = to / folder.relative_to(run)
        for name in _FOLD_FILES:
            if (folder / name).is_file():
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(folder / name, target / name)
    return to


def measure(run: Path, cohort: Path, out: Path, coverage: float, device: str) -> dict:
    """Predict ``cohort`` with a copy of ``run`` into ``out``; the
    :func:`~loes.pipeline.predict.changes.change_metrics` of its ``changes.csv`` with the
    order of the sessions and the calibration size."""
    from loes.io import read_csv
    from loes.pipeline.predict.changes import change_metrics, changes_path
    from loes.pipeline.predict.scoring import predict_scans

    copy = copy_run(run, out / "run")
    predictions = out / "predictions.csv"
    predict_scans(copy, [cohort], predictions, coverage=coverage, device=device)
    changes = read_csv(changes_path(predictions), dtype={"subject": str})
    sidecar = json.loads(changes_path(predictions).with_suffix(".json").read_text())
    return {
        **change_metrics(changes),
        "order": sidecar["order"],
        "calibration_pairs": sidecar["calibration_pairs"],
        "half_width": sidecar["half_width"],
        "flagged": int(changes["flags"].fillna("").ne("").sum()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.change_coverage", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("run", type=Path, help="a finished `loes cv` run folder (read only)")
    parser.add_argument("cohort", type=Path, help="the unseen cohort's manifest.csv (or folder)")
    parser.add_argument("--out", type=Path, help="a new folder for the outputs (default: temp)")
    parser.add_argument("--coverage", type=float, default=0.9)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    cohort = args.cohort / "manifest.csv" if args.cohort.is_dir() else args.cohort
    with tempfile.TemporaryDirectory(prefix="change-coverage-") as temporary:
        out = args.out or Path(temporary)
        m = measure(args.run, cohort, out, args.coverage, args.device)
    nominal = f"{args.coverage:.0%}"
    print(
        f"\n# change intervals of {args.run} on {cohort}\n"
        f"pairs of consecutive sessions with a true change: {m['n']} (ordered by {m['order']}; "
        f"calibrated on the run's {m['calibration_pairs']} out-of-fold pairs, half-width "
        f"{m['half_width']:.2f} points)\n"
        f"coverage of the {nominal} intervals: {m['coverage']:.1%} "
        f"({round(m['coverage'] * m['n'])} of {m['n']}); mean width {m['mean_width']:.2f} points\n"
        f"change MAE {m['mae']:.2f} points (no change: {m['no_change_mae']:.2f}); "
        f"{m['progressed']} pairs rose by 0.5 or more; calls: {m['called_progressed']} "
        f"progressed, {m['called_no_progression']} no progression, {m['wrong_calls']} wrong; "
        f"{m['flagged']} pairs flagged"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
