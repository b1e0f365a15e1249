"""``loes slurm``: the job scripts it writes, its errors, and a real one-node SLURM cluster
(``scripts/slurm-single-node.sh``) running the tiny cohort's folds as an array plus the
report job."""

import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from loes.cli import main

ROOT = Path(__file__).parents[2]


def _slurm(config, *flags):
    return main(["slurm", "--config", str(config), *flags])


@pytest.mark.slow
def test_the_scripts_run_each_fold_once_and_ask_for_the_resources(tiny_run_file, tmp_path, capsys):
    run = tmp_path / "run"
    flags = ["--partition", "gpu", "--account", "lab", "--gpus-per-job", "2"]
    flags += ["--cpus-per-job", "8", "--mem", "32G", "--time", "04:00:00"]
    config = tiny_run_file(run, "device=auto", "cv.repeats=3")
    assert _slurm(config, *flags) == 0
    out = capsys.readouterr().out
    assert f"bash {run / 'slurm' / 'submit.sh'}" in out
    # the tiny configuration keeps preprocessed scans in memory: every task preprocesses all
    assert "note: preprocessing.cache=memory: each of the 6 array tasks preprocesses all 15" in (
        out.replace("\n", " ")
    )
    folds = (run / "slurm" / "folds.sbatch").read_text()
    for line in [
        "#SBATCH --array=0-5",  # 2 folds x 3 repeats
        "#SBATCH --requeue",
        "#SBATCH --open-mode=append",
        "#SBATCH --partition=gpu",
        "#SBATCH --account=lab",
        "#SBATCH --gres=gpu:2",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=32G",
        "#SBATCH --time=04:00:00",
        f"#SBATCH --chdir={Path.cwd()}",
        "repeat=$((task / 2))",
        "fold=$((task % 2))",
    ]:
        assert line in folds.splitlines(), line
    assert re.search(
        r'-m loes cv --config \S+/run/config.yaml --fold "\$fold" --repeat "\$repeat"'
        r" --nproc 2$",
        folds,
        re.M,
    )
    report = (run / "slurm" / "report.sbatch").read_text()
    assert f"-m loes report {run}" in report
    assert "--gres" not in report
    assert not re.search(r"^#SBATCH --partition", report, re.M)  # needs no GPU: not "gpu"
    for script in ("folds.sbatch", "report.sbatch", "submit.sh"):
        assert subprocess.run(["bash", "-n", run / "slurm" / script]).returncode == 0
    readme = (run / "slurm" / "README.md").read_text()
    assert "afterok" in readme
    assert "## Preprocessing" in readme
    # the run folder is ready, so every task reads the same folds
    # the login node writes what `loes cv` writes before training, the scans' profile too
    written = {"config.yaml", "scans.csv", "set_aside.csv", "splits.json", "slurm"}
    assert {p.name for p in run.iterdir()} == {*written, "training_profile.json"}


@pytest.mark.slow
def test_odd_folder_names_are_quoted_in_every_sbatch_line_and_command(
    tiny_run_file, tmp_path, capsys
):
    run = tmp_path / "ALD study" / 'run "one" #1 $x ü 100%'
    assert _slurm(tiny_run_file(run)) == 0
    printed = next(line for line in capsys.readouterr().out.splitlines() if "submit with" in line)
    assert shlex.split(printed.split(": ", 1)[1]) == ["bash", str(run / "slurm" / "submit.sh")]
    folds = (run / "slurm" / "folds.sbatch").read_text().splitlines()
    logs = str(run / "slurm" / "logs").replace("\\", "\\\\").replace('"', '\\"')
    logs = logs.replace("#", "\\#").replace("%", "%%")
    assert f'#SBATCH --output="{logs}/fold-%A_%a.out"' in folds
    assert '#SBATCH --job-name="loes-run \\"one\\" \\#1 $x ü 100%"' in folds
    for script in ("folds.sbatch", "report.sbatch", "submit.sh"):
        assert subprocess.run(["bash", "-n", run / "slurm" / script]).returncode == 0
    readme = (run / "slurm" / "README.md").read_text()
    assert f"bash {shlex.quote(str(run / 'slurm' / 'submit.sh'))}" in readme


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--mem", "32X"], r"--mem must be a number with an optional unit"),
        (["--time", "four hours"], r"--time must be SLURM's"),
        (["--gpus-per-job", "1"], r"--gpus-per-job 1 with device=cpu"),
        (["--cpus-per-job", "0"], r"--cpus-per-job must be at least 1"),
    ],
)
def test_bad_resources_are_refused_before_anything_is_written(
    tiny_run_file, tmp_path, capsys, flags, message
):
    run = tmp_path / "run"
    assert _slurm(tiny_run_file(run), *flags) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert not run.exists()


def test_submit_without_sbatch_is_a_clear_error(tiny_run_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    run = tmp_path / "run"
    assert _slurm(tiny_run_file(run), "--submit") == 2
    assert capsys.readouterr().err == (
        "loes slurm: error: --submit needs SLURM's sbatch, which is not on PATH here; run loes "
        "slurm on the cluster's login node, or leave out --submit and run the submit.sh it "
        "writes there.\n"
    )
    assert not run.exists()


def _sinfo_state() -> str:
    try:
        result = subprocess.run(
            ["sinfo", "--noheader", "--format=%T"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


@pytest.fixture(scope="module")
def slurm_cluster():
    """A running SLURM cluster: the one there is, or the one-node cluster the repository's
    script starts; the test is skipped, saying why, where neither can be had."""
    if not shutil.which("sbatch"):
        pytest.skip("SLURM is not installed (no sbatch): apt-get install slurm-wlm munge")
    if not _sinfo_state():
        started = subprocess.run(
            [ROOT / "scripts" / "slurm-single-node.sh"], capture_output=True, text=True
        )
        if started.returncode != 0 or not _sinfo_state():
            pytest.skip(f"no SLURM cluster could be started: {started.stderr.strip()[-500:]}")
    return _sinfo_state()


@pytest.mark.slow
def test_a_real_cluster_runs_the_folds_and_the_report_of_the_sequential_run(
    slurm_cluster, one_thread_run, tiny_run_file, tmp_path, capsys
):
    # a lab's folder names: blanks, quotes, $, a non-ASCII letter, a % (SLURM's pattern sign)
    run = tmp_path / "ALD study" / "run 'one' $x ü 100%"
    config = tiny_run_file(run)
    flags = ["--cpus-per-job", "1", "--mem", "3G", "--time", "00:15:00", "--submit"]
    assert _slurm(config, *flags) == 0
    out = capsys.readouterr().out
    array, report = re.search(
        r"submitted: fold array (\d+) \(2 tasks\), report job (\d+)", out
    ).groups()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        queued = subprocess.run(
            ["squeue", "--noheader", "--jobs", f"{array},{report}"], capture_output=True, text=True
        ).stdout
        if not queued.strip():
            break
        time.sleep(2)
    logs = {p.name: p.read_text() for p in (run / "slurm" / "logs").iterdir()}
    assert not queued.strip(), f"still queued after 10 minutes:\n{queued}\n{logs}"
    assert sorted(logs) == [f"fold-{array}_0.out", f"fold-{array}_1.out", f"report-{report}.out"]
    assert "repeat 0 fold 1: MAE network" in logs[f"fold-{array}_1.out"], logs
    assert "Report written to" in logs[f"report-{report}.out"], logs
    # the tasks ran with one thread each, as the reference: the same bytes
    assert (run / "predictions.csv").read_bytes() == (
        one_thread_run / "predictions.csv"
    ).read_bytes()
    assert (run / "report.html").is_file()
