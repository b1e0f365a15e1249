import os
import stat
import subprocess
import sys

import hypothesis
import numpy as np
import pandas as pd
import pytest
from hypothesis import strategies as st

from loes.io import (
    FORMULA_START,
    atomic_path,
    csv_text,
    jsonable,
    read_csv,
    remove_temporaries,
    write_json,
    write_text,
)


def test_a_finished_file_gets_the_umask_permissions_and_no_temporary_is_left(tmp_path):
    old = os.umask(0o027)
    try:
        write_text(tmp_path / "a" / "report.md", "hello")
    finally:
        os.umask(old)
    path = tmp_path / "a" / "report.md"
    assert path.read_text() == "hello"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert os.listdir(tmp_path / "a") == ["report.md"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "scan.nii.gz"
    path.write_text("old")
    temporaries = []

    def killed_while_writing():
        with atomic_path(path) as tmp:
            temporaries.append(tmp)
            tmp.write_text("half")
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        killed_while_writing()
    assert temporaries[0].name.endswith(".nii.gz")
    assert temporaries[0].parent == tmp_path
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["scan.nii.gz"]


@pytest.mark.slow
def test_importing_loes_leaves_the_process_umask_alone():
    code = "import os; os.umask(0o077); import loes.io, loes.pipeline; print(oct(os.umask(0)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0o77"


def test_json_is_strict(tmp_path):
    assert jsonable({"r": float("nan"), "n": np.int64(3), "x": [np.float32(0.5)]}) == {
        "r": None,
        "n": 3,
        "x": [0.5],
    }
    write_json(tmp_path / "m.json", {"inf": float("inf")})
    assert (tmp_path / "m.json").read_text() == '{\n  "inf": null\n}\n'


def test_temporaries_of_a_killed_write_are_removed_and_nothing_else(tmp_path):
    (tmp_path / "last.pt").write_text("kept")
    (tmp_path / ".hidden").write_text("kept: not a temporary")
    (tmp_path / ".last.pt.0a1b2c3d.pt").write_text("half a checkpoint")
    (tmp_path / ".report.html.ffffffff.html").write_text("<html")
    assert remove_temporaries(tmp_path, ["last.pt"]) == [tmp_path / ".last.pt.0a1b2c3d.pt"]
    assert (tmp_path / ".report.html.ffffffff.html").exists()
    assert remove_temporaries(tmp_path) == [tmp_path / ".report.html.ffffffff.html"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hidden", "last.pt"]
    # what atomic_path leaves when its process dies is what remove_temporaries removes
    with atomic_path(tmp_path / "scan.nii.gz") as tmp:
        assert remove_temporaries(tmp_path) == [tmp]
        tmp.write_text("rewritten")


def test_of_writers_racing_for_a_new_file_exactly_one_wins_and_its_file_is_whole(tmp_path):
    import threading

    from loes.io import write_new

    path = tmp_path / "splits.json"
    start = threading.Barrier(8)
    won = {}

    def writer(i):
        start.wait()
        won[i] = write_new(path, f"writer {i}\n" * 1000)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [i for i, created in won.items() if created]
    assert len(winners) == 1
    assert path.read_text() == f"writer {winners[0]}\n" * 1000
    assert os.listdir(tmp_path) == ["splits.json"]  # the losers' temporaries are gone
    assert not write_new(path, "late\n")
    assert path.read_text() == f"writer {winners[0]}\n" * 1000


# -- spreadsheet-safe CSV (OWASP "CSV Injection") --------------------------------------------

FORMULAS = ['=HYPERLINK("http://example.org/x","open")', "+1+1", "-2+3", "@SUM(1,1)", "\tx", "\ry"]


def test_a_text_cell_that_starts_like_a_formula_is_quoted_and_numbers_stay_numbers(tmp_path):
    frame = pd.DataFrame({"subject": [*FORMULAS, "sub-01"], "loes_score": [-1.5] * 7})
    path = tmp_path / "p.csv"
    path.write_text(csv_text(frame))
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)  # what a spreadsheet sees
    assert all(cell.startswith("'") for cell in raw["subject"][:6])
    assert raw["subject"].iloc[6] == "sub-01"
    assert (raw["loes_score"] == "-1.5").all()  # a negative number is no formula
    pd.testing.assert_frame_equal(read_csv(path, dtype={"subject": str}), frame)


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(
    cells=st.lists(st.text(alphabet=st.sampled_from("'=+-@\t\r ab1,\""), max_size=6), min_size=1)
)
def test_every_text_cell_reads_back_unchanged(cells, tmp_path_factory):
    cells = [c for c in cells if c.strip()] or ["x"]  # pandas reads a blank cell as missing
    frame = pd.DataFrame({"subject": cells, "n": range(len(cells))})
    path = tmp_path_factory.mktemp("csv") / "t.csv"
    path.write_text(csv_text(frame))
    back = read_csv(path, dtype={"subject": str}, keep_default_na=False)
    assert back["subject"].tolist() == cells
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)["subject"]
    assert not raw.str.startswith(FORMULA_START).any()


def test_a_temporary_renamed_away_while_looking_is_left_alone(tmp_path, monkeypatch):
    from loes.io import remove_temporaries

    gone = tmp_path / ".0123abcd.pt.1a2b3c4d.pt"  # another job renames it into place meanwhile
    gone.write_bytes(b"")
    real_stat, calls = type(gone).stat, []

    def stat(self, *args, **kwargs):  # seen by is_file(), gone when its age is asked
        if self.name == gone.name:
            calls.append(self)
            if len(calls) == 2:
                raise FileNotFoundError(self)
        return real_stat(self, *args, **kwargs)

    monkeypatch.setattr(type(gone), "stat", stat)
    assert remove_temporaries(tmp_path, older_than=3600) == []
    monkeypatch.undo()
    assert gone.exists()  # not unlinked
