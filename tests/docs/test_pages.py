"""The documentation's shape: README.md stays a few screens, every code block has a language
and runs unless a marker says why not, the site builds strictly, links resolve, and the
settings page is what ``loes settings --markdown`` prints."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.docs._blocks import REPO, RUN, SHOWN, all_blocks

#: the blocks not run, at most this many: each needs hours, a GPU, a cluster or the internet
MOST_NOT_RUN = 9  # the 9th: make wheelhouse and the offline GPU check


def test_the_readme_fits_on_a_few_screens():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 90
    opening = " ".join(readme[:1500].split())
    assert "no model for real scans" in opening  # what loes is not, before anything else
    assert "synthetic" in opening
    assert "make cv" in readme
    assert "make test" in readme
    assert "data/scores.csv" in readme  # the quick start with a lab's own table


def test_every_block_has_a_language_that_says_whether_it_runs():
    unknown = [(b.where, b.language) for b in all_blocks() if b.language not in RUN + SHOWN]
    assert unknown == []


def test_few_blocks_are_not_run_and_each_says_why():
    not_run = [b for b in all_blocks() if b.not_run is not None]
    assert all(len(b.not_run) > 20 for b in not_run), [b.where for b in not_run]
    assert all(b.language in RUN for b in not_run)  # a marker on a text block means nothing
    assert len(not_run) <= MOST_NOT_RUN, [b.where for b in not_run]
    assert sum(b.runs for b in all_blocks()) >= 20  # and many more run


def test_no_indented_code_block_hides_from_the_test():
    # an indented block (4 spaces after a blank line, outside lists and fences) is code that
    # no fence announces: write it fenced, with a language
    for block_path in {b.path for b in all_blocks()}:
        lines = block_path.read_text().splitlines()
        fenced = False
        for number, (before, line) in enumerate(zip(["", *lines], lines, strict=False), 1):
            if re.match(r"^\s*(```|~~~)", line):
                fenced = not fenced
            if not fenced and before == "" and line.startswith("    ") and line.strip():
                pytest.fail(f"{block_path.relative_to(REPO)}:{number}: an indented code block")


def test_links_of_the_readme_lead_to_files_that_exist():
    readme = (REPO / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    assert targets
    missing = [t for t in targets if "://" not in t and not (REPO / t).exists()]
    assert missing == []


def test_the_settings_page_is_what_loes_settings_prints(capsys):
    from loes.cli import main

    assert main(["settings", "--markdown"]) == 0
    printed = capsys.readouterr().out
    page = (REPO / "docs" / "settings.md").read_text()
    marker = "<!-- the table below is made by: loes settings --markdown -->\n"
    assert page.split(marker, 1)[1] == printed, (
        "docs/settings.md is out of date: rewrite its table with `loes settings --markdown`"
    )


def test_the_site_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs is in the dev extra: pip install -e '.[dev]'")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    pages = {p.parent.name for p in tmp_path.glob("*/index.html")}
    listed = {p.stem for p in (REPO / "docs").glob("*.md")} - {"index"}
    assert pages == listed  # every page is in the site (mkdocs.yml's nav)
    assert (tmp_path / "explain-smoothgrad-sub-054_ses-05.png").exists()


def test_the_main_job_takes_the_same_time_wherever_it_is_said():
    measured = "28 min 2 s"  # `make cv` from a fresh worktree, docs/cross-validation.md
    assert measured in (REPO / "docs" / "cross-validation.md").read_text()
    for path in (REPO / "README.md", REPO / "docs" / "index.md", REPO / "configs" / "cpu.yaml"):
        text = " ".join(path.read_text().replace("#", " ").split())
        assert "about 28 minutes" in text.lower(), path
        assert measured in text, path
        assert not re.search(r"\d+-\d+ minutes", text), path  # the old "10-30 minutes"
