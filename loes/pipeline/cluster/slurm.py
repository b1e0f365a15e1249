"""A cross-validation as SLURM jobs: one array task per fold and repeat, each running
``loes cv --fold K --repeat R`` (nnU-Net's unit of parallel work: one fold per GPU), and a
report job that waits for the array. SLURM schedules; loes only writes the scripts.

:func:`write_slurm_scripts` writes, atomically, into ``RUN_DIR/slurm/``:

- ``folds.sbatch``: the job array (``--array=0-(folds x repeats - 1)``); task ``i`` trains
  repeat ``i // folds``, fold ``i % folds``. ``--requeue``: a preempted or failed-node task is
  queued again and resumes from its fold's ``last.pt``; logs are appended to
  ``logs/fold-ARRAYID_TASK.out``.
- ``report.sbatch``: ``loes report RUN_DIR``, on a partition without GPUs
  (:func:`report_partition`).
- ``submit.sh [ok|any]``: submits the array, then the report job with
  ``--dependency=afterok:ARRAY`` (only when every task succeeded; the report job is cancelled
  otherwise) or ``afterany`` (a report of whatever finished); prints both job ids.
- ``README.md``: what was written and how to submit, check, resume (naming tasks the array
  has) and report, and, with ``preprocessing.cache: memory``, that every task preprocesses
  the whole cohort (:func:`cache_advice`).

The run folder itself (``config.yaml``, ``scans.csv``, ``splits.json``) is prepared first, as
``loes cv`` would, so that every task reads the same folds.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from loes import __version__
from loes.data.problems import plural
from loes.errors import LoesError
from loes.io import write_text
from loes.pipeline.cluster.slurm_readme import cache_advice, slurm_readme
from loes.pipeline.cross_validation.cv import check_settings, prepare_run
from loes.pipeline.run.config import Config
from loes.pipeline.run.folder import CONFIG_FILE

__all__ = [
    "SlurmResources",
    "SlurmScripts",
    "cache_advice",
    "check_resources",
    "check_sbatch",
    "report_partition",
    "slurm_cross_validation",
    "submit",
    "write_slurm_scripts",
]

_MEMORY = re.compile(r"^\d+[KMGT]?$")
_TIME = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$")  # SLURM's [days-]hours[:minutes[:seconds]]


@dataclass(frozen=True)
class SlurmResources:
    """What each array task asks SLURM for; ``None``: the cluster's default.

    ``gpus_per_job`` GPUs (``--gres=gpu:N``; with N > 1 the task trains with N processes,
    ``loes cv --nproc N``), ``cpus_per_job`` CPU cores (``--cpus-per-task``, also the tasks'
    ``OMP_NUM_THREADS``), ``mem`` (``--mem``, e.g. ``32G``), ``time`` (``--time``, e.g.
    ``04:00:00`` or ``1-00:00:00``), ``partition`` and ``account``. ``report_partition``: the
    partition of the report job, which needs no GPU; ``None``: the fold tasks' ``partition``
    when they ask for no GPU, else none (the cluster's default partition), never a GPU
    partition it would hold a GPU node for nothing in.
    """

    partition: str | None = None
    account: str | None = None
    gpus_per_job: int = 0
    cpus_per_job: int | None = None
    mem: str | None = None
    time: str | None = None
    report_partition: str | None = None


@dataclass(frozen=True)
class SlurmScripts:
    """The files :func:`write_slurm_scripts` wrote and the array's size."""

    folder: Path
    folds: Path
    report: Path
    submit: Path
    readme: Path
    tasks: int


def check_resources(resources: SlurmResources, config: Config) -> None:
    """Refuse resources SLURM would refuse, or that contradict the settings.

    Raises:
        LoesError: naming the flag and what is allowed.
    """
    r = resources
    if r.gpus_per_job < 0:
        raise LoesError(f"--gpus-per-job must be 0 or more, got {r.gpus_per_job}.")
    if r.cpus_per_job is not None and r.cpus_per_job < 1:
        raise LoesError(f"--cpus-per-job must be at least 1, got {r.cpus_per_job}.")
    if r.mem is not None and not _MEMORY.match(r.mem):
        raise LoesError(
            f"--mem must be a number with an optional unit K, M, G or T (32G), got {r.mem!r}."
        )
    if r.time is not None and not _TIME.match(r.time):
        raise LoesError(
            f"--time must be SLURM's [days-]hours:minutes:seconds (04:00:00, 1-00:00:00), "
            f"got {r.time!r}."
        )
    if r.gpus_per_job == 0 and (config.device == "cuda" or config.preprocessing.cache == "gpu"):
        raise LoesError(
            f"{'device=cuda' if config.device == 'cuda' else 'preprocessing.cache=gpu'} needs a "
            "GPU in each job: give --gpus-per-job 1 (or more)."
        )
    if r.gpus_per_job > 0 and config.device == "cpu":
        raise LoesError(
            f"--gpus-per-job {r.gpus_per_job} with device=cpu: the GPUs would sit idle; use "
            "device=auto or cuda, or --gpus-per-job 0."
        )
    if r.gpus_per_job > config.training.batch_size:
        raise LoesError(
            f"--gpus-per-job {r.gpus_per_job}: training.batch_size={config.training.batch_size} "
            "is smaller; each GPU's process needs at least one scan per step."
        )


_PLAIN = re.compile(r"[A-Za-z0-9_./:,=+@%-]+")


def sbatch_value(value: object) -> str:
    """A value as an ``#SBATCH`` line holds it: sbatch splits these lines at blanks, toggles
    quoting at ``"``, drops a ``\\`` and keeps the character after it, and ends the line at an
    unescaped ``#`` (SLURM's ``sbatch`` option parser); so a value with any of these is
    double-quoted with ``\\`` before each ``\\``, ``"`` and ``#``. ``$`` and non-ASCII
    letters need nothing: sbatch expands no variables there.

    Examples::

        >>> sbatch_value("ALD study/runs/run 1")
        '"ALD study/runs/run 1"'
        >>> sbatch_value("gpu")
        'gpu'
    """
    text = str(value)
    if _PLAIN.fullmatch(text):
        return text
    escaped = "".join(f"\\{c}" if c in '\\"#' else c for c in text)
    return f'"{escaped}"'


def _file_pattern(folder: Path, name: str) -> str:
    """``folder/name`` for ``--output``, where SLURM replaces ``%`` patterns: the folder's own
    ``%`` doubled, so that only ``name``'s (``%A``, ``%a``, ``%j``) are replaced."""
    return sbatch_value(str(folder).replace("%", "%%") + "/" + name)


def _sbatch_lines(resources: SlurmResources, *, gpus: bool) -> list[str]:
    r = resources
    options = {
        "partition": r.partition,
        "account": r.account,
        "cpus-per-task": r.cpus_per_job,
        "mem": r.mem,
        "time": r.time,
        "gres": f"gpu:{r.gpus_per_job}" if gpus and r.gpus_per_job else None,
    }
    return [
        f"#SBATCH --{key}={sbatch_value(value)}"
        for key, value in options.items()
        if value is not None
    ]


def _folds_script(
    run_dir: Path, folder: Path, resources: SlurmResources, n_folds: int, tasks: int
) -> str:
    loes = [sys.executable, "-m", "loes", "cv", "--config", str(run_dir / CONFIG_FILE)]
    nproc = f" --nproc {resources.gpus_per_job}" if resources.gpus_per_job > 1 else ""
    threads = (
        ['export OMP_NUM_THREADS="$SLURM_CPUS_PER_TASK"  # torch uses the cores SLURM gave']
        if resources.cpus_per_job
        else []
    )
    return "\n".join(
        [
            "#!/bin/bash",
            f"# One array task per fold and repeat of {run_dir}: task i trains repeat",
            f"# i / {n_folds}, fold i % {n_folds} (`loes cv --fold`). Written by `loes slurm`",
            f"# (loes {__version__}); submit with submit.sh, which also queues the report job.",
            f"#SBATCH --job-name={sbatch_value(f'loes-{run_dir.name}')}",
            f"#SBATCH --array=0-{tasks - 1}",
            f"#SBATCH --output={_file_pattern(folder / 'logs', 'fold-%A_%a.out')}",
            "#SBATCH --open-mode=append",
            "#SBATCH --requeue",
            f"#SBATCH --chdir={sbatch_value(Path.cwd())}",
            *_sbatch_lines(resources, gpus=True),
            "set -euo pipefail",
            'task="${SLURM_ARRAY_TASK_ID:?submit this script with sbatch (it is one array task)}"',
            f"repeat=$((task / {n_folds}))",
            f"fold=$((task % {n_folds}))",
            *threads,
            'echo "loes: repeat $repeat fold $fold on $(hostname), start number '
            '$((${SLURM_RESTART_COUNT:-0} + 1)), $(date)"',
            "# a requeued task resumes from its fold's last.pt; a finished fold does nothing",
            f'exec {shlex.join(loes)} --fold "$fold" --repeat "$repeat"{nproc}',
            "",
        ]
    )


def report_partition(resources: SlurmResources) -> str | None:
    """The partition the report job asks for: ``report_partition`` when given, else the fold
    tasks' partition when they ask for no GPU (a CPU cluster), else ``None`` (the cluster's
    default partition): the report needs no GPU, and a GPU partition would queue it for a
    GPU node, or refuse a job that asks for no GPU."""
    if resources.report_partition is not None:
        return resources.report_partition
    return resources.partition if resources.gpus_per_job == 0 else None


def _report_script(run_dir: Path, folder: Path, resources: SlurmResources) -> str:
    partition = report_partition(resources)
    light = SlurmResources(
        partition=partition,
        account=resources.account,
        cpus_per_job=1,
        mem="4G",
        time="00:30:00",
    )
    default = (
        [
            f"# No --partition: the folds' partition ({resources.partition}) is for GPU jobs and",
            "# the report needs no GPU, so it goes to the cluster's default partition; to choose",
            "# one, add a line `#SBATCH --partition=CPU_PARTITION` here.",
        ]
        if partition is None and resources.partition is not None
        else []
    )
    return "\n".join(
        [
            "#!/bin/bash",
            f"# The report of {run_dir} (`loes report`): predictions.csv, report.json, .md,",
            "# .html. submit.sh queues it after the fold array; it reports the finished folds",
            f"# and names the missing ones. Written by `loes slurm` (loes {__version__}).",
            f"#SBATCH --job-name={sbatch_value(f'loes-{run_dir.name}-report')}",
            f"#SBATCH --output={_file_pattern(folder / 'logs', 'report-%j.out')}",
            f"#SBATCH --chdir={sbatch_value(Path.cwd())}",
            *_sbatch_lines(light, gpus=False),
            *default,
            "set -euo pipefail",
            f"exec {shlex.join([sys.executable, '-m', 'loes', 'report', str(run_dir)])}",
            "",
        ]
    )


def _submit_script(tasks: int) -> str:
    return "\n".join(
        [
            "#!/usr/bin/env bash",
            "# Submit the fold array, then the report job that waits for it; prints both job ids.",
            "#   submit.sh      the report runs when every fold succeeded (afterok); if a task",
            "#                  fails, SLURM cancels it (see README.md: resume, then report)",
            "#   submit.sh any  the report runs when the array ends, whatever happened (afterany)",
            "# Written by `loes slurm`.",
            "set -euo pipefail",
            'after="${1:-ok}"',
            'case "$after" in ok | any) ;; *) echo "usage: $0 [ok|any]" >&2; exit 2 ;; esac',
            'here="$(cd "$(dirname "$0")" && pwd)"',
            'array="$(sbatch --parsable "$here/folds.sbatch")"',
            'array="${array%%;*}"  # "id;cluster" on a federation',
            f'echo "folds: job array $array ({plural(tasks, "task")})"',
            'report="$(sbatch --parsable --dependency="after$after:$array" \\',
            '    --kill-on-invalid-dep=yes "$here/report.sbatch")"',
            'report="${report%%;*}"',
            'echo "report: job $report (after$after:$array)"',
            "",
        ]
    )


def write_slurm_scripts(
    run_dir: Path,
    resources: SlurmResources,
    n_folds: int,
    repeats: int,
    cache: str = "disk",
    n_scans: int | None = None,
) -> SlurmScripts:
    """Write the job scripts of the prepared run folder ``run_dir`` (``n_folds`` folds per
    repeat) into ``run_dir/slurm/`` (see the module docstring); paths in them are absolute,
    the jobs start in the current folder (``--chdir``) and run this Python
    (``sys.executable``). ``cache`` (the run's ``preprocessing.cache``) and ``n_scans`` (its
    scans): the README says what :func:`cache_advice` says."""
    run_dir = run_dir.absolute()
    folder = run_dir / "slurm"
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    tasks = n_folds * repeats
    scripts = SlurmScripts(
        folder=folder,
        folds=folder / "folds.sbatch",
        report=folder / "report.sbatch",
        submit=folder / "submit.sh",
        readme=folder / "README.md",
        tasks=tasks,
    )
    write_text(scripts.folds, _folds_script(run_dir, folder, resources, n_folds, tasks))
    write_text(scripts.report, _report_script(run_dir, folder, resources))
    write_text(scripts.submit, _submit_script(tasks))
    advice = cache_advice(cache, tasks, n_scans)
    write_text(scripts.readme, slurm_readme(run_dir, folder, tasks, n_folds, advice))
    for script in (scripts.folds, scripts.report, scripts.submit):
        script.chmod(0o755)
    return scripts


def check_sbatch() -> None:
    """Raises LoesError when SLURM's ``sbatch`` is not on ``PATH``."""
    if shutil.which("sbatch") is None:
        raise LoesError(
            "--submit needs SLURM's sbatch, which is not on PATH here; run loes slurm on the "
            "cluster's login node, or leave out --submit and run the submit.sh it writes there."
        )


def submit(scripts: SlurmScripts, after: str = "ok") -> tuple[str, str]:
    """Run ``submit.sh`` (``after``: ``ok`` or ``any``); return the (array, report) job ids.

    Raises:
        LoesError: when ``sbatch`` is missing or refuses a job, with its message.
    """
    check_sbatch()
    result = subprocess.run(
        ["bash", str(scripts.submit), after], capture_output=True, text=True, env=os.environ
    )
    ids = dict(re.findall(r"^(folds|report): job(?: array)? (\S+)", result.stdout, re.M))
    if result.returncode != 0 or set(ids) != {"folds", "report"}:
        done = f" (the fold array {ids['folds']} was submitted)" if "folds" in ids else ""
        raise LoesError(
            f"sbatch refused the jobs of {scripts.submit}{done}: "
            f"{result.stderr.strip() or result.stdout.strip()}"
        )
    return ids["folds"], ids["report"]


def slurm_cross_validation(
    config: Config, resources: SlurmResources, submit_jobs: bool = False, report_after: str = "ok"
) -> SlurmScripts:
    """What ``loes slurm`` does: check the settings and resources, prepare the run folder as
    ``loes cv`` would (``config.yaml``, ``scans.csv``, ``splits.json``), write the job scripts
    into ``RUN_DIR/slurm/`` and, with ``submit_jobs``, submit them (``report_after``: ``"ok"``
    or ``"any"``, see :func:`submit`); prints what it wrote and submitted. Returns the scripts.

    Raises:
        LoesError: for bad settings or resources, or, with ``submit_jobs``, when ``sbatch`` is
            missing (before anything is written) or refuses a job.
    """
    check_resources(resources, config)
    if submit_jobs:
        check_sbatch()  # before anything is written
    check_settings(config)
    run_dir, table, splits = prepare_run(config, device=None)
    cache = config.preprocessing.cache
    scripts = write_slurm_scripts(
        run_dir, resources, splits.n_folds, splits.repeats, cache, len(table)
    )
    print(f"wrote {scripts.folds} ({scripts.tasks} array tasks), {scripts.report},")
    print(f"      {scripts.submit} and {scripts.readme}")
    advice = cache_advice(cache, scripts.tasks, len(table))
    if advice:
        print(f"note: {advice}")
    if not submit_jobs:
        print(f"submit with: bash {shlex.quote(str(scripts.submit))}")
        return scripts
    array, report = submit(scripts, report_after)
    print(f"submitted: fold array {array} ({scripts.tasks} tasks), report job {report}")
    logs = shlex.quote(str(scripts.folder / "logs"))
    print(f"check with: squeue -j {array},{report}; logs in {logs}")
    return scripts
