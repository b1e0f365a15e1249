"""Identifiers that a spreadsheet would run as formulas (OWASP "CSV Injection") pass through
`loes predict` as text: quoted in the CSV a clinician opens, read back unchanged by loes."""

import pandas as pd
import pytest

from loes.cli import main
from loes.io import FORMULA_START, read_csv

pytestmark = pytest.mark.slow

IDS = ['=HYPERLINK("http://example.org/a","open")', "+1+1", "@SUM(1,1)"]


def test_formula_ids_are_quoted_in_the_predictions_and_read_back(tiny_run, tiny_manifest, tmp_path):
    manifest = pd.read_csv(tiny_manifest, dtype=str).head(3)
    manifest["subject"] = IDS
    manifest["image"] = [str(tiny_manifest.parent / p) for p in manifest["image"]]
    source = tmp_path / "hostile.csv"
    manifest.to_csv(source, index=False)
    out = tmp_path / "p.csv"
    assert main(["predict", str(tiny_run), str(source), "--out", str(out)]) == 0
    raw = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert raw["subject"].tolist() == [f"'{i}" for i in IDS]
    assert not any(raw[c].str.startswith(FORMULA_START).any() for c in raw)
    assert read_csv(out, dtype={"subject": str})["subject"].tolist() == IDS
    assert "=HYPERLINK(&#34;" in out.with_suffix(".html").read_text()  # escaped, as text
