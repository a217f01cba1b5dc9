"""Exact binomial confidence bounds and the abstain test of Cohen et al.'s PREDICT.

References
----------
C. J. Clopper and E. S. Pearson, "The use of confidence or fiducial limits illustrated in the
case of the binomial", Biometrika 26(4), 404-413, 1934.
J. Cohen, E. Rosenfeld, J. Z. Kolter, "Certified adversarial robustness via randomized
smoothing", ICML 2019 (Pseudocode, PREDICT and CERTIFY).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from idrs_lightning.validation import check_count, check_range

FloatArray = NDArray[np.float64]

# Outward rounding of the bounds: ``betaincinv`` was measured up to 3.4e-12 off, relative to
# ``min(p, 1 - p)``, on either side (n up to 1e6); a bound is moved away from p by 30 times
# that, plus 1e-15 absolute, so that it is never on the wrong side of the exact one.
_RELATIVE_MARGIN = 1e-10
_ABSOLUTE_MARGIN = 1e-15


def _margin(bound: FloatArray) -> FloatArray:
    return _RELATIVE_MARGIN * np.minimum(bound, 1.0 - bound) + _ABSOLUTE_MARGIN


def _check_counts(n_success: ArrayLike, n: ArrayLike) -> tuple[FloatArray, FloatArray]:
    k = check_count("n_success", n_success)
    total = check_count("n", n, minimum=1)
    if (k > total).any():
        raise ValueError("n_success must not exceed n")
    return np.broadcast_arrays(k, total)


def clopper_pearson_lower(n_success: ArrayLike, n: ArrayLike, alpha: ArrayLike) -> FloatArray:
    """One-sided exact lower confidence bound on a binomial proportion.

    With probability at least ``1 - alpha`` over the draw of ``n_success ~ Bin(n, p)``,
    ``p >= clopper_pearson_lower(n_success, n, alpha)``.

    Parameters
    ----------
    n_success : array_like of int, ``0 <= n_success <= n``
    n : array_like of int, ``n >= 1``
    alpha : array_like of float in ``(0, 1)``

    Returns
    -------
    ndarray
        ``Beta^{-1}(alpha; n_success, n - n_success + 1)``, and exactly 0 for ``n_success = 0``.
        This is Cohen et al.'s ``proportion_confint(nA, n, alpha=2*alpha, method="beta")[0]``,
        rounded down by a relative 1e-10 of ``min(p, 1 - p)`` (plus 1e-15) to cover the
        float64 inversion.
    """
    k, total = _check_counts(n_success, n)
    level = check_range("alpha", alpha, 0.0, 1.0, low_open=True, high_open=True)
    with np.errstate(invalid="ignore"):
        bound = special.betaincinv(np.maximum(k, 1.0), total - k + 1.0, level)
    return np.where(k == 0, 0.0, np.maximum(bound - _margin(bound), 0.0))


def clopper_pearson_upper(n_success: ArrayLike, n: ArrayLike, alpha: ArrayLike) -> FloatArray:
    """One-sided exact upper confidence bound: ``p <= bound`` with probability ``>= 1 - alpha``.

    ``Beta^{-1}(1 - alpha; n_success + 1, n - n_success)``, and exactly 1 for ``n_success = n``;
    rounded up as :func:`clopper_pearson_lower` is rounded down. Arguments as there.
    """
    k, total = _check_counts(n_success, n)
    level = check_range("alpha", alpha, 0.0, 1.0, low_open=True, high_open=True)
    # Upper bound for k successes = 1 - lower bound for the n - k failures (exact symmetry).
    with np.errstate(invalid="ignore"):
        failures_lower = special.betaincinv(np.maximum(total - k, 1.0), k + 1.0, level)
    bound = 1.0 - failures_lower
    return np.where(k == total, 1.0, np.minimum(bound + _margin(bound), 1.0))


def binomial_abstain_test(n_a: ArrayLike, n_b: ArrayLike, alpha: ArrayLike) -> NDArray[np.bool_]:
    """Cohen et al.'s PREDICT decision: ``True`` where the smoothed classifier must abstain.

    The top class (``n_a`` votes) is returned only if the two-sided binomial test of
    ``n_a ~ Bin(n_a + n_b, 1/2)`` rejects at level ``alpha``; then, with probability at least
    ``1 - alpha``, the prediction equals the smoothed classifier's. The p-value equals
    ``scipy.stats.binomtest(n_a, n_a + n_b, 0.5).pvalue``; for ``p = 1/2`` it is
    ``min(1, 2 P(X >= max(n_a, n_b)))``.

    Returns
    -------
    ndarray of bool
        ``True`` = abstain (p-value > alpha), ``False`` = predict the top class.
    """
    a = check_count("n_a", n_a)
    b = check_count("n_b", n_b)
    level = check_range("alpha", alpha, 0.0, 1.0, low_open=True, high_open=True)
    total = a + b
    larger = np.maximum(a, b)
    # P(X >= larger) = bdtrc(larger - 1, total, 1/2); both counts zero leaves nothing to test.
    with np.errstate(invalid="ignore"):
        p_value = np.minimum(1.0, 2.0 * special.bdtrc(larger - 1.0, total.astype(np.int64), 0.5))
    p_value = np.where((a == b) | (total == 0), 1.0, p_value)
    return p_value > level
