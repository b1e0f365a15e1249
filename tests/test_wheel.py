"""The wheel holds everything its commands need: built from this checkout, installed (not
editable) into a fresh virtual environment, it writes a report, a prediction page and an
explanation page from a finished run, run from a folder outside the checkout."""

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(command, cwd, **kwargs):
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The ``python`` of a fresh virtual environment holding the wheel of this checkout; its
    other packages are this environment's (a ``.pth`` line, which runs no ``.pth`` files there,
    so the editable install of the checkout stays out)."""
    folder = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", "dist"], folder)
    (wheel,) = (folder / "dist").glob("loes-*.whl")
    _run([sys.executable, "-m", "venv", "--without-pip", "venv"], folder)
    python = folder / "venv" / "bin" / "python"
    site = Path(
        _run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], folder
        ).strip()
    )
    (site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q"]
    _run([*pip, str(wheel)], folder)
    return python


@pytest.mark.slow
def test_the_installed_wheel_writes_every_page(installed, tiny_run, tiny_manifest, tmp_path):
    where = _run([installed, "-c", "import loes; print(loes.__file__)"], tmp_path)
    assert str(installed.parents[1]) in where  # the wheel's copy,
    assert str(ROOT) not in where  # not the checkout
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    for page in ("report.html", "report.json"):
        (run / page).unlink()
    loes = [installed, "-m", "loes"]
    _run([*loes, "report", str(run)], tmp_path)
    assert "<html" in (run / "report.html").read_text()

    scan = pd.read_csv(tiny_manifest)["image"].iloc[0]
    scan = str(Path(tiny_manifest).parent / scan)
    _run([*loes, "predict", str(run), scan, "--out", "new/predictions.csv"], tmp_path)
    assert "<html" in (tmp_path / "new" / "predictions.html").read_text()

    _run([*loes, "explain", str(run), "--scans", "1", "--no-sanity", "--out", "why"], tmp_path)
    assert "<html" in (tmp_path / "why" / "index.html").read_text()
