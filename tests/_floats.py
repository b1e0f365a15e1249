"""Comparing float32 network outputs computed along two paths.

The same float32 network run with another batch size, memory layout, thread count or
instruction set (``ATEN_CPU_CAPABILITY=avx2`` against AVX-512) sums in another order: each
layer adds ~1e-6 of the magnitude of its activations, so two paths give outputs a few 1e-6 of
their scale apart (measured up to 3.5e-6: 12.751977 against 12.752012 Loes points). That error
is relative to the magnitudes summed, which are those of the values compared, so the tolerance
is too: ``rtol`` of each value plus ``rtol`` of the largest value compared (a value near 0
among larger ones rounds like them). An absolute tolerance is no bound on it.
"""

import numpy as np

#: ~30 times the rounding measured; it still catches any error above 1e-4 of the scale
#: (0.002 points on predictions of ~13), far below what a wrong flip, member, weight or
#: preprocessing step does to a prediction (0.01 to several points)
NETWORK_RTOL = 1e-4


def _tolerances(expected, rtol: float) -> tuple[np.ndarray, dict]:
    expected = np.asarray(expected, dtype=float)
    scale = float(np.nanmax(np.abs(expected))) if expected.size else 0.0
    return expected, {"rtol": rtol, "atol": rtol * scale}


def assert_float32_close(actual, expected, rtol: float = NETWORK_RTOL) -> None:
    """``actual`` within ``rtol`` of each ``expected`` value plus ``rtol`` of the largest."""
    expected, tolerance = _tolerances(expected, rtol)
    np.testing.assert_allclose(np.asarray(actual, dtype=float), expected, **tolerance)


def float32_close(actual, expected, rtol: float = NETWORK_RTOL) -> bool:
    """Whether :func:`assert_float32_close` would pass: ``not float32_close(a, b)`` says two
    results differ by more than float32 rounding."""
    expected, tolerance = _tolerances(expected, rtol)
    return bool(np.allclose(np.asarray(actual, dtype=float), expected, **tolerance))
