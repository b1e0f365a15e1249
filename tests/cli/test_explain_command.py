"""`loes explain` as a user runs it: the summary it prints, where it writes, and exit status 2
with a located message for bad input."""

import pandas as pd
import pytest

from loes.cli import main

pytestmark = pytest.mark.slow


def test_explain_prints_the_truth_check_and_writes_beside_the_run(tiny_run, tmp_path, capsys):
    out = tmp_path / "maps"
    assert main(["explain", str(tiny_run), "--scans", "3", "--out", str(out), "--no-sanity"]) == 0
    printed = capsys.readouterr().out
    table = pd.read_csv(out / "explanations.csv", keep_default_na=False)
    assert len(table) == 3
    lesioned = (pd.to_numeric(table["lesion_share"], errors="coerce") > 0).sum()
    assert "vanillagrad: 3 scans" in printed  # the default method
    assert f"on {lesioned} with lesions, relevance mass accuracy" in printed
    assert "randomised weights" not in printed  # --no-sanity
    assert f"page: {out / 'index.html'}" in printed


def test_several_methods_in_one_flag(tiny_run, tmp_path, capsys):
    out = tmp_path / "maps"
    args = ["explain", str(tiny_run), "--scans", "1", "--out", str(out)]
    assert main([*args, "--method", "gradcampp,vanillagrad"]) == 0
    assert capsys.readouterr().out.count("rank correlation with randomised weights") == 2
    assert sorted(p.name for p in next((out / "scans").iterdir()).glob("*.png")) == [
        "gradcampp.png",
        "vanillagrad.png",
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--method", "lime"], "unknown method 'lime'; choose from gradcam"),
        (["--scans", "0"], "give at least 1 scan, not 0"),
        (["--scans", "many"], "give a number of scans or 'all', not 'many'"),
        (["--occlusion-stride", "40"], "the occlusion stride must be between 1 and the cube's"),
    ],
)
def test_bad_flags_exit_2_with_the_reason(tiny_run, tmp_path, capsys, extra, message):
    try:  # argparse exits on its own for a flag's type; loes returns 2 for the rest
        status = main(["explain", str(tiny_run), "--out", str(tmp_path / "o"), *extra])
    except SystemExit as exit:
        status = exit.code
    assert status == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_a_scan_that_cannot_be_explained_exits_2_naming_it(tiny_run, tmp_path, capsys):
    missing = tmp_path / "gone.nii.gz"
    assert main(["explain", str(tiny_run), str(missing), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"1 scan could not be explained ({missing}: does not exist)" in err
