"""Certified radii: Cohen et al.'s constant-sigma radius and the IDRS radius of Theorem 7.

References
----------
J. Cohen, E. Rosenfeld, J. Z. Kolter, "Certified adversarial robustness via randomized
smoothing", ICML 2019, Theorem 1.
P. Sukenik, A. Kuvshinov, S. Guennemann, "Intriguing properties of input-dependent randomized
smoothing", ICML 2022, Theorems 6, 7 and 15.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from idrs_lightning.certification._quadric import quadric_quantile, quadric_tail
from idrs_lightning.certification._search import last_certified
from idrs_lightning.certification.runner_up import runner_up_unit_radius
from idrs_lightning.validation import (
    check_count,
    check_non_negative,
    check_positive,
    check_range,
)

FloatArray = NDArray[np.float64]

# Relative slack on computed probabilities: a radius is only accepted where the computed
# budget clears p_b by this much. It covers the quadrature (~1e-10 for the tails in
# [1e-15, 1/2] evaluated here at _BUDGET_RTOL, against mpmath from N = 1 to 150528) and the
# conditioning of balls whose threshold nearly touches the top of S's range (N = 2, 3:
# relative errors up to 4e-8 were measured there).
_PROBABILITY_SLACK = 1e-7
_BUDGET_RTOL = 1e-6
# Below this p_b the quadrature's 1e-30 truncation could matter; such p_b are rounded up,
# which can only shrink the radius (it is non-decreasing in p_a).
_SMALLEST_P_B = 1e-15
# Relative shrink of closed-form radii, covering the few-ulp error of ndtri.
_CLOSED_FORM_SLACK = 1e-14
_RADIUS_RTOL = 1e-9


def cohen_radius(sigma: ArrayLike, p_a: ArrayLike, p_b: ArrayLike | None = None) -> FloatArray:
    """Certified l2 radius of constant-sigma smoothing (Cohen et al. 2019, Theorem 1).

    With ``p_a`` a lower bound on the top-class probability (and ``p_b`` an upper bound on the
    runner-up), the smoothed classifier is constant within

    .. math:: R = \\sigma \\Phi^{-1}(p_a)
              \\quad\\text{or}\\quad R = \\tfrac{\\sigma}{2}(\\Phi^{-1}(p_a) - \\Phi^{-1}(p_b)).

    Parameters
    ----------
    sigma : array_like, ``> 0``
    p_a : array_like in ``(0, 1]``
    p_b : array_like in ``[0, 1)``, optional
        Upper bound on every other class's probability; a ``p_b`` above ``1 - p_a`` is lowered
        to ``1 - p_a``, which also bounds them (as in :func:`idrs_radius`).

    Returns
    -------
    ndarray
        The radius, shrunk by a relative 1e-14 so that rounding never enlarges it; 0 where
        the certificate fails (``p_a <= 1/2``, or ``p_a <= p_b``: abstain), inf at ``p_a = 1``.
    """
    sigma = check_positive("sigma", sigma)
    p_a = check_range("p_a", p_a, 0.0, 1.0, low_open=True)
    if p_b is None:
        z = special.ndtri(p_a)
    else:
        p_b = np.minimum(check_range("p_b", p_b, 0.0, 1.0, high_open=True), 1.0 - p_a)
        z = 0.5 * (special.ndtri(p_a) - special.ndtri(p_b))
    return np.where(z > 0.0, sigma * z * (1.0 - _CLOSED_FORM_SLACK), 0.0)


def p_b_budget(radius: FloatArray, rho: FloatArray, dim: FloatArray) -> FloatArray:
    """Theorem 7's budget: the largest ``p_b`` certified at distance ``radius`` (``sigma0 = 1``).

    Theorem 7 certifies distance R iff ``xi_>(R, e^{-rho R}) < 1/2`` and
    ``xi_<(R, e^{rho R}) < 1/2`` (Theorem 6 makes the two extreme ``sigma1`` the worst). Since
    ``P_1(B) < 1/2`` iff B's threshold lies beyond the median ``m`` of the ``P_1`` statistic,
    each condition reads ``p_b < P_0(S_0 beyond t^3 m +- R (1 + t^2) / 2)``, with
    ``S_0 = Z_1 - beta ||Z||^2``, ``beta = |1 - t^2| / (2R)`` and ``m`` the median of
    ``Z_1 - (beta / t) ||Z||^2`` (the statistics of :mod:`.xi` divided by ``2R``). The budget
    depends on ``(R, rho, N)`` only, not on ``p_a``, and is continuous at ``R = 0`` where it is
    1/2 (``beta -> rho``). The computed budget is lowered by a relative 1e-7 (the quadrature's
    and the conditioning's error), so that a ``p_b`` below it is certified: :func:`idrs_radius`
    solves against it, :func:`.radius_thresholds` starts its search from its inverse.
    """
    budgets = []
    for sign in (-1.0, 1.0):  # sigma1 = e^{-rho R} (xi_>) and e^{+rho R} (xi_<)
        t = np.exp(sign * rho * radius)
        eps = np.abs(np.expm1(2.0 * sign * rho * radius))
        beta = np.where(radius > 0.0, eps / (2.0 * np.maximum(radius, 1e-300)), rho)
        median = quadric_quantile(0.5, 1.0, beta / t, dim, upper=True, rtol=_BUDGET_RTOL)
        tau = t**3 * median - sign * 0.5 * radius * (1.0 + t * t)
        budgets.append(quadric_tail(tau, 1.0, beta, dim, upper=sign < 0, rtol=_BUDGET_RTOL)[0])
    return np.minimum(*budgets) * (1.0 - _PROBABILITY_SLACK)


def _unit_radius(rho: FloatArray, dim: FloatArray, p_b: FloatArray) -> FloatArray:
    """Theorem 7's radius for ``sigma0 = 1`` and semi-elasticity ``rho``; rounded down.

    Solves ``budget(R) = p_b`` by regula falsi (Illinois) on
    ``G(R) = -PhiInv(p_b_budget(R)) - PhiInv(1 - p_b)``, which is ``0`` at ``R = 0`` and
    exactly linear for ``rho = 0`` (Cohen's case), on the bracket ``[0, PhiInv(1 - p_b)]``
    (Theorem 15 bounds the radius by Cohen's). Only radii where ``G < 0`` was verified are
    returned.
    """
    target = -special.ndtri(p_b)
    lo = np.zeros_like(rho)
    hi = target.copy()

    def excess(radius: FloatArray, idx: NDArray[np.intp]) -> FloatArray:
        return -special.ndtri(p_b_budget(radius, rho[idx], dim[idx])) - target[idx]

    g_hi = excess(hi, np.arange(rho.size))
    capped = g_hi < 0.0  # numerically certified at Cohen's radius: Theorem 15 caps it there
    lo[capped] = hi[capped]
    return last_certified(excess, lo, hi, -target, g_hi, _RADIUS_RTOL)


def idrs_radius(
    sigma0: ArrayLike,
    r: ArrayLike,
    dim: ArrayLike,
    p_a: ArrayLike,
    p_b: ArrayLike | None = None,
) -> FloatArray:
    """Certified l2 radius of input-dependent randomized smoothing (IDRS paper, Theorem 7).

    For an r-semi-elastic noise function (``|log sigma(x) - log sigma(y)| <= r ||x - y||``)
    with ``sigma(x0) = sigma0`` and top-class probability at least ``p_a`` at ``x0``,

    .. math:: CR = \\sup\\{R \\ge 0 : \\xi_>(R, \\sigma_0 e^{-rR}) < 1/2,\\;
              \\xi_<(R, \\sigma_0 e^{rR}) < 1/2\\},

    and the smoothed classifier is constant on the open ball of radius CR around ``x0``.

    Parameters
    ----------
    sigma0 : array_like, ``> 0``
        Noise level at the input.
    r : array_like, ``>= 0``
        Semi-elasticity of ``sigma(x)`` (the one that produced ``sigma0``, clamp included).
    dim : array_like of int, ``>= 1``
        Input dimension N.
    p_a : array_like in ``(0, 1]``
        Lower confidence bound on the top-class probability.
    p_b : array_like in ``[0, 1)``, optional
        Upper confidence bound on every other class's probability (Appendix B.5). Without it
        ``p_b = 1 - p_a``; a larger ``p_b`` is lowered to ``1 - p_a``, which also bounds them.
        The condition becomes ``1 - W(R, sigma1, 1 - p_a) - W(R, sigma1, p_b) > 0`` for every
        ``sigma1`` in ``[sigma0 e^{-rR}, sigma0 e^{rR}]``; see :mod:`.runner_up` for the
        derivation and the rigorous check over ``sigma1``.

    Returns
    -------
    ndarray
        The radius, broadcast over the arguments. ``0`` where ``p_a <= 1/2`` (abstain) or,
        with ``p_b``, where ``p_a <= p_b``; ``inf`` where ``p_a = 1``; ``r = 0`` gives exactly
        :func:`cohen_radius`.

    Notes
    -----
    Numerics round down: the returned R is one where the certificate was verified with a
    relative slack of 1e-7 on the worst-case probabilities, found to a relative 1e-9, and
    never above Cohen's radius (Theorem 15). ``p_b < 1e-15`` is treated as ``1e-15``. The
    computation scales: ``CR(s, r, N, p) = s * CR(1, r s, N, p)``. See :mod:`.xi` and
    :mod:`._quadric` for the stable evaluation near ``sigma1 = sigma0``, which needs no
    hand-tuned thresholds, and stays finite at ImageNet dimension (N = 150528).
    """
    sigma0 = check_positive("sigma0", sigma0)
    r = check_non_negative("r", r)
    dim = check_count("dim", dim, minimum=1)
    p_a = check_range("p_a", p_a, 0.0, 1.0, low_open=True)
    if p_b is not None:
        p_b = check_range("p_b", p_b, 0.0, 1.0, high_open=True)
        return _runner_up_radius(*np.broadcast_arrays(sigma0, r, dim, p_a, p_b))
    sigma0, r, dim, p_a = np.broadcast_arrays(sigma0, r, dim, p_a)
    radius = cohen_radius(sigma0, p_a)
    rho = (r * sigma0).ravel()
    needs_search = (rho > 0.0) & (p_a.ravel() > 0.5) & (p_a.ravel() < 1.0)
    if needs_search.any():
        p_b = np.maximum(1.0 - p_a.ravel()[needs_search], _SMALLEST_P_B)
        keys = np.stack([rho[needs_search], dim.ravel()[needs_search], p_b], axis=1)
        unique, inverse = np.unique(keys, axis=0, return_inverse=True)
        unit = _unit_radius(unique[:, 0], unique[:, 1], unique[:, 2])
        flat = radius.ravel().copy()
        flat[needs_search] = np.minimum(
            unit[inverse.ravel()] * sigma0.ravel()[needs_search], flat[needs_search]
        )
        radius = flat.reshape(radius.shape)
    return radius


def _runner_up_radius(
    sigma0: FloatArray, r: FloatArray, dim: FloatArray, p_a: FloatArray, p_b: FloatArray
) -> FloatArray:
    """:func:`idrs_radius` with a separate ``p_b`` (validated, broadcast arguments)."""
    p_b = np.minimum(p_b, 1.0 - p_a)
    cohen = cohen_radius(sigma0, p_a, np.maximum(p_b, _SMALLEST_P_B))
    floor = idrs_radius(sigma0, r, dim, p_a)  # the p_b = 1 - p_a radius, sound for any p_b
    rho = (r * sigma0).ravel()
    flat = np.where(rho > 0.0, floor.ravel(), cohen.ravel())
    # With p_b = 1 - p_a the two-set condition is Theorem 7's: nothing to search.
    needs_search = (rho > 0.0) & (p_a.ravel() < 1.0) & (p_b.ravel() < 1.0 - p_a.ravel())
    needs_search &= cohen.ravel() > 0.0
    if needs_search.any():
        columns = [rho, dim.ravel(), p_a.ravel(), np.maximum(p_b.ravel(), _SMALLEST_P_B)]
        columns.append(floor.ravel() / sigma0.ravel())
        keys = np.stack([c[needs_search] for c in columns], axis=1)
        unique, inverse = np.unique(keys, axis=0, return_inverse=True)
        unit = runner_up_unit_radius(*unique.T)
        flat[needs_search] = np.minimum(
            unit[inverse.ravel()] * sigma0.ravel()[needs_search], cohen.ravel()[needs_search]
        )
    return flat.reshape(cohen.shape)
