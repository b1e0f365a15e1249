"""report.html as a browser shows it: headless Chromium renders a copy of the page at 1400 px
with a small probe script appended (the report itself stays script-free); the probe writes what
it measured into the DOM, which ``--dump-dom`` prints."""

import re

import pytest

from loes.pipeline import load_config
from loes.pipeline.report import write_report
from tests.browser import WIDTH, measure_page, needs_chromium

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def wide_report(tmp_path_factory, synthetic_predictions, make_history):
    """report.html of the widest everyday case: 2 repeats x 6 folds, three models, a partial
    run (one fold missing) and the full configuration."""
    run_dir = tmp_path_factory.mktemp("run")
    table = synthetic_predictions(repeats=2, folds=6)
    histories = {(r, f): make_history(f, epochs=3) for r in range(2) for f in range(6)}
    config = load_config(overrides=["cv.folds=6", "cv.repeats=2", "training.epochs=3"]).to_dict()
    write_report(
        run_dir, table[~((table["repeat"] == 1) & (table["fold"] == 5))], histories, config
    )
    return (run_dir / "report.html").read_text()


def test_every_plot_loads_and_nothing_overflows_at_1400_px(tmp_path, wide_report):
    page = wide_report
    assert "<script" not in page  # the probe goes into a copy only
    assert "Partial run" in page
    measured = measure_page(page, tmp_path)
    assert measured["viewport"] == WIDTH
    images = measured["images"]
    assert len(images) == page.count("<img ")
    assert len(images) >= 6
    assert all(image["width"] > 0 for image in images), images
    assert measured["pageWidth"] <= WIDTH
    assert measured["overflowing"] == [], "\n".join(measured["overflowing"])


def test_the_probe_sees_a_broken_image_and_an_overflowing_table(tmp_path, wide_report):
    """The check above can fail: the same page with one broken plot and one too-wide table."""
    broken = re.sub(
        r'src="data:image/png;base64,[^"]{20}',
        'src="data:image/png;base64,AAAA',
        wide_report,
        count=1,
    )
    broken = broken.replace("<td>network</td>", "<td>" + "network" * 60 + "</td>", 1)
    measured = measure_page(broken, tmp_path)
    assert sum(image["width"] == 0 for image in measured["images"]) == 1
    assert any(entry.startswith("div.scroll") for entry in measured["overflowing"])
