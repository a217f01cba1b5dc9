"""The IDRS radius with a separate runner-up bound ``p_b`` (IDRS paper, Appendix B.5).

Condition. Let ``p_a`` lower-bound ``P_0(A)`` and ``p_b`` upper-bound every other class's
``P_0(C)`` (so ``p_b <= 1 - p_a`` may be assumed). For an adversary ``x1`` at distance ``a``
with noise ``sigma1`` write ``W(a, sigma1, p) = sup {P_1(E) : P_0(E) <= p}``, the worst-case
probability of Theorem 3 (:mod:`.xi`, a likelihood-ratio ball or its complement). Neyman-Pearson
bounds ``P_1(A) >= 1 - W(a, sigma1, 1 - p_a)`` and ``P_1(C) <= W(a, sigma1, p_b)`` separately
(Cohen et al.'s two-set argument), so ``x1`` keeps class A when

.. math:: D(a, \\sigma_1) = 1 - W(a, \\sigma_1, 1 - p_a) - W(a, \\sigma_1, p_b) > 0.

For ``p_b = 1 - p_a`` this is Theorem 7's ``xi < 1/2``.

Worst case. ``W`` is non-decreasing in ``a`` for every ``sigma1`` (Lemma 20, whose proof holds
for any ``P_0`` level), so ``D`` is non-increasing in ``a``, and an r-semi-elastic ``sigma``
gives ``sigma1 in I(a) = [sigma0 e^{-ra}, sigma0 e^{ra}]`` with ``I(a)`` growing in ``a``. Hence
``D(R, .) > 0`` on ``I(R)`` certifies the whole ball of radius ``R``. Theorem 6 (only the two
extreme ``sigma1`` matter) rests on the threshold 1/2 and is not available here: its homothety
argument fails when ``x1`` lies in A's ball but outside B's. The condition is therefore checked
over all of ``I(R)``.

Rigorous check over ``sigma1``. For any event ``E``,
``|P_{x1, s}(E) - P_{x1, s'}(E)| <= TV(N(0, s^2 I), N(0, s'^2 I))``, so each ``W`` moves by at
most that total variation and ``D`` by at most twice it. If ``D`` was evaluated at the ends of
an interval of ``log sigma1`` of width ``h``, every point of the interval is within ``h / 2`` of
an end and ``D >= min(D_left, D_right) - 2 TV(h / 2)`` there. Intervals are bisected until this
bound is positive (certified) or some evaluated ``D`` is not (refuted).

Search. The radius where the margin at the two extreme ``sigma1`` crosses zero is found by
regula falsi; as the extremes lie in ``I(R)``, the true radius is not larger wherever that
margin falls monotonically in ``R`` (as in every case checked, where the minimum over ``sigma1``
was always at an extreme). The full check then runs at that radius shrunk by relative 1e-6,
then 1e-3, then 3e-2; the largest verified radius is returned, never below the ``p_a``-only
radius of :func:`.radius.idrs_radius` (sound on its own) and never above Cohen et al.'s
``sigma0 / 2 (PhiInv(p_a) - PhiInv(p_b))`` (``sigma1 = sigma0`` lies in ``I(R)``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import special

from idrs_lightning.certification._search import last_certified
from idrs_lightning.certification.xi import worst_case_probability

FloatArray = NDArray[np.float64]

# Relative inflation of each computed worst-case probability (as in radius.py).
_PROBABILITY_SLACK = 1e-7
# Quadrature refinement tolerance; the nested rules are then accurate to about 1e-10 (as for
# the budget of radius.py, which uses the same pair of constants).
_RTOL = 1e-6
# Absolute inflation of the computed total variation (float64 regularised gamma differences).
_TV_SLACK = 1e-12
_RADIUS_RTOL = 1e-9
_SHRINKS = (1e-6, 1e-3, 3e-2)
# First grid over I(R), in units of its half-width: 9 even points, and points 2^-k of the
# width from either end, where the margin is smallest and the bisection would go deepest.
_NEAR_ENDS = 1.0 - 2.0 ** -np.arange(1.0, 25.0)
_INITIAL_GRID = np.unique(np.concatenate([np.linspace(-1.0, 1.0, 9), _NEAR_ENDS, -_NEAR_ENDS]))
_MAX_DEPTH = 48
# Margin evaluations one row may spend on one check; a row that needs more is refuted. Where
# the margin is tiny across the whole interval (probabilities of 1e-5 and below, as for
# p_b ~ 1e-15 near Cohen's radius) the additive bound would need millions.
_ROW_BUDGET = 2048


def scale_total_variation(log_ratio: FloatArray, dim: FloatArray) -> FloatArray:
    """Upper bound on ``TV(N(0, I_N), N(0, e^{2x} I_N))`` for ``x = log_ratio``.

    With ``rho = e^{|x|}`` the densities cross on the sphere ``||z||^2 = c rho^2``,
    ``c = 2 N |x| / (rho^2 - 1)``, so ``TV = F_N(c rho^2) - F_N(c)`` with ``F_N`` the chi-square
    CDF; ``1e-12`` is added for the float64 evaluation.
    """
    x = np.abs(np.asarray(log_ratio, dtype=np.float64))
    half_dim = 0.5 * np.asarray(dim, dtype=np.float64)
    safe = np.maximum(x, 1e-300)
    low = half_dim * 2.0 * safe / np.expm1(2.0 * safe)  # c / 2
    high = low * np.exp(2.0 * safe)
    tv = special.gammainc(half_dim, high) - special.gammainc(half_dim, low)
    return np.where(x > 0.0, np.minimum(tv + _TV_SLACK, 1.0), 0.0)


def _worst_case(
    radius: FloatArray, log_t: FloatArray, dim: FloatArray, level: FloatArray
) -> FloatArray:
    """``W(radius, e^{log_t}, level)`` in units of ``sigma0``, inflated by the probability slack.

    The level is passed as it is: recomputing it as ``1 - (1 - level)`` would round a tiny
    ``p_b`` by up to 5e-17 absolute, in either direction.
    """
    out = np.empty_like(radius)
    below = log_t <= 0.0
    for mask, greater in ((below, True), (~below, False)):
        if mask.any():
            t = np.exp(log_t[mask])
            out[mask] = worst_case_probability(
                radius[mask], t, dim[mask], level[mask], greater, _RTOL
            )
    return out * (1.0 + _PROBABILITY_SLACK)


def _margin(
    radius: FloatArray, log_t: FloatArray, dim: FloatArray, p_a: FloatArray, p_b: FloatArray
) -> FloatArray:
    """``D(radius, e^{log_t})``: positive where every point at that distance keeps class A."""
    both = _worst_case(
        *(np.concatenate([v, v]) for v in (radius, log_t, dim)), np.concatenate([1.0 - p_a, p_b])
    )
    return 1.0 - both[: radius.size] - both[radius.size :]


def _extreme_margin(
    radius: FloatArray, rho: FloatArray, dim: FloatArray, p_a: FloatArray, p_b: FloatArray
) -> FloatArray:
    """``D`` at the two extreme ``sigma1 = e^{-+rho R}``, the smaller of the two."""
    spread = rho * radius
    both = (np.concatenate([radius, radius]), np.concatenate([-spread, spread]))
    stacked = _margin(*both, *(np.concatenate([v, v]) for v in (dim, p_a, p_b)))
    return np.minimum(stacked[: radius.size], stacked[radius.size :])


def _extreme_radius(
    rho: FloatArray, dim: FloatArray, p_a: FloatArray, p_b: FloatArray, cap: FloatArray
) -> FloatArray:
    """The last radius in ``[0, cap]`` where both extremes keep a positive margin."""

    def excess(radius: FloatArray, rows: NDArray[np.intp]) -> FloatArray:
        return -_extreme_margin(radius, rho[rows], dim[rows], p_a[rows], p_b[rows])

    lo = np.zeros_like(cap)
    g_lo = excess(lo, np.arange(cap.size))
    g_hi = excess(cap, np.arange(cap.size))
    lo[g_hi < 0.0] = cap[g_hi < 0.0]
    hi = np.where(g_lo < 0.0, cap, 0.0)  # no margin even at R = 0: nothing is certified
    return last_certified(excess, lo, hi, g_lo, g_hi, _RADIUS_RTOL)


def _verify(
    radius: FloatArray, rho: FloatArray, dim: FloatArray, p_a: FloatArray, p_b: FloatArray
) -> NDArray[np.bool_]:
    """Whether ``D(radius, sigma1) > 0`` for every ``sigma1`` in ``I(radius)``, rigorously.

    Bisects intervals of ``log sigma1`` until the total-variation bound of the module
    docstring certifies them; a row is refuted when an evaluated margin is not positive or
    when it would need more than ``_ROW_BUDGET`` evaluations (both round the radius down).
    """
    rows = radius.size
    verified = radius > 0.0
    spread = rho * radius
    row = np.repeat(np.arange(rows), _INITIAL_GRID.size)
    pos = np.tile(_INITIAL_GRID, rows)

    def evaluate(row: NDArray[np.intp], pos: FloatArray) -> FloatArray:
        return _margin(radius[row], pos * spread[row], dim[row], p_a[row], p_b[row])

    live = verified[row]
    margin = np.full(row.size, -1.0)
    margin[live] = evaluate(row[live], pos[live])
    same_row = row[1:] == row[:-1]
    left = np.flatnonzero(same_row & live[:-1])
    row, lo_pos, hi_pos = row[left], pos[left], pos[left + 1]
    lo_m, hi_m = margin[left], margin[left + 1]
    spent = np.zeros(rows, dtype=np.int64)
    for _ in range(_MAX_DEPTH):
        verified[row[(lo_m <= 0.0) | (hi_m <= 0.0)]] = False
        bound = np.minimum(lo_m, hi_m) - 2.0 * scale_total_variation(
            0.5 * (hi_pos - lo_pos) * spread[row], dim[row]
        )
        pending = (bound <= 0.0) & verified[row]
        spent += np.bincount(row[pending], minlength=rows)
        verified[spent > _ROW_BUDGET] = False
        pending &= verified[row]
        if not pending.any():
            return verified
        row, lo_pos, hi_pos = row[pending], lo_pos[pending], hi_pos[pending]
        lo_m, hi_m = lo_m[pending], hi_m[pending]
        mid = 0.5 * (lo_pos + hi_pos)
        mid_m = evaluate(row, mid)
        row = np.concatenate([row, row])
        lo_pos, hi_pos = np.concatenate([lo_pos, mid]), np.concatenate([mid, hi_pos])
        lo_m, hi_m = np.concatenate([lo_m, mid_m]), np.concatenate([mid_m, hi_m])
    verified[row] = False
    return verified


def runner_up_unit_radius(
    rho: FloatArray, dim: FloatArray, p_a: FloatArray, p_b: FloatArray, floor: FloatArray
) -> FloatArray:
    """Certified radius for ``sigma0 = 1``, semi-elasticity ``rho`` and separate ``p_a``, ``p_b``.

    ``floor`` is a radius known to be certified (the ``p_a``-only one); the result is at least
    ``floor`` and at most Cohen et al.'s two-sided radius. Expects ``rho > 0`` and
    ``0 < p_b < p_a < 1``.
    """
    cohen = 0.5 * (special.ndtri(p_a) - special.ndtri(p_b))
    extreme = _extreme_radius(rho, dim, p_a, p_b, cohen)
    result = floor.copy()
    pending = np.flatnonzero(extreme > floor)
    for shrink in _SHRINKS:
        if pending.size == 0:
            break
        candidate = extreme[pending] * (1.0 - shrink)
        ok = _verify(candidate, rho[pending], dim[pending], p_a[pending], p_b[pending])
        result[pending[ok]] = np.maximum(candidate[ok], result[pending[ok]])
        pending = pending[~ok]
    return result
