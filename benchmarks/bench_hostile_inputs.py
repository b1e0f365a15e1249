"""Thousands of hostile inputs through the property tests of
``tests/data/test_hostile_inputs.py`` (mutated NIfTI headers, mutated scan tables): each must
end in a score or a located error within its time bound. Prints the cases run and the seconds.

``LOES_HOSTILE_CASES`` sets the cases per property here too (default 2000)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    cases = os.environ.get("LOES_HOSTILE_CASES", "2000")
    start = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/data/test_hostile_inputs.py",
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            "mutated",
        ],
        cwd=ROOT,
        env={**os.environ, "LOES_HOSTILE_CASES": cases},
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    ran = [line for line in done.stdout.splitlines() if line.startswith("hostile inputs:")]
    print(ran[0] if ran else done.stdout[-2000:])
    verdict = (
        "every case ended in a score or a located error"
        if done.returncode == 0
        else ("FAILED: " + done.stdout[-1500:])
    )
    print(f"{verdict}; {seconds:.0f} s")


if __name__ == "__main__":
    main()
