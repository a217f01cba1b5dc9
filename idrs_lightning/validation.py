"""Checks of arguments: each returns the value (arrays as float64) or raises one
:class:`InvalidSetting`, before any work starts.

Messages name the argument, what is allowed and the value received, e.g. ``"k must be an
integer >= 1, got 0"`` or ``"p_a must lie in [0, 1], got 1.5"``.
"""

from __future__ import annotations

import numbers

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


class InvalidSetting(ValueError):
    """An argument out of range: ``str(error)`` is ``"<setting> <problem>"``; front ends
    that call the argument otherwise (``n`` is ``certify.py --N``) use :meth:`for_option`."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting} {problem}")
        self.setting = setting
        self.problem = problem

    def for_option(self, option: str) -> str:
        """The same message, naming the front end's option instead of the setting."""
        return f"{option} {self.problem}"


def is_int(value: object) -> bool:
    """Python or numpy integer, not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    """An integer in ``[low, high]`` (``high = None``: no upper bound); bools are refused."""
    if not is_int(value) or value < low or (high is not None and value > high):  # type: ignore[operator]
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise InvalidSetting(name, f"must be an integer {allowed}, got {value!r}")
    return int(value)  # type: ignore[call-overload]


def check_seed(name: str, value: object) -> int:
    """An integer in ``[0, 2**64)``, a 64-bit seed; bools are refused."""
    if not is_int(value) or not 0 <= value < 2**64:  # type: ignore[operator]
        raise InvalidSetting(name, f"must be an integer in [0, 2**64), got {value!r}")
    return int(value)  # type: ignore[call-overload]


def check_float(name: str, value: object, low: float, high: float) -> float:
    """A real number in the open interval ``(low, high)``; bools and strings are refused."""
    is_real = isinstance(value, int | float | np.integer | np.floating)
    if isinstance(value, bool) or not is_real or not low < value < high:  # type: ignore[operator]
        raise InvalidSetting(name, f"must be a number in ({low}, {high}), got {value!r}")
    return float(value)  # type: ignore[arg-type]


def check_choice(name: str, value: object, allowed: tuple[str, ...]) -> str:
    """One of ``allowed``."""
    if value not in allowed:
        raise InvalidSetting(name, f"must be one of {', '.join(allowed)}; got {value!r}")
    return value  # type: ignore[return-value]


# ---- arrays (the certification mathematics) --------------------------------------------------


def _as_array(name: str, value: ArrayLike) -> FloatArray:
    array = np.asarray(value, dtype=np.float64)
    if np.isnan(array).any():
        raise InvalidSetting(name, "contains NaN")
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
        raise InvalidSetting(
            name, f"must lie in {left}{low}, {high}{right}, got {_first_bad(array, bad)!r}"
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
        raise InvalidSetting(name, f"must be a whole number, got {_first_bad(array, fractional)!r}")
    return array
