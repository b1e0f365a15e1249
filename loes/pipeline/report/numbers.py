"""Numbers as the report shows them: two decimals, ``–`` for undefined values, signed
differences, intervals and score-range labels."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["finite", "interval_text", "mean_sd", "number", "range_label", "signed", "with_interval"]


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def number(value: Any, digits: int = 2) -> str:
    """``value`` as text: ints as they are, floats to ``digits`` decimals, ``None``/nan as ``–``.

    A float that rounds to zero is written ``0.00``, never ``-0.00``.

    Examples::

        >>> number(-0.001), number(2.345), number(None)
        ('0.00', '2.35', '–')
    """
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, int):
        return str(value)
    return f"{round(value, digits) + 0.0:.{digits}f}"  # + 0.0 turns -0.0 into 0.0


def signed(value: Any, digits: int = 2) -> str:
    """``value`` with its sign (``+1.20``, ``-0.35``), ``0.00`` when it rounds to zero."""
    text = number(value, digits)
    return text if text == "–" or text.startswith("-") or float(text) == 0 else f"+{text}"


def interval_text(interval: dict[str, Any] | None, digits: int = 2) -> str:
    """``"low to high"`` of an interval dict ``{"low", "high"}``; ``–`` when undefined."""
    if not interval or not (finite(interval.get("low")) and finite(interval.get("high"))):
        return "–"
    return f"{number(interval['low'], digits)} to {number(interval['high'], digits)}"


def with_interval(value: Any, interval: dict[str, Any] | None, digits: int = 2) -> str:
    """``"2.08 (1.71 to 2.50)"``: a point estimate and its interval; the value alone without one."""
    ci = interval_text(interval, digits)
    return number(value, digits) if ci == "–" else f"{number(value, digits)} ({ci})"


def range_label(label: str) -> str:
    """A score range's key as shown: ``>=9`` becomes ``≥9``."""
    return label.replace(">=", "≥")


def mean_sd(mean: Any, sd: Any, digits: int = 2) -> str:
    """``"mean ± sd"`` as text, or the mean alone when the SD is undefined (a single fold)."""
    if number(sd, digits) == "–":
        return number(mean, digits)
    return f"{number(mean, digits)} ± {number(sd, digits)}"
