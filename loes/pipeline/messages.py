"""What a run tells its user while it works: one line at a time on stderr, written between
tqdm's progress bars so neither garbles the other."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm

__all__ = ["note"]


def note(message: str) -> None:
    """Write ``message`` as one line on stderr, above any progress bar."""
    tqdm.write(message, file=sys.stderr)
