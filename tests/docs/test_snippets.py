"""Every runnable code block of README.md and docs/*.md runs, in order, page by page, in a
sandbox that holds what the pages assume at tiny scale (:mod:`tests.docs._sandbox`): the
documentation cannot drift from the code. See CONTRIBUTING.md for the marker that keeps a
block from running."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.docs import _sandbox
from tests.docs._blocks import REPO, blocks, pages

RUNNABLE_PAGES = [path for path in pages() if any(block.runs for block in blocks(path))]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """``(folder, environment)``: the sandbox, after the main job's tiny stand-in has run in it
    (``runs/synthetic-cpu``, as after ``make cv``)."""
    from loes.data.synthetic import make_tiny_cohort
    from loes.pipeline import cross_validate, load_config

    folder = tmp_path_factory.mktemp("docs") / "sandbox"
    folder.mkdir()
    _sandbox.write_configs(folder)
    lab = make_tiny_cohort(tmp_path_factory.mktemp("lab"), subjects=8, seed=3)
    _sandbox.write_lab_data(folder, lab)
    new = make_tiny_cohort(folder / "new_scans", subjects=2, seed=2)
    _sandbox.write_single_scans(folder, new)
    environment = _sandbox.command_shims(folder)
    here = os.getcwd()
    os.chdir(folder)
    try:
        cross_validate(load_config("configs/cpu.yaml"))
    finally:
        os.chdir(here)
    return folder, environment


def _run_bash(block, folder, environment) -> None:
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.code],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, (
        f"{block.where}: the bash block exited with status {done.returncode}:\n{block.code}\n"
        f"--- stdout ---\n{done.stdout[-3000:]}\n--- stderr ---\n{done.stderr[-3000:]}"
    )


def _run_python(block, namespace) -> None:
    try:
        exec(compile(block.code, block.where, "exec"), namespace)
    except Exception as error:
        raise AssertionError(f"{block.where}: the python block failed:\n{block.code}") from error


@pytest.mark.slow
@pytest.mark.parametrize("page", RUNNABLE_PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_the_code_blocks_of_a_page_run(page, sandbox, monkeypatch):
    folder, environment = sandbox
    monkeypatch.chdir(folder)
    namespace: dict = {"__name__": "__docs__"}  # the page's python blocks share their names
    for block in blocks(page):
        if block.runs and block.language == "bash":
            _run_bash(block, folder, environment)
        elif block.runs:
            _run_python(block, namespace)
