"""The Renyi-divergence certified radius with two noise levels (IDRS paper, Appendix B.1).

Li et al. certify constant-sigma smoothing by bounding the Renyi divergence between the output
distributions at ``x0`` and ``x1``; Theorem 14 of the IDRS paper generalises their radius to
``sigma0`` at ``x0`` and a fixed ``sigma1`` at every ``x1``. The per-dimension divergence at
``x1 = x0`` makes this radius vanish in high dimension unless ``sigma1 / sigma0`` is very close
to 1: the curse of dimensionality again (the paper's Figure 11).

References
----------
B. Li, C. Chen, W. Wang, L. Carin, "Certified adversarial robustness with additive noise",
NeurIPS 2019, Lemma 2 and Theorem 1.
P. Sukenik, A. Kuvshinov, S. Guennemann, "Intriguing properties of input-dependent randomized
smoothing", ICML 2022, Appendix B.1: Lemmas 10-13 and Theorem 14.
T. van Erven, P. Harremoes, "Renyi divergence and Kullback-Leibler divergence", IEEE Trans.
Inf. Theory 2014 (the Gaussian divergence and additivity over products).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from idrs_lightning.validation import check_count, check_positive, check_range

FloatArray = NDArray[np.float64]

# Relative slack applied to each computed term (the budget is lowered, the divergence at
# x1 = x0 raised, the prefactor lowered). Every term is evaluated without cancellation to a
# few tens of ulps (< 1e-13 relative), so the slack makes each evaluated R^2 a lower bound on
# the exact value at its order, even where budget and divergence nearly cancel.
_SLACK = 1e-10
# Search over u = alpha - 1 on a log-spaced grid in [_U_MIN, _U_MAX] (clipped to the admissible
# range), then golden-section refinement in log(u) around the best grid point.
_U_MIN = 1e-8
_U_MAX = 1e8
_GRID_POINTS = 161  # 10 per decade over 16 decades
_GOLDEN_STEPS = 60
# One more order, alpha = 1 + 1e-200: there the terms of order u underflow and the value is
# the alpha -> 1 limit (the budget with the geometric mean M_0, the Kullback-Leibler divergence
# per dimension); the underflow only lowers the budget, and raises c by ~1e-200 relative.
_U_LIMIT = 1e-200
# With sigma1 > sigma0 the order is kept where sigma_alpha^2 / sigma0^2 >= ~1e-4, so that
# sigma_alpha^2 is computed to a relative 1e-12 (the radius carries the factor sigma_alpha^2
# and vanishes at the end of the range, so nothing of value is cut).
_EDGE = 1e-4
# Below this |x| the function x - log1p(x) is summed as a series.
_SERIES_BOUND = 0.05
_SERIES = np.array([(-1.0) ** k / k for k in range(2, 21)])  # x^2/2 - x^3/3 + ... - x^20/20
_INV_PHI = (np.sqrt(5.0) - 1.0) / 2.0


def _x_minus_log1p(x: FloatArray) -> FloatArray:
    """``x - log1p(x) >= 0`` for ``x > -1``, to a few ulps relative (series near 0)."""
    x = np.asarray(x, dtype=np.float64)
    small = np.abs(x) < _SERIES_BOUND
    xs = np.where(small, x, 0.0)
    series = np.zeros_like(xs)
    for coefficient in _SERIES[::-1]:
        series = series * xs + coefficient
    series = series * xs * xs
    with np.errstate(divide="ignore", invalid="ignore"):
        direct = x - np.log1p(np.where(small, 0.0, x))
    return np.where(small, series, direct)


def _log_cosh(y: FloatArray) -> FloatArray:
    """``log(cosh(y))`` without cancellation near 0 or overflow for large ``|y|``."""
    y = np.abs(y)
    near = np.minimum(y, 20.0)
    small = np.log1p(2.0 * np.sinh(0.5 * near) ** 2)
    with np.errstate(over="ignore", invalid="ignore"):
        large = y - np.log(2.0) + np.log1p(np.exp(-2.0 * y))
    return np.where(y < 20.0, small, large)


def zero_distance_divergence(u: FloatArray, t: FloatArray, g_minus_t: FloatArray) -> FloatArray:
    """``c(alpha)``: Lemma 10's divergence at ``mu1 = mu0`` (one dimension), ``alpha = 1 + u``.

    With ``t = 1 - sigma1^2 / sigma0^2`` (so ``sigma_alpha^2 = sigma0^2 (1 + u t)``),

    .. math:: c = \\frac{\\log(\\sigma_\\alpha/\\sigma_1) - \\alpha\\log(\\sigma_0/\\sigma_1)}
              {1 - \\alpha} = \\tfrac12\\big(g(-t) + g(u t) / u\\big),\\quad g(x) = x - \\log(1+x),

    a sum of two non-negative terms, exact in exact arithmetic and free of cancellation as
    ``alpha -> 1`` or ``sigma1 -> sigma0``. ``g_minus_t`` is ``g(-t)``, computed by the caller.
    """
    return 0.5 * (g_minus_t + _x_minus_log1p(u * t) / u)


def _budget(
    u: FloatArray,
    sum_ab: FloatArray,
    slack_mass: FloatArray,
    half_log_gm: FloatArray,
    half_log_ratio: FloatArray,
) -> FloatArray:
    """Lemma 13's bound ``-log(1 - 2 M_1(a, b) + 2 M_{1-alpha}(a, b))``, ``alpha = 1 + u``.

    With ``m = M_1 = (a + b)/2`` and ``e = (a - b)/(a + b)``,
    ``log(M_q / m) = log(1 - e^2)/2 + log(cosh(q atanh e)) / q`` (both terms ``<= 0`` for
    ``q = 1 - alpha < 0``) and ``atanh e = log(a/b)/2``. Then ``D = 2m - 2 M_q =
    -2m expm1(log(M_q/m))`` and the bound is ``-log1p(-D)``, or ``-log(s + 2 M_q)`` with
    ``s = 1 - a - b >= 0`` where ``D > 1/2``: no cancellation for ``a`` near ``b`` or ``b``
    tiny. Precomputed: ``sum_ab = a + b``, ``slack_mass = s``, ``half_log_gm = log(1 - e^2)/2``
    and ``half_log_ratio = atanh e`` (``inf`` for ``b = 0``, where ``M_q = 0``).
    """
    with np.errstate(invalid="ignore"):
        log_ratio = half_log_gm - _log_cosh(u * half_log_ratio) / u
    deficit = -sum_ab * np.expm1(log_ratio)
    with np.errstate(divide="ignore"):
        far = -np.log(slack_mass + sum_ab * np.exp(log_ratio))
    near = -np.log1p(-np.minimum(deficit, 0.5))
    return np.where(deficit <= 0.5, near, far)


def renyi_radius(
    sigma0: ArrayLike,
    sigma1: ArrayLike,
    dim: ArrayLike,
    p_a: ArrayLike,
    p_b: ArrayLike | None = None,
) -> FloatArray:
    """Certified l2 radius from Renyi divergences with two noise levels (IDRS, Theorem 14).

    The smoothed classifier uses noise ``N(0, sigma0^2 I)`` at ``x0`` and ``N(0, sigma1^2 I)``
    at every ``x1`` considered. By post-processing and Lemmas 10-12 of the IDRS paper,

    .. math:: D_\\alpha(\\mathcal N(x_1, \\sigma_1^2 I) \\,\\|\\, \\mathcal N(x_0, \\sigma_0^2 I))
              = \\frac{\\alpha \\|x_0 - x_1\\|^2}{2\\sigma_\\alpha^2} + N c(\\alpha),\\qquad
              \\sigma_\\alpha^2 = (1-\\alpha)\\sigma_1^2 + \\alpha\\sigma_0^2 > 0,

    with ``c(alpha) = [log(sigma_alpha / sigma1) - alpha log(sigma0 / sigma1)] / (1 - alpha)
    >= 0`` the divergence per dimension at ``x1 = x0``. Li et al.'s Lemma 2 (the paper's
    Lemma 13) keeps the top class wherever this divergence is at most
    ``budget(alpha) = -log(1 - 2 M_1(p_a, p_b) + 2 M_{1-alpha}(p_a, p_b))``, with the power
    means ``M_q(a, b) = ((a^q + b^q)/2)^(1/q)``. Hence every ``x1`` with

    .. math:: \\|x_0 - x_1\\|^2 \\le R^2 = \\sup_\\alpha \\frac{2\\sigma_\\alpha^2}{\\alpha}
              \\big(\\mathrm{budget}(\\alpha) - N c(\\alpha)\\big)

    is classified as ``x0`` is. (The proof of Theorem 14 prints this inequality with ``>=``; the
    certified set is the one with ``<=``.) For ``sigma1 = sigma0`` it is Li et al.'s Theorem 1,
    ``R^2 = sup_{alpha > 1} (2 sigma^2 / alpha) budget(alpha)``.

    Parameters
    ----------
    sigma0 : array_like, ``> 0``
        Noise level at ``x0``.
    sigma1 : array_like, ``> 0``
        Noise level used at every ``x1``.
    dim : array_like of int, ``>= 1``
        Input dimension N.
    p_a : array_like in ``(0, 1)``
        Lower bound on the top-class probability at ``x0``.
    p_b : array_like in ``[0, 1)``, optional
        Upper bound on every other class's probability at ``x0``. Without it
        ``p_b = 1 - p_a``; a larger ``p_b`` is lowered to ``1 - p_a``, which also bounds them.

    Returns
    -------
    ndarray
        The radius R (not squared), broadcast over the arguments; ``0`` where nothing is
        certified (``p_a <= p_b``, or ``budget <= N c`` at every order searched).

    Notes
    -----
    Order range: ``alpha > 1``, the orders of Li et al.'s lemma and theorem (the paper writes
    ``S = R_+``; leaving out ``(0, 1]`` can only shrink the radius), and, when
    ``sigma1 > sigma0``, ``alpha < sigma1^2 / (sigma1^2 - sigma0^2)`` so that
    ``sigma_alpha^2 > 0``.

    Guarantee: every admissible order gives a valid certificate, so the largest value over the
    orders evaluated is a lower bound on the supremum, and the radius is sound provided no
    evaluation exceeds its exact value. Each evaluation is written without cancellation (see
    ``_budget`` and :func:`zero_distance_divergence`) and rounded down by a relative slack of 1e-10
    on each term: ``R^2 = prefactor (1 - 1e-10) (budget (1 - 1e-10) - N c (1 + 1e-10))``, which
    covers their rounding (< 1e-13 relative) even where budget and ``N c`` nearly cancel.

    Search: ``u = alpha - 1`` on a log grid of 161 points over ``[1e-8, 1e8]``, clipped to the
    range (with ``sigma1 > sigma0`` it stops where ``sigma_alpha^2 = 1e-4 sigma0^2``), plus
    ``u = 1e-200`` (the limit ``alpha -> 1``); then 60 golden-section steps in ``log(u)`` on the
    two grid cells around the best grid point; the maximum of all values is kept. Against a
    brute-force search the result is low by about the slack (1e-10 relative) when the
    supremum is interior or at ``alpha -> 1``; it would be low by ``O(1e-8)`` relative were
    the supremum at ``alpha -> inf`` (conceivable only for ``sigma0 > sigma1``, not met in the
    cases checked). It never exceeds the supremum.
    """
    sigma0 = check_positive("sigma0", sigma0)
    sigma1 = check_positive("sigma1", sigma1)
    dim = check_count("dim", dim, minimum=1)
    p_a = check_range("p_a", p_a, 0.0, 1.0, low_open=True, high_open=True)
    if p_b is None:
        p_b = 1.0 - p_a
    else:
        p_b = np.minimum(check_range("p_b", p_b, 0.0, 1.0, high_open=True), 1.0 - p_a)
    sigma0, sigma1, dim, p_a, p_b = np.broadcast_arrays(sigma0, sigma1, dim, p_a, p_b)
    shape = p_a.shape
    sigma0, sigma1, dim, a, b = (
        v.ravel().astype(np.float64) for v in (sigma0, sigma1, dim, p_a, p_b)
    )
    rest = 1.0 - a
    # A positive p_b below 1e-300 is raised to it (the budget decreases in p_b: sound), so that
    # a / b stays finite; b = 0 is kept and exact (M_q = 0 for q < 0).
    b = np.where(b > 0.0, np.maximum(b, 1e-300), 0.0)

    # Noise-level terms: t = 1 - sigma1^2 / sigma0^2, g(-t) = -t - log(sigma1^2 / sigma0^2).
    t = (sigma0 - sigma1) * (sigma0 + sigma1) / (sigma0 * sigma0)
    g_minus_t = np.where(t <= 0.5, _x_minus_log1p(-t), -t - 2.0 * np.log(sigma1 / sigma0))
    # Probability terms (a > b where anything is certified; b = 0 is exact: M_q = 0).
    sum_ab = a + b
    slack_mass = np.maximum(rest - b, 0.0)
    e = (a - b) / sum_ab
    with np.errstate(divide="ignore"):
        half_log_gm = 0.5 * np.where(
            np.abs(e) < 0.5,
            np.log1p(-e * e),
            np.log(4.0 * a) + np.log(b) - 2.0 * np.log(sum_ab),
        )
        b_safe = np.where(b > 0.0, b, 1.0)
        half_log_ratio = np.where(b > 0.0, 0.5 * np.log1p((a - b_safe) / b_safe), np.inf)

    # Admissible u = alpha - 1: (0, inf), or (0, sigma0^2 / (sigma1^2 - sigma0^2)) if t < 0.
    with np.errstate(divide="ignore"):
        u_end = np.where(t < 0.0, (1.0 - _EDGE) / -np.where(t < 0.0, t, -1.0), np.inf)
    u_hi = np.minimum(_U_MAX, u_end)
    u_lo = np.minimum(_U_MIN, _EDGE * u_hi)
    x_lo, x_hi = np.log(u_lo), np.log(u_hi)

    def squared_radius(x: FloatArray) -> FloatArray:
        u = np.exp(x)
        budget = _budget(u, sum_ab, slack_mass, half_log_gm, half_log_ratio)
        divergence = dim * zero_distance_divergence(u, t, g_minus_t)
        bracket = budget * (1.0 - _SLACK) - divergence * (1.0 + _SLACK)
        prefactor = 2.0 * sigma0 * sigma0 * (1.0 + u * t) / (1.0 + u) * (1.0 - _SLACK)
        return np.where(bracket > 0.0, prefactor * bracket, 0.0)

    # Grid search: loop over the grid, vectorised over the inputs.
    step = (x_hi - x_lo) / (_GRID_POINTS - 1)
    # The limit alpha -> 1 (where the supremum lies when the radius decreases in alpha, e.g.
    # with p_b < 1 - p_a), evaluated at an order that is still > 1.
    best = squared_radius(np.full_like(a, np.log(_U_LIMIT)))
    best_index = np.zeros(a.shape, dtype=np.intp)
    for index in range(_GRID_POINTS):
        value = squared_radius(x_lo + index * step)
        better = value > best
        best = np.where(better, value, best)
        best_index = np.where(better, index, best_index)

    # Golden-section refinement on the grid cells either side of the best point.
    left = x_lo + np.maximum(best_index - 1, 0) * step
    right = x_lo + np.minimum(best_index + 1, _GRID_POINTS - 1) * step
    inner_left = right - _INV_PHI * (right - left)
    inner_right = left + _INV_PHI * (right - left)
    value_left = squared_radius(inner_left)
    value_right = squared_radius(inner_right)
    for _ in range(_GOLDEN_STEPS):
        best = np.maximum(best, np.maximum(value_left, value_right))
        keep_left = value_left >= value_right  # the maximum lies in [left, inner_right]
        right = np.where(keep_left, inner_right, right)
        left = np.where(keep_left, left, inner_left)
        new_inner_left = np.where(keep_left, right - _INV_PHI * (right - left), inner_right)
        new_inner_right = np.where(keep_left, inner_left, left + _INV_PHI * (right - left))
        probe = np.where(keep_left, new_inner_left, new_inner_right)
        value_probe = squared_radius(probe)
        value_left, value_right = (
            np.where(keep_left, value_probe, value_right),
            np.where(keep_left, value_left, value_probe),
        )
        inner_left, inner_right = new_inner_left, new_inner_right
    best = np.maximum(best, np.maximum(value_left, value_right))

    radius = np.where(a > b, np.sqrt(best), 0.0)
    return radius.reshape(shape)
