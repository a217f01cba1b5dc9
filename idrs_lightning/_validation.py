"""Checks of scalar arguments: each returns the value or raises one :class:`InvalidSetting`.

Messages name the argument, what is allowed and the value received, e.g. ``"k must be an
integer >= 1, got 0"``. Array checks of the certification maths (NaN, ranges, broadcasting)
live in :mod:`idrs_lightning.certification._validation`, which stays free of this package.
"""

from __future__ import annotations

import numbers

import numpy as np


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
