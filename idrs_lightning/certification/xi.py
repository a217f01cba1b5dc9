"""The worst-case class-B probabilities xi_> and xi_< of the IDRS paper (Theorems 2-3).

Setting. ``x0`` is certified with noise ``N(x0, sigma0^2 I)`` and ``P_0(A) = p_a``; an adversary
``x1`` at distance ``a`` uses ``N(x1, sigma1^2 I)``. By Neyman-Pearson the worst classifier puts
class B on a likelihood-ratio region with ``P_0(B) = p_b = 1 - p_a``: a ball when
``sigma1 < sigma0`` (Theorem 2) and the complement of a ball when ``sigma1 > sigma0``. Then
``xi_>(a) = P_1(B)`` (``sigma1 < sigma0``) and ``xi_<(a) = P_1(B)`` (``sigma1 > sigma0``);
``x1`` is certified from ``x0`` when the relevant xi is below 1/2.

Stable form. In units of ``sigma0`` put ``t = sigma1 / sigma0``, ``eps = |1 - t^2|`` and
``Z ~ N(0, I_N)``. Multiplying the ball inequality of Theorem 2 by ``eps`` gives, with
``S(theta1, theta2) = theta1 Z_1 - theta2 ||Z||^2``:

* ``sigma1 < sigma0``: ``P_0(B) = P(S(2a, eps) >= tau)`` and
  ``P_1(B) = P(S(2a t^3, eps t^2) >= tau - a^2 (1 + t^2))``;
* ``sigma1 > sigma0`` (class A is the ball, mirrored): ``P_0(A) = P(S(2a, eps) >= tau)`` and
  ``P_1(B) = P(S(2a t^3, eps t^2) < tau + a^2 (1 + t^2))``.

These are Theorem 3's non-central chi-square expressions (non-centrality
``sigma_i^2 a^2 / (sigma0^2 - sigma1^2)^2``) without the ``1 / eps^2`` blow-up: at ``a = 0``
they are central chi-square probabilities, and at ``eps = 0`` the set is Cohen et al.'s
half-space, so both xi tend to ``Phi(a / sigma0 - PhiInv(p_a))`` as ``sigma1 -> sigma0``.

For ``sigma1 << sigma0``, tiny ``p_b`` and small ``N`` the ball B can be so small that its
threshold lies within a few ulp of the top of S's range, where ``tau`` cannot resolve it; the
P_0 quantile is then refined as the ball's squared radius, which is carried to P_1 exactly
(it scales by ``(sigma0 / sigma1)^2``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from idrs_lightning.certification._quadric import (
    STRICT_RTOL,
    quadric_quantile,
    quadric_tail,
    refine_ball_edge,
)
from idrs_lightning.validation import (
    check_count,
    check_non_negative,
    check_positive,
    check_range,
)

FloatArray = NDArray[np.float64]


def _xi(
    a: ArrayLike,
    sigma0: ArrayLike,
    sigma1: ArrayLike,
    dim: ArrayLike,
    p_a: ArrayLike,
    greater: bool,
) -> FloatArray:
    a = check_non_negative("a", a)
    sigma0 = check_positive("sigma0", sigma0)
    sigma1 = check_positive("sigma1", sigma1)
    dim = check_count("dim", dim, minimum=1)
    p_a = check_range("p_a", p_a, 0.0, 1.0, low_open=True, high_open=True)
    arrays = np.broadcast_arrays(a, sigma0, sigma1, dim, p_a)
    shape = arrays[0].shape
    a, sigma0, sigma1, dim, p_a = (v.ravel() for v in arrays)
    wrong_side = sigma1 > sigma0 if greater else sigma1 < sigma0
    if wrong_side.any():
        relation = "sigma1 <= sigma0" if greater else "sigma1 >= sigma0"
        name = "xi_greater" if greater else "xi_less"
        raise ValueError(f"{name} needs {relation}, got sigma1/sigma0 = {(sigma1 / sigma0)[0]!r}")

    return worst_case_probability(a / sigma0, sigma1 / sigma0, dim, 1.0 - p_a, greater).reshape(
        shape
    )


def worst_case_probability(
    dist: FloatArray,
    t: FloatArray,
    dim: FloatArray,
    level: FloatArray,
    greater: bool,
    rtol: float = STRICT_RTOL,
) -> FloatArray:
    """``sup {P_1(E) : P_0(E) <= level}`` for flat arrays in units of ``sigma0``.

    ``dist = ||x1 - x0|| / sigma0`` and ``t = sigma1 / sigma0`` (``<= 1`` with ``greater``,
    ``>= 1`` without); the level is taken as given, so a tiny one keeps its relative accuracy.
    """
    p_b = level
    eps = np.abs(1.0 - t * t)
    theta0 = (2.0 * dist, eps)
    theta1 = (2.0 * dist * t**3, eps * t * t)
    shift = dist * dist * (1.0 + t * t)
    result = np.empty_like(dist)

    same = (dist == 0.0) & (eps == 0.0)  # x1 = x0 with sigma1 = sigma0: P_1 = P_0
    result[same] = p_b[same]
    rest = ~same
    if rest.any():
        th0 = tuple(v[rest] for v in theta0)
        th1 = tuple(v[rest] for v in theta1)
        # P_0(B) = p_b for the ball B (xi_>), P_0(A) = p_a <=> P_0(outside A) = p_b (xi_<).
        tau = quadric_quantile(p_b[rest], *th0, dim[rest], upper=greater, rtol=rtol)
        if greater:  # B is a ball, possibly a small one: carry its squared radius exactly
            tau, edge0 = refine_ball_edge(p_b[rest], *th0, dim[rest], tau)
            edge1 = edge0 / (t[rest] * t[rest])  # the same ball in sigma1 units
            result[rest] = quadric_tail(
                tau - shift[rest], *th1, dim[rest], True, rtol=rtol, edge=edge1
            )[0]
        else:
            result[rest] = quadric_tail(tau + shift[rest], *th1, dim[rest], False, rtol=rtol)[0]
    return result


def xi_greater(
    a: ArrayLike, sigma0: ArrayLike, sigma1: ArrayLike, dim: ArrayLike, p_a: ArrayLike
) -> FloatArray:
    """xi_>(a): worst-case ``P_1(B)`` at distance ``a`` when ``sigma1 <= sigma0`` (Theorem 3).

    Parameters
    ----------
    a : array_like, ``>= 0``
        Distance ``||x1 - x0||`` in input units.
    sigma0, sigma1 : array_like, ``> 0``
        Noise levels at ``x0`` and ``x1``, ``sigma1 <= sigma0``.
    dim : array_like of int, ``>= 1``
        Input dimension N.
    p_a : array_like in ``(0, 1)``
        Probability of the top class at ``x0`` (``p_b = 1 - p_a``).

    Returns
    -------
    ndarray
        ``chi2_N(lam1, sigma0^2/sigma1^2 * chi2ppf_N(lam0, 1 - p_a))`` with
        ``lam_i = sigma_i^2 a^2 / (sigma0^2 - sigma1^2)^2``; continuous at ``a = 0`` and
        ``sigma1 = sigma0`` (where it is ``Phi(a / sigma0 - PhiInv(p_a))``).
    """
    return _xi(a, sigma0, sigma1, dim, p_a, greater=True)


def xi_less(
    a: ArrayLike, sigma0: ArrayLike, sigma1: ArrayLike, dim: ArrayLike, p_a: ArrayLike
) -> FloatArray:
    """xi_<(a): worst-case ``P_1(B)`` at distance ``a`` when ``sigma1 >= sigma0`` (Theorem 3).

    ``1 - chi2_N(lam1, sigma0^2/sigma1^2 * chi2ppf_N(lam0, p_a))``, computed as a tail
    probability without cancellation. Parameters as in :func:`xi_greater`.
    """
    return _xi(a, sigma0, sigma1, dim, p_a, greater=False)
