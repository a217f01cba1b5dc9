"""Gaussian probabilities of balls and half-spaces in one numerically stable form.

Every probability in IDRS certification is the probability that a standard normal vector
``Z ~ N(0, I_N)`` falls into a ball or a half-space (paper Theorems 2-3). All of them are
tails of the quadric statistic

    S = theta1 * Z_1 - theta2 * ||Z||^2,        theta1, theta2 >= 0,

whose level sets ``{S >= tau}`` are balls with centre ``theta1 / (2 theta2) e_1`` (a
half-space when ``theta2 = 0``). The non-central chi-square is the special case
``theta1 = 2 sqrt(nc)``, ``theta2 = 1``, ``tau = nc - x``:
``P(chi2_N(nc) <= x) = P(S >= tau)``.

Writing the ball in this form, instead of through ``chi2_N(nc)`` with ``nc ~ 1/(sigma0 -
sigma1)^2``, keeps every quantity of order one as the ball flattens into the half-space of
Cohen et al., so no hand-tuned cut-off near ``sigma1 = sigma0`` is needed (paper App. D).

The tails are one-dimensional integrals over ``W = ||Z_2..N||^2 ~ chi2_{N-1}``: given ``W = w``
the event is an interval ``z_- <= Z_1 <= z_+`` with closed-form Gaussian probability, so

    P(S >= tau) = int_0^{w_max} f_W(w) P(z_-(w) <= Z_1 <= z_+(w)) dw,
    P(S <  tau) = P(W > w_max) + int_0^{w_max} f_W(w) [Phi(z_-) + Phi(-z_+)] dw,

with ``w_max = (theta1^2 / (4 theta2) - tau) / theta2``. Each tail is a sum of positive terms
(never ``1 - p``), so tiny probabilities keep full relative accuracy. The integral is
restricted to the part of ``[0, w_max]`` where ``chi2_{N-1}`` holds all but ``1e-30`` of its
mass (Chernoff bounds; either tail moves by at most 1e-30 absolutely, far inside the
relative slack that certification applies to probabilities of at least 1e-15) and
evaluated over ``v = sqrt(w)`` with tanh-sinh quadrature on two panels split at the chi mode.
Tanh-sinh is exponentially accurate for analytic integrands with endpoint singularities (the
square-root edge of the ball at ``w_max``); nested rules give an error estimate, and rows that
fail it are refined (a narrow integrand occurs e.g. for ``N ~ 1e5`` with moderate ``nc``).
"""

from __future__ import annotations

from functools import cache

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

FloatArray = NDArray[np.float64]

_LOG_TAIL_MASS = np.log(1e-30)  # mass of chi2_{N-1} left outside the integration range
_TANH_SINH_HALF_WIDTH = 3.25
# Tanh-sinh steps 2^-4 .. 2^-9 on each panel: rows whose integral still moves by more than
# ``rtol`` between the nested rules 2^-(L-1) and 2^-L are recomputed with the next finer rule.
# The change is an estimate, not a bound: for tails near 1 at N ~ 1e5 a change below 1e-6 left
# errors up to 4e-7, while tails in [1e-15, 1/2] (all that certification evaluates) stayed
# within 1e-10 of the finest rule from N = 3 to 150528. The default is strict.
_BASE_LEVEL = 4
_FINEST_LEVEL = 9
STRICT_RTOL = 1e-11
# Curvature below this fraction of the linear coefficient is the half-space (the difference
# is far below any tolerance here, and 1 / theta2^2 would overflow).
_FLAT_CURVATURE = 1e-100
_SHORT_INTERVAL = 1e-5
_INV_SQRT2 = 1.0 / np.sqrt(2.0)
_SQRT_2PI = np.sqrt(2.0 * np.pi)


@cache
def _tanh_sinh_rule(level: int) -> tuple[FloatArray, FloatArray, FloatArray, NDArray[np.bool_]]:
    """Tanh-sinh nodes with step ``2^-level`` on [-1, 1]: (1 + x, 1 - x, weight, coarse).

    ``1 + x`` and ``1 - x`` are each exact near the ends; ``coarse`` marks the nodes of the
    rule with twice the step, whose weights are twice these (the rules are nested).
    """
    step = 2.0**-level
    count = round(_TANH_SINH_HALF_WIDTH / step)
    offsets = np.arange(-count, count + 1)
    t = offsets * step
    s = 0.5 * np.pi * np.sinh(t)
    one_plus = 2.0 * special.expit(2.0 * s)
    one_minus = 2.0 * special.expit(-2.0 * s)
    weight = step * 0.5 * np.pi * np.cosh(t) / np.cosh(s) ** 2
    return one_plus, one_minus, weight, offsets % 2 == 0


def _chi2_mass_range(k: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Bounds ``[lo, hi]`` outside which ``chi2_k`` has at most ``1e-30`` mass on each side.

    Chernoff: ``P(W <= zk) <= (z e^{1-z})^{k/2}`` for ``z < 1`` and likewise ``P(W >= zk)``
    for ``z > 1``; the two roots of ``log z + 1 - z = 2 log(1e-30) / k`` are Lambert-W values.
    """
    arg = -np.exp(-1.0 + 2.0 * _LOG_TAIL_MASS / np.maximum(k, 1.0))
    z_lo = -special.lambertw(arg, 0).real
    z_hi = -special.lambertw(arg, -1).real
    return z_lo * k, z_hi * k


def _interval_tail(
    z_lo: FloatArray, z_hi: FloatArray, upper: bool, centre: FloatArray, half: FloatArray
) -> FloatArray:
    """``P(z_lo <= Z <= z_hi)`` (``upper``) or its complement, for ``z_hi >= 0``.

    The complement ``Phi(z_lo) + Phi(-z_hi)`` is a sum of positive terms. The interval
    probability is a difference of two upper tails on the side away from 0, so that it keeps
    its relative accuracy in the far tails; for a short interval ``centre +- half`` (``half``
    below 1e-5) it is ``2 half phi(centre) sinh(centre half) / (centre half)`` up to a
    relative ``half^2 / 6``, free of the cancellation of the difference.
    """
    if not upper:
        return 0.5 * (special.erfc(-z_lo * _INV_SQRT2) + special.erfc(z_hi * _INV_SQRT2))
    right_side = z_lo >= 0.0
    near = np.where(right_side, z_lo, -z_hi)
    far = np.where(right_side, z_hi, -z_lo)
    tail = np.maximum(0.5 * (special.erfc(near * _INV_SQRT2) - special.erfc(far * _INV_SQRT2)), 0.0)
    short = half < _SHORT_INTERVAL
    if short.any():
        c, h = np.broadcast_to(centre, short.shape)[short], half[short]
        product = c * h
        shape = np.where(product > 1e-8, np.sinh(product) / np.maximum(product, 1e-300), 1.0)
        tail[short] = 2.0 * h * np.exp(-0.5 * c * c) / _SQRT_2PI * shape
    return tail


def quadric_tail(
    tau: ArrayLike,
    theta1: ArrayLike,
    theta2: ArrayLike,
    dim: ArrayLike,
    upper: bool,
    with_density: bool = False,
    rtol: float = STRICT_RTOL,
    edge: ArrayLike | None = None,
) -> tuple[FloatArray, FloatArray | None]:
    """``P(S >= tau)`` (``upper``) or ``P(S < tau)``, and optionally the density of S at tau.

    ``S = theta1 Z_1 - theta2 ||Z||^2`` with ``Z ~ N(0, I_dim)``. Arguments broadcast;
    ``theta1, theta2 >= 0`` not both zero, ``dim >= 1`` whole. ``rtol`` is the refinement
    tolerance of the quadrature; with the default the relative error is about 1e-11 (checked
    against mpmath in the test suite). ``edge``, the squared radius of the ball
    ``{S >= tau}`` (``(theta1^2 / (4 theta2) - tau) / theta2``), may be passed when it is
    known more accurately than ``tau`` resolves it: for a small ball far from the origin.
    """
    tau, theta1, theta2, dim, edge = np.broadcast_arrays(
        *(
            np.asarray(v, dtype=np.float64)
            for v in (tau, theta1, theta2, dim, np.nan if edge is None else edge)
        )
    )
    shape = tau.shape
    tau, theta1, theta2, dim, edge = (v.ravel() for v in (tau, theta1, theta2, dim, edge))
    tail = np.empty_like(tau)
    density = np.empty_like(tau) if with_density else None
    flat = theta2 <= _FLAT_CURVATURE * theta1  # half-space; else N = 1 (W = 0) or an integral
    single = ~flat & (dim == 1.0)
    curved = ~flat & ~single
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # flat rows unused
        w_max = np.where(np.isnan(edge), _edge(tau, theta1, theta2), edge)
    for mask, tails in ((flat, _flat_tail), (single, _single_tail), (curved, _integrated_tail)):
        if mask.any():
            t, d = tails(
                tau[mask],
                theta1[mask],
                theta2[mask],
                dim[mask],
                w_max[mask],
                upper,
                with_density,
                rtol,
            )
            tail[mask] = t
            if density is not None:
                density[mask] = d
    return tail.reshape(shape), (density.reshape(shape) if density is not None else None)


def _flat_tail(
    tau: FloatArray,
    theta1: FloatArray,
    _theta2: FloatArray,
    _dim: FloatArray,
    _w_max: FloatArray,
    upper: bool,
    with_density: bool,
    _rtol: float,
) -> tuple[FloatArray, FloatArray | None]:
    z = tau / theta1
    tail = special.ndtr(-z if upper else z)
    density = np.exp(-0.5 * z * z) / (_SQRT_2PI * theta1) if with_density else None
    return tail, density


def _single_tail(
    tau: FloatArray,
    theta1: FloatArray,
    theta2: FloatArray,
    _dim: FloatArray,
    w_max: FloatArray,
    upper: bool,
    with_density: bool,
    _rtol: float,
) -> tuple[FloatArray, FloatArray | None]:
    tail, density = _slice_tail(
        tau,
        theta1,
        theta2,
        np.zeros_like(tau),
        np.sqrt(np.maximum(w_max, 0.0)),
        upper,
        with_density,
    )
    empty = w_max < 0.0  # the Z_1 interval is empty
    tail = np.where(empty, 0.0 if upper else 1.0, tail)
    density = np.where(empty, 0.0, density) if density is not None else None
    return tail, density


def _edge(tau: FloatArray, theta1: FloatArray, theta2: FloatArray) -> FloatArray:
    """``w_max``: the largest ``||Z_2..N||^2`` for which ``{S >= tau}`` has a ``Z_1`` slice."""
    return (0.25 * theta1 * theta1 / theta2 - tau) / theta2


def _slice_tail(
    tau: FloatArray,
    theta1: FloatArray,
    theta2: FloatArray,
    w: FloatArray,
    root_gap: FloatArray,
    upper: bool,
    with_density: bool,
) -> tuple[FloatArray, FloatArray | None]:
    """Tail of S given ``W = w``, and its ``|d/dtau|``.

    Given ``W = w`` the event ``S >= tau`` is ``z_- <= Z_1 <= z_+``, the roots of
    ``theta2 z^2 - theta1 z + tau + theta2 w``, whose discriminant is
    ``4 theta2^2 (w_max - w)``; ``root_gap = sqrt(w_max - w)`` is passed in so that callers
    compute it without cancellation near the edge. ``d z_+- / d tau = -+1 / sqrt(disc)``.
    """
    sqrt_disc = 2.0 * theta2 * root_gap
    centre = theta1 / (2.0 * theta2)
    z_hi = centre + root_gap
    # The lower root: centre - root_gap when that is well conditioned (a small slice far
    # out), else the stable product form (near the half-space, centre ~ root_gap ~ large).
    z_lo = np.where(
        root_gap < 0.5 * centre,
        centre - root_gap,
        2.0 * (tau + theta2 * w) / (theta1 + sqrt_disc),
    )
    tail = _interval_tail(z_lo, z_hi, upper, centre, root_gap)
    if not with_density:
        return tail, None
    with np.errstate(divide="ignore", invalid="ignore"):
        edge = (np.exp(-0.5 * z_lo * z_lo) + np.exp(-0.5 * z_hi * z_hi)) / (_SQRT_2PI * sqrt_disc)
    return tail, np.where(sqrt_disc > 0.0, edge, 0.0)


def _integrated_tail(
    tau: FloatArray,
    theta1: FloatArray,
    theta2: FloatArray,
    dim: FloatArray,
    w_max: FloatArray,
    upper: bool,
    with_density: bool,
    rtol: float,
) -> tuple[FloatArray, FloatArray | None]:
    """Tails for ``theta2 > 0`` and ``N >= 2``: integrate over ``V = sqrt(W) ~ chi_k``.

    The chi variable (rather than ``W``) keeps the integrand smooth at 0 for every ``k >= 1``.
    """
    k = dim - 1.0
    lo, hi = _chi2_mass_range(k)
    right = np.minimum(hi, w_max)
    left = np.where(lo < right, lo, 0.0)
    v_left = np.sqrt(left)
    v_right = np.sqrt(np.maximum(right, 0.0))
    v_max = np.sqrt(np.maximum(w_max, 0.0))

    # Two panels split at the chi mode: tanh-sinh nodes crowd at panel ends, so the bulk of
    # chi_k (width ~0.7 against a range of +-12 widths) is resolved by few nodes.
    v_split = np.clip(np.sqrt(np.maximum(k - 1.0, 0.0)), v_left, v_right)
    panels = ((v_left, v_split), (v_split, v_right))
    log_norm = (1.0 - 0.5 * k) * np.log(2.0) - special.gammaln(0.5 * k)

    def nested_sums(level: int, rows: NDArray[np.intp]) -> tuple[FloatArray, ...]:
        one_plus, one_minus, weight, coarse = _tanh_sinh_rule(level)
        fine = np.zeros(rows.size)
        rough = np.zeros(rows.size)
        dens = np.zeros(rows.size)
        for start, stop in panels:
            a, b = start[rows, None], stop[rows, None]
            half = 0.5 * (b - a)
            v = a + half * one_plus
            gap = (v_max[rows, None] - b) + half * one_minus  # v_max - v, exact at the edge
            root_gap = np.sqrt(np.maximum(gap, 0.0) * (v_max[rows, None] + v))
            with np.errstate(divide="ignore", invalid="ignore"):  # empty panels, masked below
                tail, edge = _slice_tail(
                    tau[rows, None],
                    theta1[rows, None],
                    theta2[rows, None],
                    v * v,
                    root_gap,
                    upper,
                    with_density,
                )
            chi = np.exp((k[rows, None] - 1.0) * np.log(v) - 0.5 * v * v + log_norm[rows, None])
            # An empty panel (split at an end) has half = 0: its nodes all sit on the edge.
            weighted = np.where(half > 0.0, chi * (half * weight), 0.0)
            terms = np.where(weighted > 0.0, weighted * tail, 0.0)
            fine += terms.sum(axis=1)
            rough += 2.0 * terms[:, coarse].sum(axis=1)
            if with_density:
                dens += np.where(weighted > 0.0, weighted * edge, 0.0).sum(axis=1)
        return fine, rough, dens

    rows = np.arange(tau.size)
    integral, rough, density = nested_sums(_BASE_LEVEL, rows)
    for level in range(_BASE_LEVEL + 1, _FINEST_LEVEL + 1):
        rows = rows[np.abs(integral[rows] - rough) > rtol * np.abs(integral[rows])]
        if rows.size == 0:
            break
        integral[rows], rough, density[rows] = nested_sums(level, rows)

    has_mass = w_max > 0.0
    integral = np.where(has_mass, integral, 0.0)
    if not upper:  # W beyond the ball's edge: S < tau for every Z_1
        integral += np.where(has_mass, special.chdtrc(k, np.maximum(right, 0.0)), 1.0)
    return integral, (np.where(has_mass, density, 0.0) if with_density else None)


def quadric_quantile(
    p: FloatArray,
    theta1: FloatArray,
    theta2: FloatArray,
    dim: FloatArray,
    upper: bool = True,
    origin: FloatArray | None = None,
    rtol: float = STRICT_RTOL,
    max_iter: int = 60,
) -> FloatArray:
    """Threshold ``tau`` with ``P(S >= tau) = p`` (``upper``) or ``P(S < tau) = p``.

    Converged to about 1e-11 relative to ``sd(S) + |tau|``, or, when ``origin`` is given, to
    ``|tau - origin|`` (so that ``origin - tau`` keeps its relative accuracy even when tiny).

    Newton's method on ``log P`` (the tails of S are close to log-concave, so it converges in a
    few steps even at ``p = 1e-12``), started from the Cornish-Fisher approximation and kept
    inside a bracket that is shrunk at every step, with bisection where Newton leaves it.
    """
    p, theta1, theta2, dim, origin = (
        np.asarray(a, dtype=np.float64).ravel()
        for a in np.broadcast_arrays(p, theta1, theta2, dim, np.nan if origin is None else origin)
    )
    shape_size = p.size
    log_p = np.log(p)
    # Moments of S: mean, variance and third cumulant (Z_1 term and the chi-square term).
    mean = -theta2 * dim
    sd = np.sqrt(theta1 * theta1 + 2.0 * dim * theta2 * theta2)
    skew = (-6.0 * theta1 * theta1 * theta2 - 8.0 * dim * theta2**3) / sd**3
    z = special.ndtri(p) * (-1.0 if upper else 1.0)  # standard normal quantile of the target
    tau = mean + sd * (z + (z * z - 1.0) * skew / 6.0)
    curved = theta2 > _FLAT_CURVATURE * theta1
    sup = np.where(curved, 0.25 * theta1 * theta1 / np.where(curved, theta2, 1.0), np.inf)
    lo = np.full(shape_size, -np.inf)
    hi = sup.copy()
    tau = np.minimum(tau, sup - 1e-3 * sd)
    active = np.arange(shape_size)
    for _ in range(max_iter):
        if active.size == 0:
            break
        t = tau[active]
        tail, dens = quadric_tail(t, theta1[active], theta2[active], dim[active], upper, True, rtol)
        with np.errstate(divide="ignore", invalid="ignore"):  # tail 0: bisect below
            excess = np.log(tail) - log_p[active]  # > 0: tail too large
            slope = dens / tail * (-1.0 if upper else 1.0)  # d log(tail) / d tau
            step = -excess / slope
        # Upper tail decreases in tau, lower tail increases.
        too_small_tau = excess > 0.0 if upper else excess < 0.0
        lo[active] = np.where(too_small_tau, np.maximum(lo[active], t), lo[active])
        hi[active] = np.where(too_small_tau, hi[active], np.minimum(hi[active], t))
        proposal = t + step
        l_a, h_a, sd_a = lo[active], hi[active], sd[active]
        origin_a = origin[active]
        scale = np.where(np.isnan(origin_a), sd_a + np.abs(t), np.abs(t - origin_a))
        # Near the top of S's range the tail changes on the scale of the distance to it.
        scale = np.minimum(scale, sup[active] - t)
        converged = np.abs(step) <= 1e-11 * scale  # includes excess == 0 (t is the root)
        outside = ~np.isfinite(proposal) | (proposal <= l_a) | (proposal >= h_a)
        bisect = np.where(
            np.isfinite(l_a) & np.isfinite(h_a),
            0.5 * (l_a + h_a),
            np.where(np.isfinite(l_a), l_a + 4.0 * sd_a, h_a - 4.0 * sd_a),
        )
        # A converged step that leaves the bracket is rounding noise: keep t.
        tau[active] = np.where(outside, np.where(converged, t, bisect), proposal)
        done = converged | (h_a - l_a <= 1e-14 * scale)
        active = active[~done]
    return tau


def refine_ball_edge(
    p: FloatArray,
    theta1: FloatArray,
    theta2: FloatArray,
    dim: FloatArray,
    tau: FloatArray,
    max_iter: int = 30,
) -> tuple[FloatArray, FloatArray]:
    """Refine an upper-tail quantile ``tau`` as the ball's squared radius ``w``.

    When ``{S >= tau}`` is a small ball far from the origin, ``tau`` sits a few ulp below the
    top of S's range and cannot resolve the ball; its squared radius ``w`` can. Newton on
    ``log P`` in ``w`` (``dP/dw = theta2 * density``), moving ``tau`` along. Returns
    ``(tau, w)``; rows with ``theta2 = 0`` (half-spaces) are returned unchanged, ``w = nan``.
    """
    p, theta1, theta2, dim, tau = (
        np.asarray(a, dtype=np.float64).ravel().copy()
        for a in np.broadcast_arrays(p, theta1, theta2, dim, tau)
    )
    curved = theta2 > _FLAT_CURVATURE * theta1
    w = np.full_like(tau, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        w[curved] = _edge(tau[curved], theta1[curved], theta2[curved])
    active = np.flatnonzero(curved & (w > 0.0))
    for _ in range(max_iter):
        if active.size == 0:
            break
        tail, dens = quadric_tail(
            tau[active],
            theta1[active],
            theta2[active],
            dim[active],
            True,
            True,
            edge=w[active],
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            step = -(np.log(tail) - np.log(p[active])) * tail / (theta2[active] * dens)
        step = np.where(np.isfinite(step), step, 0.0)
        new = np.where(w[active] + step > 0.0, w[active] + step, 0.1 * w[active])
        tau[active] -= theta2[active] * (new - w[active])
        done = np.abs(new - w[active]) <= 1e-13 * new
        w[active] = new
        active = active[~done]
    return tau, w
