"""Every runnable code block of README.md and docs/*.md runs, in order, page by page, in a
sandbox that holds what the pages assume at tiny scale (:mod:`tests.docs._sandbox`): the
documentation cannot drift from the code. A bash block of plain ``loes`` and ``cp`` commands
runs them in this process (``loes.cli.main``, what the ``loes`` script calls); any other bash
block runs in bash. See CONTRIBUTING.md for the marker that keeps a block from running."""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import shutil
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


def _in_process(code: str) -> list[list[str]] | None:
    """The commands of a bash block as argument lists when every line is a plain ``loes`` or
    ``cp`` command (no variables, pipes, redirections or background jobs), so the test can run
    them in this process (``loes.cli.main``, what the ``loes`` script calls) without starting
    Python again for each; ``None`` when the block needs bash."""
    commands = []
    for line in code.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if words[0] not in ("loes", "cp") or any(set(w) & set("&|;<>$*") for w in words):
            return None
        if "=" in words[0]:
            return None
        commands.append(words)
    return commands


def _run_commands(block, commands) -> None:
    from loes.cli import main

    for words in commands:
        if words[0] == "cp":
            shutil.copy(*words[1:])
            continue
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = main(words[1:])
            except SystemExit as exit_:  # argparse refusing the arguments
                status = exit_.code
        assert status == 0, (
            f"{block.where}: `{shlex.join(words)}` exited with status {status}:\n"
            f"--- stdout ---\n{out.getvalue()[-3000:]}\n--- stderr ---\n{err.getvalue()[-3000:]}"
        )


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
            commands = _in_process(block.code)
            if commands is None:
                _run_bash(block, folder, environment)
            else:
                _run_commands(block, commands)
        elif block.runs:
            _run_python(block, namespace)
