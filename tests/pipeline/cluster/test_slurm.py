"""The SLURM files ``loes slurm`` writes: the report job off the GPU partition, the README's
resume example naming tasks the array has, and the advice on ``preprocessing.cache``."""

import re
import subprocess

import pytest

from loes.pipeline.cluster.slurm import (
    SlurmResources,
    cache_advice,
    report_partition,
    write_slurm_scripts,
)


def _sbatch(path, option):
    return re.findall(rf"^#SBATCH --{option}=(\S+)$", path.read_text(), re.M)


@pytest.mark.parametrize(
    ("resources", "folds_partition", "report"),
    [
        (SlurmResources(partition="gpu", gpus_per_job=1), ["gpu"], []),
        (SlurmResources(partition="gpu", gpus_per_job=2, report_partition="cpu"), ["gpu"], ["cpu"]),
        (SlurmResources(partition="cpu"), ["cpu"], ["cpu"]),  # a CPU cluster: the same
        (SlurmResources(), [], []),
    ],
)
def test_the_report_job_never_asks_for_the_gpu_partition(
    tmp_path, resources, folds_partition, report
):
    scripts = write_slurm_scripts(tmp_path / "run", resources, n_folds=5, repeats=1)
    assert _sbatch(scripts.folds, "partition") == folds_partition
    assert _sbatch(scripts.report, "partition") == report
    assert report_partition(resources) == (report[0] if report else None)
    assert _sbatch(scripts.report, "gres") == []
    text = scripts.report.read_text()
    if resources.gpus_per_job and not report:
        assert "the report needs no GPU, so it goes to the cluster's default partition" in text
    assert subprocess.run(["bash", "-n", scripts.report]).returncode == 0


@pytest.mark.parametrize(("n_folds", "repeats"), [(5, 1), (2, 3), (2, 1), (10, 2), (1, 1)])
def test_the_readme_resumes_tasks_the_array_has(tmp_path, n_folds, repeats):
    scripts = write_slurm_scripts(tmp_path / "run", SlurmResources(), n_folds, repeats)
    tasks = n_folds * repeats
    assert _sbatch(scripts.folds, "array") == [f"0-{tasks - 1}"]
    readme = scripts.readme.read_text()
    named = re.findall(r"--array=(\S+)", readme)
    assert named, readme
    ids = [int(i) for spec in named for i in spec.split(",")]
    assert set(ids) <= set(range(tasks)), (ids, tasks)
    first = ids[0]
    assert f"task {first} is repeat {first // n_folds}, fold {first % n_folds}" in readme.replace(
        "\\\n", ""
    )
    assert re.findall(r"fold-ARRAYID_(\d+)\.out", readme) == ["0"]


def test_a_memory_cache_is_said_to_cost_every_task_the_whole_cohort(tmp_path):
    advice = cache_advice("memory", tasks=5, n_scans=212)
    assert advice.startswith(
        "preprocessing.cache=memory: each of the 5 array tasks preprocesses all 212 scans"
    )
    assert "preprocessing.cache=disk" in advice
    assert cache_advice("disk", tasks=5, n_scans=212) is None
    assert cache_advice("memory", tasks=1, n_scans=212) is None  # one task: nothing shared
    run = tmp_path / "run"
    readme = write_slurm_scripts(run, SlurmResources(), 5, 1, "memory", 212).readme.read_text()
    assert f"## Preprocessing\n\n{advice}\n" in readme
    readme = write_slurm_scripts(run, SlurmResources(), 5, 1, "disk", 212).readme.read_text()
    assert "## Preprocessing" not in readme
