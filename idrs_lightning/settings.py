"""Settings of Cohen et al.'s CERTIFY, defined and validated in one place.

:class:`CertificationSettings` is shared by :class:`~idrs_lightning.smoothing.Smooth`,
``certify.py`` (whose option defaults are read from it) and the certification callback. A bad
value raises :class:`InvalidSetting` on construction, before any sampling; front ends rename the
setting to their own option (``n`` is ``--N`` on the command line).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from idrs_lightning.noise import NOISE_BLOCK
from idrs_lightning.validation import InvalidSetting, check_float, check_int

__all__ = ["CertificationSettings", "InvalidSetting", "radius_grid"]


def _option(name: str, text: str) -> dict[str, str]:
    return {"option": name, "help": text}


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
        sequential: sequential CERTIFY (:mod:`~idrs_lightning.certification.sequential`):
            estimation samples are drawn look by look, up to ``n``, and an input stops as
            soon as its answer at every radius of the grid is settled; the bound is a
            confidence sequence, valid at whichever look it stops.

    Raises:
        InvalidSetting: naming the first setting out of range.
    """

    # each setting's command-line option (Cohen et al.'s names: "--n" would also clash with
    # torchrun's option prefixes) and help, read by certify.py's parser
    n0: int = field(default=100, metadata=_option("--N0", "selection samples"))
    n: int = field(
        default=100_000, metadata=_option("--N", "estimation samples (the most, with --sequential)")
    )
    alpha: float = field(default=0.001, metadata=_option("--alpha", "failure probability"))
    batch_size: int = field(
        default=1000, metadata=_option("--batch-size", "noisy samples per forward pass")
    )
    seed: int = field(default=0, metadata=_option("--seed", "noise seed (with the input index)"))
    separate_pb: bool = field(
        default=False,
        metadata=_option(
            "--separate-pb", "bound the runner-up class separately (IDRS paper, Appendix B.5)"
        ),
    )
    sequential: bool = field(
        default=False,
        metadata=_option(
            "--sequential",
            "sequential CERTIFY: stop each input once its answer at every --radii radius is "
            "settled (anytime-valid bound; --N or --n-max is then the most samples per input)",
        ),
    )

    def __post_init__(self) -> None:
        check_int("n0", self.n0, 1)
        check_int("n", self.n, 1)
        if self.n0 > self.n:
            raise InvalidSetting("n0", f"must not exceed n ({self.n}), got {self.n0}")
        check_float("alpha", self.alpha, 0.0, 1.0)
        check_int("batch_size", self.batch_size, NOISE_BLOCK)
        check_int("seed", self.seed, 0)
        for name in ("separate_pb", "sequential"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidSetting(name, f"must be True or False, got {getattr(self, name)!r}")
        if self.sequential and self.separate_pb:
            raise InvalidSetting(
                "sequential", "does not bound the runner-up separately; drop separate_pb"
            )

    @property
    def blocks_per_batch(self) -> int:
        """Whole noise blocks per forward pass."""
        return self.batch_size // NOISE_BLOCK


def radius_grid(radii: list[float] | None, sigma_b: float) -> list[float]:
    """The radius grid of the summary tables and of sequential CERTIFY's stopping rule:
    ``radii`` where given, else 0 to 3 sigma_b in steps of sigma_b / 4 (the paper's Figure 4
    range)."""
    if radii:
        return list(radii)
    return [round(float(r), 4) for r in np.arange(0.0, 3.0 * sigma_b + 1e-9, sigma_b / 4)]
