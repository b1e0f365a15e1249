"""Synthetic cohort speed: seconds per 1 mm scan (skull-stripped, and whole heads on the same
scans, interleaved so that a busy machine slows both alike), the projected default-cohort time,
and the tiny test cohort in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from loes.data.synthetic.anatomy import load_anatomy
from loes.data.synthetic.cohort import _jobs, render_scan
from loes.data.synthetic.disease import draw_cohort_table
from loes.data.synthetic.head import load_head

SCANS = 12  # spread over the default cohort's table

_TINY = """
import json, sys, tempfile, time
start = time.perf_counter()
from loes.data.synthetic import make_tiny_cohort
imported = time.perf_counter()
with tempfile.TemporaryDirectory() as out:
    scans = len(open(make_tiny_cohort(out)).readlines()) - 1
json.dump({"imports": imported - start, "cohort": time.perf_counter() - imported,
           "scans": scans}, sys.stdout)
"""


def tiny_cohort() -> dict:
    """Seconds to import and to write ``make_tiny_cohort`` in a fresh interpreter."""
    run = subprocess.run([sys.executable, "-c", _TINY], capture_output=True, text=True, check=True)
    return json.loads(run.stdout)


def main() -> None:
    start = time.perf_counter()
    load_anatomy()
    setup = time.perf_counter() - start
    start = time.perf_counter()
    load_head()
    head_setup = time.perf_counter() - start
    table = draw_cohort_table(66, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        jobs = _jobs(Path(tmp), table, seed=0, contrast="t1w", resolution=1.0)
        heads = _jobs(Path(tmp) / "head", table, 0, "t1w", 1.0, whole_head=True)
        at = np.linspace(0, len(jobs) - 1, SCANS).round().astype(int)
        render_scan(jobs[at[0]])  # warm the per-process caches
        render_scan(heads[at[0]])
        times, voxels, size = [], 0, 0
        head_times, head_voxels, head_size = [], 0, 0
        for i in at:
            start = time.perf_counter()
            sidecar = render_scan(jobs[i])
            times.append(time.perf_counter() - start)
            voxels += int(np.prod(sidecar["matrix"]))
            size += os.path.getsize(Path(tmp) / jobs[i]["image"])
            start = time.perf_counter()
            sidecar = render_scan(heads[i])
            head_times.append(time.perf_counter() - start)
            head_voxels += int(np.prod(sidecar["matrix"]))
            head_size += os.path.getsize(Path(tmp) / "head" / heads[i]["image"])
    per_scan = float(np.mean(times))
    cores = os.cpu_count() or 1
    workers = min(2, cores)
    projected = setup + len(table) * per_scan / workers
    mvox, mbytes = voxels / SCANS / 1e6, size / SCANS / 1e6
    print(f"anatomy setup, once per process  {setup:8.2f} s")
    print(f"scans rendered {SCANS} (1 mm T1w, {mvox:.1f} Mvoxels, {mbytes:.1f} MB)")
    print(f"seconds per scan, one core {per_scan:.2f} ({min(times):.2f}-{max(times):.2f})")
    print(f"volumes per second, one core       {1 / per_scan:8.2f}")
    print(f"projected cohort, {len(table)} scans, {workers} workers: {projected / 60:.1f} min")
    per_head = float(np.mean(head_times))
    print(f"whole head: head setup once per process {head_setup:8.2f} s")
    print(
        f"whole head: {head_voxels / SCANS / 1e6:.1f} Mvoxels, {head_size / SCANS / 1e6:.1f} MB; "
        f"seconds per scan, one core {per_head:.2f} ({min(head_times):.2f}-{max(head_times):.2f})"
        f", {per_head / per_scan:.2f}x stripped"
    )
    tiny = tiny_cohort()
    print(
        f"tiny cohort ({tiny['scans']} scans at 4 mm), fresh process: {tiny['cohort']:.2f} s "
        f"(+ {tiny['imports']:.2f} s of imports)"
    )
