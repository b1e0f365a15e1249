"""The GPU path in one go: ``python -m benchmarks gpu``, or ``benchmarks/gpu_check.sh``, which
first installs loes and what the server lacks from wheels brought along (``make wheelhouse``).

On the device ``LOES_GPU_CHECK_DEVICE`` names (default ``cuda``; ``cpu`` rehearses the whole
check on a machine without a GPU, smaller), one part after the other, each printing its
figures:

1. **packages**: every package loes needs (its requirements, recursively, torch's own apart)
   installed, and in the versions asked for (an older one is a warning);
2. **dtypes**: a Loes model's predictions under the device's autocast are float32 (not bf16)
   and agree with float32 ones; a checkpoint saved from the device loads with a plain
   ``torch.load(weights_only=True)`` as CPU tensors;
3. **all-reduce**: a one-process group set up by device type, as
   :func:`loes.pipeline.cluster.distributed.process_group` does (``cuda:nccl``, ``cpu:gloo``),
   all-reduces on :func:`~loes.pipeline.cluster.distributed.reduction_device` and runs a
   ``DistributedDataParallel`` step;
4. **step**: one AlexNet3D training step in each memory layout (contiguous NCDHW,
   channels_last_3d NDHWC), mixed precision as ``loes cv`` uses it, against the device's matmul
   rate in the same precision (bf16 on a GPU, float32 on a CPU) measured in the same process
   (FLOPs counted by ``torch.utils.flop_counter.FlopCounterMode``);
5. **cv twice**: ``loes cv`` on a small synthetic cohort (2 folds x 3 epochs, the cohort cached
   on the GPU) run twice, the two compared (bytes and out-of-fold predictions); samples per
   second and data-wait share of every epoch; on 2 or more GPUs the same under ``torchrun``;
6. **predict**: ``loes predict`` on the device against the CPU (max abs difference);
7. **explain**: ``loes explain`` on the device (SmoothGrad, GradCAM and the randomised-weights
   check), its maps against the CPU's;
8. **bundle**: ``loes export``, then the bundle's own predict (``python -m monai.bundle run``)
   on the device, against ``loes predict``'s.

Every time is read after the device finished its work (:class:`loes.pipeline.run.device.
Stopwatch`). A part that fails prints why and the rest go on; the exit status is 1 when any
failed. ``loes`` commands run in child processes, from a scratch folder (so that an installed
loes, not a checkout, answers); ``LOES_GPU_CHECK_KEEP=DIR`` keeps their files in DIR.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import torch

#: bf16 matmul size per device type: large enough to reach a GPU's tensor-core rate
MATMUL_SIZE = {"cuda": 8192, "cpu": 1024}
#: the check's sizes per device type: the step's input and batch; the CV's cohort (subjects,
#: synthetic resolution in mm), its preprocessing and network. On a CPU a rehearsal: small.
SIZES = {
    "cuda": {
        "step_shape": (160, 192, 160),
        "step_batch": 8,
        "step_repeats": 10,
        "subjects": 16,
        "resolution": 2.0,
        "settings": [
            "preprocessing.pixdim=[2.0, 2.0, 2.0]",
            "preprocessing.spatial_size=[72, 88, 72]",
            "preprocessing.cache=gpu",
            "model.name=alexnet3d",
            "training.batch_size=8",
            "training.amp=true",
        ],
    },
    "cpu": {
        "step_shape": (72, 88, 72),
        "step_batch": 2,
        "step_repeats": 2,
        "subjects": 8,
        "resolution": 4.0,
        "settings": [
            "preprocessing.pixdim=[4.0, 4.0, 4.0]",
            "preprocessing.spatial_size=[32, 40, 32]",
            "preprocessing.cache=memory",
            "model.name=sfcn",
            "training.batch_size=4",
        ],
    },
}
SHORT = ["cv.folds=2", "cv.repeats=1", "cv.val_fraction=0.25", "training.epochs=3"]
#: GPU against CPU predictions may differ by this much (Loes points) before the check fails:
#: mixed precision and TF32 round differently; more means the device computes something else
TOLERANCE_POINTS = 0.5
#: relative difference (to the map's peak) allowed between a GPU map and the CPU's
MAP_TOLERANCE = 0.05
#: gradient-based maps compared between devices (the randomised-weights check included)
EXPLAIN_METHODS = "vanillagrad,smoothgrad,gradcam"
#: dense bf16 tensor-core peak in TFLOP/s, by a part of the device name (vendor data sheets)
BF16_PEAK_TFLOPS = {
    "H200": 989.0,
    "H100 PCIe": 756.0,
    "H100": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
    "A10": 125.0,
    "RTX 4090": 165.0,
    "RTX 3090": 71.0,
}
#: the checkout's presets (through a link to benchmarks/, as gpu_check.sh runs this)
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
#: packages loes can do without here: brain extraction, which the check does not use
OPTIONAL = {"deepbet"}


def _peak(name: str) -> float | None:
    for part, peak in BF16_PEAK_TFLOPS.items():
        if part in name:
            return peak
    return None


def _device() -> torch.device:
    name = os.environ.get("LOES_GPU_CHECK_DEVICE", "cuda")
    if name not in ("cuda", "cpu"):
        raise SystemExit(f"gpu: LOES_GPU_CHECK_DEVICE must be cuda or cpu, got {name!r}.")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit(
            "gpu: PyTorch sees no CUDA GPU; run this on a GPU machine, or rehearse it on the "
            "CPU with LOES_GPU_CHECK_DEVICE=cpu."
        )
    return torch.device(name)


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def check_packages() -> None:
    """Every requirement of loes, recursively (torch's own apart), installed in a version it
    allows; an optional one (:data:`OPTIONAL`) missing or any version outside the range is
    printed as a warning. Raises AssertionError naming the missing ones."""
    from packaging.requirements import Requirement

    missing, seen, todo = [], set(), ["loes"]
    while todo:
        name = todo.pop()
        if _canonical(name) in seen:
            continue
        seen.add(_canonical(name))
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
            continue
        if _canonical(name) in ("torch", *OPTIONAL):
            continue
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            try:
                have = metadata.version(req.name)
            except metadata.PackageNotFoundError:
                todo.append(req.name)
                continue
            if req.specifier and not req.specifier.contains(have, prereleases=True):
                print(f"  warning: {name} asks for {req}, this Python has {req.name} {have}")
            todo.append(req.name)
    optional = sorted(m for m in missing if _canonical(m) in OPTIONAL)
    needed = sorted(m for m in missing if _canonical(m) not in OPTIONAL)
    print(f"  {len(seen)} packages checked; loes {metadata.version('loes')} from {_loes_path()}")
    for name in optional:
        print(f"  not installed: {name} (preprocessing.skull_strip only; not needed here)")
    assert not needed, f"not installed: {', '.join(needed)}; bring their wheels"


def _loes_path() -> str:
    import loes

    return str(Path(loes.__file__).parent)


def check_dtypes(device: torch.device) -> None:
    """Predictions float32 under autocast, close to float32 ones; a checkpoint saved from the
    device loads on a CPU with a plain ``torch.load``."""
    from loes.models import LoesModel
    from loes.pipeline.run.device import amp_dtype

    torch.manual_seed(0)
    shape = (72, 88, 72)
    model = LoesModel("alexnet3d", shape, score_mean=9.0, score_std=6.0).to(device).eval()
    images = torch.randn(4, 1, *shape, device=device)
    dtype = amp_dtype(device) or torch.bfloat16  # a CPU has no autocast in loes: probe bf16
    with torch.no_grad():
        full = model(images)
        with torch.autocast(device.type, dtype=dtype):
            mixed = model(images)
    difference = (mixed.double() - full.double()).abs().max().item()
    print(
        f"  autocast {str(dtype).removeprefix('torch.')}: predictions {mixed.dtype}, float32 "
        f"ones {full.dtype}; max |difference| {difference:.2g} points (predictions "
        f"{full.min().item():.3f} to {full.max().item():.3f}: an untrained network)"
    )
    assert mixed.dtype == torch.float32, f"predictions under autocast are {mixed.dtype}"
    assert full.dtype == torch.float32, f"float32 predictions are {full.dtype}"
    assert difference < TOLERANCE_POINTS, f"autocast moves predictions by {difference:.3f}"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "best.pt"
        model.save(path, epoch=1)
        state = torch.load(path, weights_only=True)  # no map_location: as a CPU-only user
    devices = {t.device.type for t in _tensors(state)}
    print(f"  checkpoint saved from {device.type}: tensors on {sorted(devices)} when loaded")
    assert devices == {"cpu"}, f"a checkpoint holds tensors on {devices}"


def _tensors(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list | tuple):
        return [t for v in value for t in _tensors(v)]
    return []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_all_reduce(device: torch.device) -> None:
    """A one-process group with the backend ``process_group`` gives the device type, an
    all-reduce on ``reduction_device``, a ``broadcast_object_list`` and one DDP step."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from loes.pipeline.cluster.distributed import reduction_device

    backend = "cuda:nccl" if device.type == "cuda" else "cpu:gloo"
    kwargs = {}
    if device.type == "cuda":  # as process_group: an indexed device, set as current
        device = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(device)
        kwargs["device_id"] = device
    dist.init_process_group(
        backend, init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1, **kwargs
    )
    try:
        config = dist.get_backend_config()
        where = reduction_device(config)
        total = torch.tensor([2.5], dtype=torch.float64, device=where)
        dist.all_reduce(total)
        box = [{"best_epoch": 3}]
        dist.broadcast_object_list(box, src=0)
        model = DistributedDataParallel(
            torch.nn.Linear(8, 1).to(device), device_ids=[device] if device.type == "cuda" else None
        )
        model(torch.randn(4, 8, device=device)).sum().backward()
        try:  # what loes must never do: a CPU tensor through a group without a CPU backend
            dist.all_reduce(torch.ones(1))
            cpu = "works"
        except Exception as error:  # RuntimeError, DistBackendError
            cpu = f"fails ({(str(error).splitlines() or [type(error).__name__])[0][:70]})"
        print(
            f"  group {config!r}: all-reduce on {where.type} = {total.item()}, broadcast "
            f"{box[0]}, one DDP step; a CPU tensor's all-reduce {cpu}"
        )
        assert total.item() == 2.5
        assert box == [{"best_epoch": 3}]
    finally:
        dist.destroy_process_group()


def matmul_rate(device: torch.device, dtype: torch.dtype, n: int, repeats: int = 10) -> float:
    """TFLOP/s of an n x n matmul in ``dtype`` on ``device``, the mean of ``repeats`` after
    warm-up."""
    from loes.pipeline.run.device import Stopwatch

    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    watch = Stopwatch(device)
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / watch.seconds() / 1e12


def check_step(device: torch.device) -> None:
    """One AlexNet3D training step per memory layout, mixed precision as in ``loes cv``
    (``loes.pipeline.run.device.autocast``): ms, TFLOP/s, share of the matmul rate in the
    precision the step computes in (bf16 on a GPU with native bf16)."""
    from torch.utils.flop_counter import FlopCounterMode

    from loes.models import get_network
    from loes.pipeline.run.device import Stopwatch, amp_dtype, autocast, memory_format

    sizes = SIZES[device.type]
    shape, batch, repeats = sizes["step_shape"], sizes["step_batch"], sizes["step_repeats"]
    dtype = amp_dtype(device) or torch.float32  # what the step computes in (bf16 on a GPU)
    precision = str(dtype).removeprefix("torch.")
    n = MATMUL_SIZE[device.type]
    rate = matmul_rate(device, dtype, n, 10 if device.type == "cuda" else 3)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    peak = _peak(name) if device.type == "cuda" and dtype == torch.bfloat16 else None
    print(
        f"  {precision} matmul {n}^3: {rate:.3g} TFLOP/s"
        + (f" ({rate / peak:.0%} of the {peak:.0f} TFLOP/s data-sheet peak)" if peak else "")
    )
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as loes cv sets it
    default = memory_format(device)
    for layout in (torch.contiguous_format, torch.channels_last_3d):
        torch.manual_seed(0)
        model = get_network("alexnet3d", shape).train().to(device, memory_format=layout)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        images = torch.randn(batch, 1, *shape, device=device).contiguous(memory_format=layout)
        scores = torch.randn(batch, device=device)

        def step(model=model, optimizer=optimizer, images=images, scores=scores):
            optimizer.zero_grad(set_to_none=True)
            with autocast(device, True):
                predicted = model(images).float().squeeze(1)
            torch.nn.functional.huber_loss(predicted, scores).backward()
            optimizer.step()

        for _ in range(2):  # cuDNN picks its algorithms
            step()
        with FlopCounterMode(display=False) as counter:
            step()
        watch = Stopwatch(device)
        for _ in range(repeats):
            step()
        seconds = watch.seconds() / repeats
        tflops = counter.get_total_flops() / seconds / 1e12
        label = "channels_last_3d" if layout == torch.channels_last_3d else "contiguous"
        chosen = " (loes's default here)" if layout == default else ""
        print(
            f"  alexnet3d step, batch {batch} at {'x'.join(map(str, shape))} {precision}, "
            f"{label}{chosen}: {seconds * 1e3:.0f} ms, {counter.get_total_flops() / 1e12:.3f} "
            f"TFLOP, {tflops:.3g} TFLOP/s = {tflops / rate:.0%} of the {precision} matmul rate"
        )
        del model, optimizer, images


def _loes(*args: str, cwd: Path, env: dict | None = None) -> float:
    """Run ``python -m loes ARGS`` in ``cwd``; its seconds. Raises naming the command and its
    last output lines when it fails."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "loes", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise AssertionError(f"loes {' '.join(args)} exited {result.returncode}:\n{tail}")
    return time.perf_counter() - start


def _epochs(run: Path, label: str, processes: int = 1) -> None:
    """Samples per second and the data-wait share of each epoch, from the folds' histories
    (rank 0's share under DDP, so samples count once per process)."""
    for history_file in sorted(run.glob("fold_*/history.csv")):
        history = pd.read_csv(history_file)
        for row in history.itertuples():
            seconds = row.data_seconds + row.compute_seconds
            print(
                f"  {label} {history_file.parent.name} epoch {row.epoch}: "
                f"{row.samples * processes / seconds:.1f} samples/s, data wait "
                f"{row.data_seconds / seconds:.0%}, BatchNorm recomputation "
                f"{row.batchnorm_seconds:.2f} s, val MAE {row.val_mae:.3f}"
            )


def _pairs(runs: list[Path], pattern: str) -> list[tuple[Path, Path]]:
    """The files matching ``pattern`` in the first run, each with its namesake in the second."""
    files = sorted(runs[0].glob(pattern))
    assert files, f"no {pattern} in {runs[0]}"
    return [(f, runs[1] / f.relative_to(runs[0])) for f in files]


def _weight_difference(a: Path, b: Path) -> float:
    """The largest absolute difference between the weights of two checkpoints (their bytes
    differ anyway: ``torch.save`` names its archive after the temporary file it writes)."""
    one, two = (torch.load(p, weights_only=True)["model"] for p in (a, b))
    return max((one[k].double() - two[k].double()).abs().max().item() for k in one)


def _history_difference(a: Path, b: Path) -> float:
    """The largest absolute difference between two histories' losses, learning rates and
    validation MAE (the seconds columns differ by nature)."""
    one, two = pd.read_csv(a), pd.read_csv(b)
    columns = [c for c in one.columns if "seconds" not in c]
    return float((one[columns] - two[columns]).abs().to_numpy().max())


class Check:
    """The state the parts share: the device, the scratch folder, the cohort and the run."""

    def __init__(self, device: torch.device, work: Path) -> None:
        self.device, self.work = device, work
        self.manifest: Path | None = None
        self.run: Path | None = None

    def settings(self, out: Path) -> Path:
        """The CV's settings for ``out``, written as a YAML file; returns its path."""
        from loes.pipeline import load_config

        preset = CONFIGS / ("gpu.yaml" if self.device.type == "cuda" else "cpu.yaml")
        overrides = [
            f"data.source={self.manifest}",
            f"data.cache_dir={self.work / 'cache'}",
            f"out={out}",
            f"device={self.device.type}",
            *SHORT,
            *SIZES[self.device.type]["settings"],
        ]
        path = out.with_suffix(".yaml")
        path.write_text(load_config(preset, overrides).to_yaml())
        return path

    def cv_twice(self) -> None:
        from loes.data.synthetic import make_tiny_cohort
        from loes.pipeline.run.device import Stopwatch

        sizes = SIZES[self.device.type]
        watch = Stopwatch(torch.device("cpu"))
        self.manifest = make_tiny_cohort(
            self.work / "cohort",
            subjects=sizes["subjects"],
            seed=0,
            resolution=sizes["resolution"],
            workers=max(1, min(8, (os.cpu_count() or 1) // 2)),
        )
        scans = len(pd.read_csv(self.manifest))
        print(
            f"  synthetic cohort: {sizes['subjects']} subjects, {scans} scans at "
            f"{sizes['resolution']} mm in {watch.seconds():.0f} s"
        )
        runs = [self.work / "cv_a", self.work / "cv_b"]
        for run in runs:
            seconds = _loes("cv", "--config", str(self.settings(run)), cwd=self.work)
            print(f"  loes cv {run.name}: 2 folds x 3 epochs in {seconds:.0f} s (set-up included)")
        _epochs(runs[0], runs[0].name)
        a, b = (pd.read_csv(run / "predictions.csv") for run in runs)
        key = [c for c in ("subject", "session", "fold") if c in a.columns]
        merged = a.merge(b, on=key, suffixes=("_a", "_b"))
        assert len(merged) == len(a) == len(b), "the two runs predicted other scans"
        column = next(c for c in ("predicted", "prediction", "network") if f"{c}_a" in merged)
        difference = (merged[f"{column}_a"] - merged[f"{column}_b"]).abs().max()
        weights = max(_weight_difference(a_, b_) for a_, b_ in _pairs(runs, "fold_*/best.pt"))
        learning = max(_history_difference(a_, b_) for a_, b_ in _pairs(runs, "fold_*/history.csv"))
        print(
            f"  the two runs: out-of-fold {column} max |a - b| = {difference:.6f} points over "
            f"{len(merged)} scans; best.pt weights max |a - b| = {weights:.3g}; per-epoch "
            f"losses and val MAE max |a - b| = {learning:.3g}"
            + (" (bit-identical)" if difference == weights == learning == 0 else "")
        )
        assert np.isfinite(merged[[f"{column}_a", f"{column}_b"]].to_numpy()).all()
        if self.device.type == "cpu":  # what the README promises on a CPU, same thread count
            assert difference == weights == learning == 0, "two CPU runs differ"
        self.run = runs[0]
        gpus = torch.cuda.device_count() if self.device.type == "cuda" else 0
        if gpus >= 2:
            run = self.work / "cv_ddp"
            settings = self.settings(run)
            seconds = _loes("cv", "--config", str(settings), "--nproc", str(gpus), cwd=self.work)
            print(f"  torchrun, {gpus} processes: 2 folds x 3 epochs in {seconds:.0f} s")
            _epochs(run, f"DDP x{gpus}", processes=gpus)
        elif self.device.type == "cuda":
            print("  one GPU: DistributedDataParallel across GPUs needs 2 or more; not run")

    def _predict(self, source: Path, device: str, out: str) -> pd.DataFrame:
        seconds = _loes(
            "predict", str(source), str(self.manifest), "--device", device, "--out", out,
            cwd=self.work,
        )  # fmt: skip
        table = pd.read_csv(self.work / out)
        print(f"  loes predict {source.name} on {device}: {len(table)} scans in {seconds:.0f} s")
        return table

    def predict(self) -> None:
        assert self.run is not None, "no run to predict with (the CV failed)"
        device = self.device.type
        mine = self._predict(self.run, device, f"predict_{device}/predictions.csv")
        assert mine["predicted"].notna().all(), "a scan was not scored"
        if device == "cpu":
            print("  (a rehearsal: no GPU to compare with the CPU)")
            return
        cpu = self._predict(self.run, "cpu", "predict_cpu/predictions.csv")
        difference = (mine["predicted"] - cpu["predicted"]).abs().max()
        print(f"  {device} against cpu: max |difference| {difference:.5f} points")
        assert difference <= TOLERANCE_POINTS, f"{device} and cpu differ by {difference:.3f}"

    def explain(self) -> None:
        assert self.run is not None, "no run to explain (the CV failed)"
        outs = {}
        for device in dict.fromkeys((self.device.type, "cpu")):
            out = self.work / f"explain_{device}"
            seconds = _loes(
                "explain", str(self.run), "--method", EXPLAIN_METHODS, "--scans", "2",
                "--smoothgrad-samples", "8", "--device", device, "--out", str(out),
                cwd=self.work,
            )  # fmt: skip
            rows = pd.read_csv(out / "explanations.csv")
            failed = rows[rows["error"].fillna("").astype(str) != ""]
            print(
                f"  loes explain on {device}: {len(rows)} maps in {seconds:.0f} s; "
                f"seconds per map by method: "
                + ", ".join(
                    f"{m} {s:.2f}" for m, s in rows.groupby("method")["seconds"].mean().items()
                )
            )
            assert failed.empty, f"maps failed: {failed[['method', 'error']].to_dict('records')}"
            outs[device] = out
        if self.device.type == "cpu":
            return
        import nibabel as nib

        worst = {}
        for path in sorted(outs["cuda"].glob("scans/*/*.nii.gz")):
            if path.name.endswith("_native.nii.gz"):
                continue
            gpu = np.asarray(nib.load(path).dataobj, dtype=np.float64)
            cpu = np.asarray(nib.load(outs["cpu"] / path.relative_to(outs["cuda"])).dataobj)
            relative = np.abs(gpu - cpu).max() / max(np.abs(cpu).max(), 1e-12)
            worst[path.name] = max(worst.get(path.name, 0.0), relative)
        print(
            "  cuda maps against cpu, max |difference| / peak: "
            + ", ".join(f"{name.removesuffix('.nii.gz')} {v:.2%}" for name, v in worst.items())
        )
        assert worst, "no maps to compare"
        bad = {k: v for k, v in worst.items() if v > MAP_TOLERANCE}
        assert not bad, f"maps differ between cuda and cpu beyond {MAP_TOLERANCE:.0%}: {bad}"

    def bundle(self) -> None:
        assert self.run is not None, "no run to export (the CV failed)"
        device = self.device.type
        bundle = self.work / "bundle"
        seconds = _loes("export", str(self.run), str(bundle), cwd=self.work)
        print(f"  loes export: {sorted(p.name for p in (bundle / 'models').iterdir())} in "
              f"{seconds:.0f} s")  # fmt: skip
        start = time.perf_counter()
        command = [
            sys.executable, "-m", "monai.bundle", "run",
            "--config_file", str(bundle / "configs" / "inference.json"),
            "--bundle_root", str(bundle), "--dataset_dir", str(self.manifest),
            "--output_dir", str(self.work / "bundle_eval"), "--device", device,
        ]  # fmt: skip
        result = subprocess.run(command, cwd=self.work, capture_output=True, text=True)
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
            raise AssertionError(f"the bundle's predict exited {result.returncode}:\n{tail}")
        table = pd.read_csv(self.work / "bundle_eval" / "predictions.csv")
        print(
            f"  the bundle's predict (python -m monai.bundle run) on {device}: {len(table)} "
            f"scans in {time.perf_counter() - start:.0f} s"
        )
        direct = self._predict(bundle, device, f"predict_bundle_{device}/predictions.csv")
        reference = pd.read_csv(self.work / f"predict_{device}" / "predictions.csv")
        for name, other in (("monai.bundle run", table), ("loes predict BUNDLE", direct)):
            difference = (other["predicted"] - reference["predicted"]).abs().max()
            print(f"  {name} against loes predict RUN on {device}: max |difference| "
                  f"{difference:.6f} points")  # fmt: skip
            assert difference <= 1e-4, f"the bundle's {name} differs by {difference}"


def _part(name: str, work: Callable[[], None], failures: list[str]) -> None:
    print(f"\n### {name}", flush=True)
    start = time.perf_counter()
    try:
        work()
    except Exception as error:
        failures.append(name)
        detail = "".join(traceback.format_exception_only(error)).strip()
        if not isinstance(error, AssertionError):
            detail = traceback.format_exc(limit=-3).strip()
        print(f"  FAILED: {detail}")
    print(f"  ({time.perf_counter() - start:.0f} s)", flush=True)


def main() -> None:
    device = _device()
    if device.type == "cuda":
        name = torch.cuda.get_device_name()
        capability = "{}.{}".format(*torch.cuda.get_device_capability())
        what = f"{torch.cuda.device_count()} GPU(s): {name}, compute capability {capability}"
    else:
        what = "a CPU rehearsal (LOES_GPU_CHECK_DEVICE=cpu): smaller sizes, no GPU figures"
    print(f"gpu check on {what}; torch {torch.__version__}, Python {sys.version.split()[0]}")
    start, failures = time.perf_counter(), []
    keep = os.environ.get("LOES_GPU_CHECK_KEEP")
    with tempfile.TemporaryDirectory(prefix="loes-gpu-check-") as tmp:
        work = Path(keep) if keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        check = Check(device, work.resolve())
        _part("packages", check_packages, failures)
        _part("dtypes", lambda: check_dtypes(device), failures)
        _part("all-reduce", lambda: check_all_reduce(device), failures)
        _part("step", lambda: check_step(device), failures)
        _part("cv twice", check.cv_twice, failures)
        _part("predict", check.predict, failures)
        _part("explain", check.explain, failures)
        _part("bundle", check.bundle, failures)
    total = time.perf_counter() - start
    if failures:
        raise SystemExit(f"\ngpu check: {len(failures)} part(s) FAILED: {', '.join(failures)} "
                         f"({total:.0f} s)")  # fmt: skip
    print(f"\ngpu check: every part passed on {device.type} in {total:.0f} s")


if __name__ == "__main__":
    main()
