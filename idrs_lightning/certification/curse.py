"""The curse of dimensionality of input-dependent smoothing (IDRS paper, Section 2).

When ``sigma1 / sigma0`` falls below a dimension-dependent threshold, no point ``x1`` can be
certified from ``x0``, however close: ``xi_>(0) > 1/2`` already.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from idrs_lightning.validation import check_count, check_range

FloatArray = NDArray[np.float64]


def _arguments(dim: ArrayLike, p_a: ArrayLike) -> tuple[FloatArray, FloatArray]:
    dim = check_count("dim", dim, minimum=1)
    p_a = check_range("p_a", p_a, 0.0, 1.0, low_open=True, high_open=True)
    return np.broadcast_arrays(dim, p_a)


def curse_threshold(dim: ArrayLike, p_a: ArrayLike) -> FloatArray:
    """Theorem 4 (part 1): below this ``sigma1 / sigma0 < 1`` nothing is certified.

    The threshold is the root ``s`` in ``(0, 1)`` of ``log(s^2) + 1 - s^2 = 2 log(1 - p_a) / N``
    (the Chernoff bound on ``chi2_N``); the paper's Table 1 lists it for MNIST, CIFAR-10 and
    ImageNet. With ``u = 1 - s^2`` the equation is ``log1p(-u) + u = c``, solved by Newton's
    method from ``u = sqrt(-2c)`` (exact as ``N -> inf``) without cancellation.
    """
    dim, p_a = _arguments(dim, p_a)
    c = 2.0 * np.log1p(-p_a) / dim
    # log1p(-u) + u is decreasing and concave on (0, 1): Newton from the left converges.
    u = np.minimum(np.sqrt(-2.0 * c), 0.5)
    for _ in range(100):
        value = np.log1p(-u) + u - c
        step = value / (-u / (1.0 - u))
        new = np.clip(u - step, 0.5 * u, 0.5 * (1.0 + u))
        if np.all(np.abs(new - u) <= 1e-15 * new):
            u = new
            break
        u = new
    return np.sqrt(1.0 - u)


def curse_threshold_simple(dim: ArrayLike, p_a: ArrayLike) -> FloatArray:
    """Corollary 5: ``sqrt(1 - 2 sqrt(-log(1 - p_a) / N))``, a simpler, smaller threshold.

    Returns 0 where the square root's argument is negative (the bound is then vacuous).
    """
    dim, p_a = _arguments(dim, p_a)
    inner = 1.0 - 2.0 * np.sqrt(-np.log1p(-p_a) / dim)
    return np.sqrt(np.maximum(inner, 0.0))


def practical_threshold(dim: ArrayLike, p_a: ArrayLike) -> FloatArray:
    """The ratio ``sigma1 / sigma0 < 1`` at which ``xi_>(0)`` equals 1/2 (paper Figure 3).

    At ``a = 0`` the worst-case set is a centred ball, ``xi_>(0) = F_N(F_N^{-1}(p_b) / s^2)``
    with ``F_N`` the central chi-square CDF, so ``s = sqrt(F_N^{-1}(p_b) / F_N^{-1}(1/2))``.
    Ratios below it certify nothing; Theorem 4's threshold is a lower bound on it.
    """
    dim, p_a = _arguments(dim, p_a)
    half_dim = 0.5 * dim
    tail_quantile = special.gammaincinv(half_dim, 1.0 - p_a)
    median = special.gammaincinv(half_dim, 0.5)
    return np.sqrt(tail_quantile / median)
