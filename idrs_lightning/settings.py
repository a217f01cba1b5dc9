"""Settings of Cohen et al.'s CERTIFY, defined and validated in one place.

:class:`CertificationSettings` is shared by :class:`~idrs_lightning.smoothing.Smooth`,
``certify.py`` (whose option defaults are read from it) and the certification callback. A bad
value raises :class:`SettingError` on construction, before any sampling; front ends rename the
setting to their own option (``n`` is ``--N`` on the command line).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

from .noise import NOISE_BLOCK


class SettingError(ValueError):
    """A setting out of range: ``str(error)`` is ``"<setting> <problem>"``."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting} {problem}")
        self.setting = setting
        self.problem = problem

    def for_option(self, option: str) -> str:
        """The same message, naming the front end's option instead of the setting."""
        return f"{option} {self.problem}"


def _whole(setting: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise SettingError(setting, f"must be an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class CertificationSettings:
    """How to sample and bound (Cohen et al. 2019, CERTIFY; IDRS paper, Appendix B.5).

    Args:
        n0: noise samples that select the top class ``c_a_hat``, ``>= 1``.
        n: noise samples that estimate its probability, ``>= n0``.
        alpha: failure probability of the certificate, in ``(0, 1)``.
        batch_size: noisy samples per forward pass, ``>= NOISE_BLOCK`` (rounded down to whole
            noise blocks).
        seed: run seed, ``>= 0``; with an input's index it determines all of its noise.
        separate_pb: bound the runner-up class separately: ``p_a`` and ``p_b`` are
            Clopper-Pearson bounds at ``alpha / 2`` each (see
            :func:`~idrs_lightning.certification.decide`).

    Raises:
        SettingError: naming the first setting out of range.
    """

    n0: int = 100
    n: int = 100_000
    alpha: float = 0.001
    batch_size: int = 1000
    seed: int = 0
    separate_pb: bool = False

    def __post_init__(self) -> None:
        _whole("n0", self.n0, 1)
        _whole("n", self.n, 1)
        if self.n0 > self.n:
            raise SettingError("n0", f"must not exceed n ({self.n}), got {self.n0}")
        if not (isinstance(self.alpha, numbers.Real) and 0 < self.alpha < 1):
            raise SettingError("alpha", f"must lie in (0, 1), got {self.alpha!r}")
        _whole("batch_size", self.batch_size, NOISE_BLOCK)
        _whole("seed", self.seed, 0)
        if not isinstance(self.separate_pb, bool):
            raise SettingError("separate_pb", f"must be True or False, got {self.separate_pb!r}")

    @property
    def blocks_per_batch(self) -> int:
        """Whole noise blocks per forward pass."""
        return self.batch_size // NOISE_BLOCK
