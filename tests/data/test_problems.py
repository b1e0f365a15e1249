"""A problem met at many places is shown once, with a count; every one stays available."""

from __future__ import annotations

import pytest

from loes.cli import main
from loes.data.problems import (
    Problem,
    ProblemGroup,
    ValidationReport,
    errors_message,
    summarise,
)
from loes.errors import LoesError
from tests.data.readers._helpers import write_nifti


def unscored(n: int, severity: str = "error") -> list[Problem]:
    return [
        Problem(
            severity,
            f"sub-{i:02d}/ses-0{i % 3 + 1}/anat/sub-{i:02d}_ses-0{i % 3 + 1}_T1w.nii.gz",
            f"no Loes score for sub-{i:02d} ses-0{i % 3 + 1}: add a row to "
            f"sub-{i:02d}/sub-{i:02d}_sessions.tsv.",
        )
        for i in range(1, n + 1)
    ]


def test_repeated_problems_become_one_group_in_place():
    other = Problem("error", "manifest.csv row 9 (sub-09 ses-01)", "loes_score 40 is outside 0-34")
    problems = [unscored(1)[0], other, *unscored(5)[1:]]
    shown = summarise(problems)
    assert shown[1] is other
    group = shown[0]
    assert isinstance(group, ProblemGroup)
    assert group.problems == (problems[0], *problems[2:])
    assert group.message == "no Loes score for sub-* ses-*: add a row to sub-*/sub-*_sessions.tsv."
    assert str(group) == (
        "error (5 times): no Loes score for sub-* ses-*: add a row to sub-*/sub-*_sessions.tsv. "
        "(first at sub-01/ses-02/anat/sub-01_ses-02_T1w.nii.gz; "
        "sub-02/ses-03/anat/sub-02_ses-03_T1w.nii.gz; "
        "sub-03/ses-01/anat/sub-03_ses-01_T1w.nii.gz; ...)"
    )


def test_what_the_group_shares_is_kept():
    """Only the tokens that differ are masked: a constant number or id stays."""
    problems = [
        Problem("warning", f"m.csv row {r}", f"loes_score {v} is not a multiple of 0.5")
        for r, v in ((2, "3.25"), (3, "4.1"), (4, "7.75"))
    ]
    [group] = summarise(problems)
    assert group.message == "loes_score * is not a multiple of 0.5"
    same_subject = [
        Problem("error", f"row {i}", f"no Loes score for sub-01 ses-0{i}") for i in (1, 2, 3)
    ]
    assert summarise(same_subject)[0].message == "no Loes score for sub-01 ses-*"


def test_few_or_different_problems_stay_one_line_each():
    two = unscored(2)
    assert summarise(two) == two
    mixed = [*unscored(2), *unscored(2, "warning")]  # same text, other severity
    assert summarise(mixed) == mixed
    words = [
        Problem("error", f"row {i}", f"gd is {w!r}; write 1 or 0") for i, w in enumerate("xyz")
    ]
    assert summarise(words) == words  # quoted words are not ids or numbers
    assert summarise(unscored(3), min_count=4) == unscored(3)


def test_report_text_summarises_unless_verbose():
    problems = unscored(46)
    report = ValidationReport("data/bids", "bids", problems)
    lines = report.text().splitlines()
    assert lines[0] == "data/bids (bids, no scans read): 46 errors, 0 warnings"
    assert lines[1].startswith("  error (46 times): no Loes score for sub-* ses-*")
    assert lines[2:] == [
        "Problems met at several places are shown once; `loes validate --verbose` lists each.",
        "Fix the errors, then run `loes validate` again.",
    ]
    verbose = report.text(verbose=True).splitlines()
    assert verbose[1:-1] == [f"  {p}" for p in problems]


def test_errors_message_summarises_and_counts_what_it_leaves_out():
    distinct = [Problem("error", f"file{c}", f"problem {c}") for c in "abcdefghijk"]
    message = errors_message("m.csv", [*unscored(20), *distinct], limit=3)
    assert message.splitlines() == [
        "m.csv: 31 errors in the data:",
        f"  {summarise(unscored(20))[0]}",
        "  filea: problem a",
        "  fileb: problem b",
        "  ... and 9 more.",
        "Run `loes validate --verbose m.csv` to see every problem at once.",
    ]
    plain = errors_message("m.csv", distinct[:2])
    assert plain.splitlines()[-1] == "Run `loes validate m.csv` to see every problem at once."
    report = ValidationReport("m.csv", "manifest", unscored(4))
    with pytest.raises(LoesError, match=r"error \(4 times\): no Loes score for sub-\* ses-\*"):
        report.raise_for_errors()


def test_loes_validate_prints_one_line_for_scans_without_scores(tmp_path, capsys):
    for i in range(1, 6):
        write_nifti(tmp_path / f"sub-0{i}/ses-01/anat/sub-0{i}_ses-01_T1w.nii.gz", seed=i)
    assert main(["validate", str(tmp_path)]) == 2
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("(bids, 5 scans of 5 subjects, headers checked): 5 errors, 0 warnings")
    assert out[1].startswith("  error (5 times): no Loes score for sub-* ses-01: add a row")
    assert out[1].endswith(
        "(first at sub-01/ses-01/anat/sub-01_ses-01_T1w.nii.gz; "
        "sub-02/ses-01/anat/sub-02_ses-01_T1w.nii.gz; "
        "sub-03/ses-01/anat/sub-03_ses-01_T1w.nii.gz; ...)"
    )
    assert len(out) == 4
    assert main(["validate", "--verbose", str(tmp_path)]) == 2
    out = capsys.readouterr().out.splitlines()
    assert [line.split(": ")[1] for line in out[1:6]] == [
        f"sub-0{i}/ses-01/anat/sub-0{i}_ses-01_T1w.nii.gz" for i in range(1, 6)
    ]
