"""Seconds per scan of ``loes predict`` on 1 mm MPRAGE-sized native scans with the CPU main
job's ensemble (5 folds x 2 flips), split into loading/preprocessing and network.

Uses the run folder ``$LOES_BENCH_RUN`` (default ``runs/synthetic-cpu``, what ``make cv``
writes) when it holds finished folds; otherwise five untrained AlexNet3D members with the CPU
preset, which cost the same compute (weights do not change the time).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.bench_transforms import NATIVE_SHAPE, mprage_like
from loes.models import LoesModel
from loes.pipeline.predict.conformal import ConformalCalibration
from loes.pipeline.predict.ensemble import FoldEnsemble, Member
from loes.pipeline.predict.members import load_ensemble

SCANS = 8
TARGET_SECONDS = 1.5


def _ensemble() -> tuple[FoldEnsemble, str]:
    run = Path(os.environ.get("LOES_BENCH_RUN", "runs/synthetic-cpu"))
    if (run / "config.yaml").is_file() and any(run.glob("fold_*/metrics.json")):
        return load_ensemble(run), f"run {run}"
    torch.manual_seed(0)
    preset = {"pixdim": [2.0, 2.0, 2.0], "spatial_size": [72, 88, 72]}
    members = [
        Member(f"fold_{k}", LoesModel("alexnet3d", (72, 88, 72), preprocessing=preset).eval(), 0, k)
        for k in range(5)
    ]
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 20, 200)
    calibration = ConformalCalibration(scores, scores + rng.normal(0, 1.5, 200))
    return FoldEnsemble(members, calibration, source="untrained"), "5 untrained alexnet3d members"


def _time(ensemble: FoldEnsemble, scans: list[Path], members=None) -> dict[str, float]:
    ensemble.predict(scans[:1], device="cpu", members=members)  # warm-up
    start = time.perf_counter()
    table = ensemble.predict(scans, device="cpu", members=members)
    total = time.perf_counter() - start
    assert (table["error"] == "").all(), table["error"].tolist()
    seconds = table.attrs["seconds"]
    n = len(scans)
    return {
        "total": total / n,
        "preprocessing": seconds["preprocessing"] / n,
        "network": seconds["network"] / n,
    }


def main() -> None:
    ensemble, what = _ensemble()
    passes = 2 * len(ensemble.members)
    print(
        f"ensemble: {what}, {len(ensemble.members)} members x 2 flips = {passes} forward passes "
        f"per scan; input {NATIVE_SHAPE} 1 mm LPS int16 .nii.gz -> "
        f"{'x'.join(map(str, ensemble.spec['spatial_size']))}; {SCANS} scans, batch "
        f"{ensemble.batch_size}, {torch.get_num_threads()} torch threads"
    )
    with tempfile.TemporaryDirectory() as folder:
        first = mprage_like(Path(folder) / "scan_0.nii.gz")
        scans = [first]
        for i in range(1, SCANS):
            scans.append(Path(shutil.copy(first, Path(folder) / f"scan_{i}.nii.gz")))
        every = _time(ensemble, scans)
        one = _time(ensemble, scans, members=[ensemble.members[0].name])
    print(f"{'members':<10} {'s/scan':>7} {'loading+preprocessing':>22} {'network':>8}")
    for label, t in ((f"{len(ensemble.members)}", every), ("1", one)):
        print(f"{label:<10} {t['total']:7.2f} {t['preprocessing']:22.2f} {t['network']:8.2f}")
    verdict = "met" if every["total"] <= TARGET_SECONDS else "missed"
    print(
        f"target <= {TARGET_SECONDS} s/scan in all: {verdict}; "
        f"preprocessing with {len(ensemble.members)} members / with 1: "
        f"{every['preprocessing'] / one['preprocessing']:.2f}x (once per scan whatever the "
        f"ensemble size); network: {every['network'] / one['network']:.1f}x"
    )


if __name__ == "__main__":
    main()
