"""report.html as a browser shows it: headless Chromium renders a copy of the page at 1400 px
with a small probe script appended (the report itself stays script-free); the probe writes what
it measured into the DOM, which ``--dump-dom`` prints."""

import html
import json
import os
import re
import shutil
import subprocess

import pytest

from loes.pipeline import load_config
from loes.pipeline.report import write_report

CHROMIUM = next(
    (shutil.which(name) for name in ("chromium", "chromium-browser") if shutil.which(name)), None
)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="needs the chromium browser (Debian package chromium; .ci/run installs it)",
)

WIDTH = 1400

PROBE = """
<script>
addEventListener("load", () => {
  const images = [...document.images].map(i => ({alt: i.alt, width: i.naturalWidth}));
  const overflowing = [...document.querySelectorAll("main *")]
    .filter(e => e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1)
    .map(e => `${e.tagName.toLowerCase()}.${e.className}: ${e.scrollWidth} > ${e.clientWidth}`);
  const result = {
    viewport: innerWidth,
    pageWidth: document.documentElement.scrollWidth,
    images,
    overflowing,
  };
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(result);
  document.body.append(out);
});
</script>
"""


def _measure(page: str, folder) -> dict:
    probed = folder / "probed.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"))
    command = [
        CHROMIUM,
        "--headless",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--window-size={WIDTH},1000",
        f"--user-data-dir={folder / 'profile'}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        probed.as_uri(),
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    found = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout, re.DOTALL)
    assert found, f"no probe result (exit {result.returncode}): {result.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


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
    measured = _measure(page, tmp_path)
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
    measured = _measure(broken, tmp_path)
    assert sum(image["width"] == 0 for image in measured["images"]) == 1
    assert any(entry.startswith("div.scroll") for entry in measured["overflowing"])
