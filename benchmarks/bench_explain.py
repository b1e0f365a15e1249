"""Seconds per scan of each saliency method of ``loes explain`` at the CPU main job's size
(AlexNet3D, 72x88x72), against one forward and backward pass of the same scan, then
``loes explain`` end to end (preprocessing, map, randomised-weights map, native-space map,
figure) on scans of the run.

Uses the run folder ``$LOES_BENCH_RUN`` (default ``runs/synthetic-cpu``, what ``make cv``
writes) when it holds finished folds: its first fold model on one of its scans; otherwise an
untrained AlexNet3D on noise (the same compute; GradCAM's ReLU may then zero the map).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import torch

from loes.models import LoesModel
from loes.pipeline.explain.saliency import (
    SALIENCY_METHODS,
    SaliencySettings,
    occlusion_windows,
    saliency_map,
)
from loes.pipeline.run.device import configure_cpu

SIZE = (72, 88, 72)
TARGET_SECONDS = 1.0
REPEATS = 3


def _model_and_input() -> tuple[torch.nn.Module, torch.Tensor, Path | None, str]:
    run = Path(os.environ.get("LOES_BENCH_RUN", "runs/synthetic-cpu"))
    if (run / "config.yaml").is_file() and any(run.glob("fold_*/metrics.json")):
        from loes.pipeline.predict.members import load_ensemble
        from loes.pipeline.run.data import run_table

        member = load_ensemble(run).members[0]
        table = run_table(run)
        image = table.loc[table["loes_score"].idxmax(), "image"]
        x = member.model.preprocessing()({"image": image})["image"].as_tensor()[None]
        return member.model.eval(), x, run, f"{member.name} of {run}, its highest-scored scan"
    torch.manual_seed(0)
    return LoesModel("alexnet3d", SIZE).eval(), torch.randn(1, 1, *SIZE), None, "untrained"


def _seconds(function) -> float:
    function()  # warm-up
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    configure_cpu()
    model, x, run, source = _model_and_input()
    settings = SaliencySettings()

    def forward_backward():
        scan = x.clone().requires_grad_(True)
        model(scan).sum().backward()

    reference = _seconds(forward_backward)
    print(f"model: {source}; input {tuple(x.shape[2:])}; best of {REPEATS}")
    print(f"one forward + backward pass: {reference:.3f} s")
    print(f"{'method':<12} {'s/scan':>8} {'x pass':>7}  note")
    for method in SALIENCY_METHODS:
        seconds = _seconds(lambda m=method: saliency_map(model, x, m, settings))
        note = ""
        if method == "smoothgrad":
            note = f"{settings.smoothgrad_samples} noisy copies"
        elif method == "occlusion":
            windows = occlusion_windows(x.shape[2:], settings)
            note = (
                f"{windows} windows ({settings.occlusion_size}-voxel cubes every "
                f"{settings.occlusion_stride}), batches of {settings.occlusion_batch}"
            )
        elif seconds > TARGET_SECONDS:
            note = f"above the {TARGET_SECONDS:g} s target"
        print(f"{method:<12} {seconds:8.3f} {seconds / reference:7.1f}  {note}")
    if run is None:
        return
    from loes.pipeline.explain.explanations import explain

    with tempfile.TemporaryDirectory() as out:
        scans = 4
        explain(run, methods=["gradcam"], scans=1, out=out, device="cpu")  # warm-up
        start = time.perf_counter()
        table = explain(run, methods=["gradcam"], scans=scans, out=Path(out) / "b", device="cpu")
        total = time.perf_counter() - start
    assert (table["error"] == "").all(), table["error"].tolist()
    print(
        f"loes explain --method gradcam, end to end (preprocessing, map, randomised-weights map, "
        f"native-space map, figure): {total / scans:.2f} s/scan over {scans} scans"
    )
