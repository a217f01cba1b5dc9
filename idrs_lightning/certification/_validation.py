"""Argument checks shared by the public certification functions.

Each check converts its argument to a float64 array and raises one ``ValueError`` that names the
argument and the offending value, before any numerical work starts.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


def _as_array(name: str, value: ArrayLike) -> FloatArray:
    array = np.asarray(value, dtype=np.float64)
    if np.isnan(array).any():
        raise ValueError(f"{name} contains NaN")
    return array


def _first_bad(array: FloatArray, bad: NDArray[np.bool_]) -> float:
    return float(array[bad].flat[0])


def check_range(
    name: str,
    value: ArrayLike,
    low: float,
    high: float,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> FloatArray:
    """Return ``value`` as an array, raising if any entry lies outside the given interval."""
    array = _as_array(name, value)
    too_low = array <= low if low_open else array < low
    too_high = array >= high if high_open else array > high
    bad = too_low | too_high
    if bad.any():
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        raise ValueError(
            f"{name} must lie in {left}{low}, {high}{right}, got {_first_bad(array, bad)!r}"
        )
    return array


def check_positive(name: str, value: ArrayLike) -> FloatArray:
    """Finite and strictly positive."""
    return check_range(name, value, 0.0, np.inf, low_open=True, high_open=True)


def check_non_negative(name: str, value: ArrayLike) -> FloatArray:
    """Finite and non-negative."""
    return check_range(name, value, 0.0, np.inf, high_open=True)


def check_probability(name: str, value: ArrayLike) -> FloatArray:
    """A probability in ``[0, 1]``."""
    return check_range(name, value, 0.0, 1.0)


def check_count(name: str, value: ArrayLike, minimum: int = 0) -> FloatArray:
    """Whole numbers no smaller than ``minimum`` (returned as float64 for vectorised math)."""
    array = check_range(name, value, minimum, np.inf, high_open=True)
    fractional = array != np.round(array)
    if fractional.any():
        raise ValueError(f"{name} must be a whole number, got {_first_bad(array, fractional)!r}")
    return array
