"""Bracketed root search shared by the radius computations."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


def last_certified(
    excess: Callable[[FloatArray, NDArray[np.intp]], FloatArray],
    lo: FloatArray,
    hi: FloatArray,
    g_lo: FloatArray,
    g_hi: FloatArray,
    rtol: float,
    max_iterations: int = 100,
) -> FloatArray:
    """Largest verified radius of rows whose certificate holds where ``excess < 0``.

    Regula falsi (Illinois) on brackets ``[lo, hi]`` with ``excess(lo) = g_lo < 0 <= g_hi``;
    ``excess(radius, rows)`` evaluates the given rows. Returns, per row, a radius where
    ``excess < 0`` was verified, within ``rtol`` (relative) of the bracketed root.
    """
    lo, hi, g_lo, g_hi = (np.array(v, dtype=np.float64) for v in (lo, hi, g_lo, g_hi))
    active = np.flatnonzero(hi - lo > rtol * hi)
    retained = np.zeros(lo.size, dtype=np.int8)  # +1: hi kept last step, -1: lo kept
    for _ in range(max_iterations):
        if active.size == 0:
            break
        left, right, g_left, g_right = lo[active], hi[active], g_lo[active], g_hi[active]
        with np.errstate(invalid="ignore", divide="ignore"):
            guess = right - g_right * (right - left) / (g_right - g_left)
        # Stay a tolerance away from the ends so that a guess on the root also shrinks the
        # bracket from the other side.
        nudge = np.minimum(0.5 * rtol * right, 0.25 * (right - left))
        radius = np.where(
            np.isfinite(guess), np.clip(guess, left + nudge, right - nudge), 0.5 * (left + right)
        )
        g = excess(radius, active)
        certified = g < 0.0
        # Illinois: halve the function value at an endpoint kept twice in a row.
        keep_hi_again = certified & (retained[active] == 1)
        keep_lo_again = ~certified & (retained[active] == -1)
        lo[active] = np.where(certified, radius, left)
        g_lo[active] = np.where(certified, g, np.where(keep_lo_again, 0.5 * g_left, g_left))
        hi[active] = np.where(certified, right, radius)
        g_hi[active] = np.where(certified, np.where(keep_hi_again, 0.5 * g_right, g_right), g)
        retained[active] = np.where(certified, 1, -1)
        converged = hi[active] - lo[active] <= rtol * hi[active]
        active = active[~converged]
    return lo
