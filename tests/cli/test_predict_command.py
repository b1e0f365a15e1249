"""`loes predict` and `loes export` as a user runs them."""

import html.parser

import pandas as pd
import pytest

from loes.cli import main

pytestmark = pytest.mark.slow


class _Tags(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_predict_writes_the_table_and_the_page_and_scores_against_given_scores(
    tiny_run, tiny_manifest, tmp_path, capsys
):
    out = tmp_path / "new" / "scores.csv"
    assert main(["predict", str(tiny_run), str(tiny_manifest), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    table = pd.read_csv(out, keep_default_na=False)
    assert len(table) == 15
    # the run's own scans: in-sample, left out of the metrics
    assert "15 scans with a given score the run trained on (in-sample" in printed
    assert "against the" not in printed
    first = table.iloc[0]
    assert f"{first.subject} {first.session}: {float(first.predicted):.1f}" in printed
    page = _Tags()
    page.feed(out.with_suffix(".html").read_text())
    images = [attrs for tag, attrs in page.tags if tag == "img"]
    assert len(images) == 15
    assert all(a["src"].startswith("data:image/png;base64,") for a in images)
    intervals = [
        a for tag, a in page.tags if tag == "svg" and a["aria-label"].startswith("interval")
    ]
    assert len(intervals) == 15
    assert not any(tag in ("script", "link") for tag, _ in page.tags)  # self-contained


def test_a_bad_scan_is_reported_in_its_row_and_exits_2(tiny_run, tiny_manifest, tmp_path, capsys):
    scan = next(tiny_manifest.parent.glob("sub-001/ses-01/anat/*.nii.gz"))
    missing = tmp_path / "gone.nii.gz"
    out = tmp_path / "p.csv"
    assert main(["predict", str(tiny_run), str(missing), str(scan), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"1 scan of 2 could not be scored ({missing}: does not exist)" in err
    assert "Traceback" not in err
    table = pd.read_csv(out, keep_default_na=False)
    assert table["error"].tolist() == ["does not exist", ""]
    assert table.loc[1, "predicted"] != ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--coverage", "90"], "--coverage must be between 0 and 1"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
    ],
)
def test_bad_flags_are_named(tiny_run, tiny_manifest, tmp_path, capsys, args, message):
    out = tmp_path / "p.csv"
    assert main(["predict", str(tiny_run), str(tiny_manifest), "--out", str(out), *args]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("page.html", "give a .csv file"),
        ("run/predictions.csv", "is inside the run folder"),
        ("run/fold_0/predictions.csv", "is inside the run folder"),
        ("source", "is one of the scans' sources"),
    ],
)
def test_out_never_overwrites_the_run_or_the_input(
    tiny_run, tiny_manifest, tmp_path, capsys, where, message
):
    source = tmp_path / "copy.csv"
    source.write_text(tiny_manifest.read_text())  # the manifest's image paths are absolute
    out = {
        "page.html": tmp_path / "page.html",
        "run/predictions.csv": tiny_run / "predictions.csv",
        "run/fold_0/predictions.csv": tiny_run / "fold_0" / "predictions.csv",
        "source": source,
    }[where]
    before = {p: p.read_bytes() for p in [source, *tiny_run.rglob("*.csv")]}
    assert main(["predict", str(tiny_run), str(source), "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert {p: p.read_bytes() for p in before} == before
    assert not (tmp_path / "page.html").exists()


def test_a_partial_run_is_named(tiny_run, tiny_manifest, tmp_path, capsys):
    import shutil

    partial = tmp_path / "partial"
    shutil.copytree(tiny_run, partial)
    shutil.rmtree(partial / "fold_1")
    out = tmp_path / "p.csv"
    assert main(["predict", str(partial), str(tiny_manifest), "--out", str(out)]) == 0
    assert "is a partial run: predicting with 1 of its 2 fold models" in capsys.readouterr().err
    assert main(["predict", str(tiny_run), str(tiny_manifest), "--out", str(out)]) == 0
    assert "partial" not in capsys.readouterr().err


def test_a_missing_run_folder_is_named(tiny_manifest, tmp_path, capsys):
    assert main(["predict", str(tmp_path / "nothing"), str(tiny_manifest)]) == 2
    assert "nothing is not a folder" in capsys.readouterr().err


def test_export_writes_a_bundle_once(tiny_run, tmp_path, capsys):
    out = tmp_path / "bundle"
    assert main(["export", str(tiny_run), str(out)]) == 0
    assert "python -m monai.bundle run" in capsys.readouterr().out
    assert (out / "configs" / "metadata.json").is_file()
    assert main(["export", str(tiny_run), str(out)]) == 2
    assert "is not an empty folder" in capsys.readouterr().err
    assert main(["export", str(tiny_run), str(tiny_run / "bundle")]) == 2
    assert "is inside the run folder" in capsys.readouterr().err
    assert not (tiny_run / "bundle").exists()
