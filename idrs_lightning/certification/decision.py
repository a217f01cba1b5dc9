"""CERTIFY's decision from estimation counts: the bounds, the abstain rule and the radius.

With ``n_a`` of ``n`` estimation samples on the selected class ``c_a_hat`` (Cohen et al. 2019,
CERTIFY), ``p_a`` is the Clopper-Pearson lower bound on its probability at level ``alpha`` and
the runner-up is bounded by ``p_b = 1 - p_a``. With a separate runner-up bound (IDRS paper,
Appendix B.5) ``p_a`` and ``p_b`` are the lower bound of ``n_a`` and the upper bound of the
largest other count at ``alpha / 2`` each, so both hold with probability ``1 - alpha`` (the
upper bound of the largest count bounds every other class, as it is monotone in the count),
and ``p_b`` is capped at ``1 - p_a``, which bounds the runner-up too. Either way the input is
certified iff ``p_a > p_b``: with ``p_b = 1 - p_a`` that is exactly ``p_a > 1/2``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from idrs_lightning.certification.confidence import clopper_pearson_lower, clopper_pearson_upper
from idrs_lightning.certification.radius import cohen_radius, idrs_radius

FloatArray = NDArray[np.float64]


class Decision(NamedTuple):
    """Per input: ``p_a_lower``, ``p_b_upper`` (NaN unless bounded separately), ``certified``."""

    p_a_lower: FloatArray
    p_b_upper: FloatArray
    certified: NDArray[np.bool_]


def decide(
    n_a: ArrayLike, n_runner_up: ArrayLike, n: int, alpha: float, separate_pb: bool
) -> Decision:
    """Bounds and the abstain rule for counts ``n_a`` (selected class) and ``n_runner_up``
    (the largest other count; used only with ``separate_pb``) out of ``n``."""
    if not separate_pb:
        p_a_lower = clopper_pearson_lower(n_a, n, alpha)
        return Decision(p_a_lower, np.full(p_a_lower.shape, np.nan), p_a_lower > 0.5)
    p_a_lower = clopper_pearson_lower(n_a, n, alpha / 2)
    p_b_upper = np.minimum(clopper_pearson_upper(n_runner_up, n, alpha / 2), 1.0 - p_a_lower)
    return Decision(p_a_lower, p_b_upper, p_a_lower > p_b_upper)


def certified_radius(
    sigma: ArrayLike, r: float, dim: int, p_a: ArrayLike, p_b: ArrayLike | None = None
) -> FloatArray:
    """The radius for noise level ``sigma`` at the input: Cohen et al.'s for constant noise
    (``r = 0``), Theorem 7's (with ``p_b``: Appendix B.5's) for r-semi-elastic sigma(x)."""
    if r == 0:
        return cohen_radius(sigma, p_a, p_b)
    return idrs_radius(sigma, r, dim, p_a, p_b)
