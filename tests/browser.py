"""Pages as a browser shows them: headless Chromium renders a copy of a page with a small probe
script appended (the pages themselves stay script-free); the probe writes what it measured into
the DOM, which ``--dump-dom`` prints."""

import html
import json
import os
import re
import shutil
import subprocess

import pytest

CHROMIUM = next(
    (shutil.which(name) for name in ("chromium", "chromium-browser") if shutil.which(name)), None
)

needs_chromium = pytest.mark.skipif(
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


def measure_page(page: str, folder) -> dict:
    """Render ``page`` from ``folder`` (where its relative links point) at ``WIDTH`` px; return
    the viewport and page widths, every image's natural width and the overflowing elements."""
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
