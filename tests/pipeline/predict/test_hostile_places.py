"""A model folder that is read-only (a lab's shared folder, a container image) and a disk that
fills up mid-export: real permissions and a real file-size limit (``RLIMIT_FSIZE``), in fresh
processes of the `loes` command. Root ignores permissions, so under root the command runs
without the capabilities that let it (``setpriv``, util-linux), as a user's would."""

import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]


def _read_only(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)


#: root without the capabilities that override file permissions
_AS_A_USER = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner"]


def _loes(args: list[str], cwd: Path, file_limit: int | None = None):
    """``python -m loes.cli ARGS`` in a fresh process that file permissions bind, under a
    file-size limit (bytes) when given."""

    def limits():
        if file_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLCONFIGDIR": str(cwd)}
    user = _AS_A_USER if os.geteuid() == 0 else []
    return subprocess.run(
        [*user, sys.executable, "-m", "loes.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        preexec_fn=limits,
        timeout=600,
    )


@pytest.fixture
def read_only_run(tiny_run, tmp_path):
    run = shutil.copytree(tiny_run, tmp_path / "models" / "run")
    _read_only(tmp_path / "models")
    work = tmp_path / "work"
    work.mkdir()
    yield run, work
    for path in [tmp_path / "models", *(tmp_path / "models").rglob("*")]:
        path.chmod(0o755)  # for pytest to clean it


def test_predict_works_from_a_read_only_model_folder(read_only_run, tiny_manifest):
    run, work = read_only_run
    scan = shutil.copy(next(tiny_manifest.parent.glob("sub-001/ses-01/anat/*.nii.gz")), work)
    done = _loes(["predict", str(run), scan, "--out", str(work / "p.csv")], work)
    assert done.returncode == 0, done.stderr
    assert len(pd.read_csv(work / "p.csv")) == 1


def test_explain_says_before_any_work_that_its_default_place_is_read_only(read_only_run):
    run, work = read_only_run
    done = _loes(["explain", str(run), "--scans", "1"], work)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert f"cannot write in {run / 'explanations'} (Permission denied)" in done.stderr
    assert "choose another place with --out" in done.stderr
    assert "fold" not in done.stderr.lower()  # said before any model was loaded


def test_an_export_onto_a_full_disk_fails_cleanly_and_succeeds_once_there_is_room(
    tiny_run, tmp_path
):
    out = tmp_path / "bundle"
    done = _loes(["export", str(tiny_run), str(out)], tmp_path, file_limit=200_000)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "cannot write " in done.stderr
    assert "File too large" in done.stderr
    assert "ulimit -f" in done.stderr
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".bundle")] == []
    again = _loes(["export", str(tiny_run), str(out)], tmp_path)
    assert again.returncode == 0, again.stderr
    assert (out / "models" / "ensemble.json").is_file()


def test_predict_under_a_file_size_limit_fails_cleanly_and_succeeds_after(
    tiny_run, tiny_manifest, tmp_path
):
    scan = next(tiny_manifest.parent.glob("sub-001/ses-01/anat/*.nii.gz"))
    out = tmp_path / "p.csv"
    done = _loes(["predict", str(tiny_run), str(scan), "--out", str(out)], tmp_path, 4_000)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "cannot write " in done.stderr
    assert "File too large" in done.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no leftovers
    again = _loes(["predict", str(tiny_run), str(scan), "--out", str(out)], tmp_path)
    assert again.returncode == 0, again.stderr
    assert len(pd.read_csv(out)) == 1
