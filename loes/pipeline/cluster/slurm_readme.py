"""The ``README.md`` that ``loes slurm`` writes beside its scripts (how to submit, check and
resume the array, every path shell-quoted), and its advice on ``preprocessing.cache``."""

from __future__ import annotations

import shlex
from pathlib import Path

from loes import __version__
from loes.data.problems import plural

__all__ = ["cache_advice", "slurm_readme"]


def cache_advice(cache: str, tasks: int, n_scans: int | None = None) -> str | None:
    """What ``loes slurm`` says about ``preprocessing.cache`` for ``tasks`` array tasks: with
    ``memory`` (or ``gpu``) each task preprocesses every scan of the cohort itself, and
    ``disk`` lets the tasks share one cache; ``None`` with ``disk`` or a single task.

    loes does not switch to ``disk`` by itself: the disk cache is only shared when
    ``data.cache_dir`` lies on a filesystem every node sees, which only the user knows."""
    if cache == "disk" or tasks < 2:
        return None
    scans = f"all {n_scans} scans" if n_scans else "every scan"
    return (
        f"preprocessing.cache={cache}: each of the {tasks} array tasks preprocesses {scans} "
        "of the cohort itself before it trains (the main job's 212 scans took 36-65 s on 2 "
        "CPU cores, 12 minutes with skull stripping), and again when it is requeued. With "
        "preprocessing.cache=disk the tasks share one cache of preprocessed scans under "
        "data.cache_dir/persistent/: a task reads the scans another has written (tasks "
        "starting at the same moment may both preprocess a scan), and requeued tasks and "
        "later runs with the same preprocessing read them all. Run loes slurm again with "
        "preprocessing.cache=disk, data.cache_dir on a filesystem every node sees."
    )


def _q(path: Path) -> str:
    """A path as a shell command in the README holds it."""
    return shlex.quote(str(path))


def _resume_tasks(tasks: int) -> str:
    """Example task ids for the README's resume command, all within ``0..tasks-1``."""
    return ",".join(str(i) for i in sorted({tasks // 2, tasks - 1}))


def slurm_readme(
    run_dir: Path, folder: Path, tasks: int, n_folds: int, advice: str | None = None
) -> str:
    example = _resume_tasks(tasks)
    first = int(example.split(",")[0])
    cache = f"\n## Preprocessing\n\n{advice}\n" if advice else ""
    return f"""# SLURM jobs of {run_dir}

Written by `loes slurm` (loes {__version__}). The run folder already holds `config.yaml`,
`scans.csv` and `splits.json`, so every job trains the same folds.

| file | what it is |
|---|---|
| `folds.sbatch` | job array of {plural(tasks, "task")}: task i trains repeat i / {n_folds}, fold \
i % {n_folds} (`loes cv --fold`) |
| `report.sbatch` | `loes report {run_dir}` |
| `submit.sh` | submits the array, then the report job that waits for it |
| `logs/` | `fold-ARRAYID_TASK.out` (appended to when a task is requeued), `report-JOBID.out` |

## Submit

```bash
bash {_q(folder / "submit.sh")}        # report after every fold succeeded (afterok)
bash {_q(folder / "submit.sh")} any    # report when the array ends, whatever happened (afterany)
```

`loes slurm ... --submit` does the same and prints the job ids.

## Check

```bash
squeue --me                        # waiting and running tasks
sacct -j ARRAYID --format=JobID,State,Elapsed,MaxRSS
tail -f {_q(folder / "logs" / "fold-ARRAYID_0.out")}
```

## Resume

Tasks are requeue-safe (`#SBATCH --requeue`): a preempted task starts again and continues from
its fold's last checkpoint (`fold_K/last.pt`); a finished fold does nothing. If tasks failed
(time limit, out of memory), the report job of `submit.sh` is cancelled: fix the cause (more
`--time` or `--mem`: edit `folds.sbatch` or run `loes slurm` again), then submit the failed
tasks alone and the report after them:

```bash
sacct -j ARRAYID -X -n -P --format=JobID,State | grep -v COMPLETED   # ARRAYID_2|TIMEOUT: task 2
array=$(sbatch --parsable --array={example} {_q(folder / "folds.sbatch")})   # the failed task ids
sbatch --dependency=afterok:$array {_q(folder / "report.sbatch")}
```

The array's tasks are numbered 0-{tasks - 1}: task i trains repeat i / {n_folds}, fold \
i % {n_folds} (task {first} is repeat {first // n_folds}, fold {first % n_folds}).
{cache}
## Report

`loes report {run_dir}` rewrites the report from the finished folds at any time; a report of
a partial run is labelled partial and names the missing folds. Open `{run_dir / "report.html"}`.
"""
