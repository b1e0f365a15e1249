"""What a run tells its user while it works: one line at a time on stderr, written between
tqdm's progress bars so neither garbles the other. Of several processes training together
(``torchrun``) only rank 0 speaks."""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm

__all__ = ["note"]


def note(message: str) -> None:
    """Write ``message`` as one line on stderr, above any progress bar (rank 0 only)."""
    if os.environ.get("RANK", "0") == "0":  # set by torchrun for each process
        tqdm.write(message, file=sys.stderr)
