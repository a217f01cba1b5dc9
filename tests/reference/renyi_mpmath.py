"""Independent high-precision reference for the Renyi-divergence radius (Li et al. 2019,
generalised to two smoothing variances), IDRS paper Appendix B.1, Lemmas 10-13, Theorem 14.

Written from the paper (``/work/shared/paper/idrs-paper.md``) only, with mpmath; it shares no
code or algebraic simplification with the fast implementation it checks.

Derivation (``x0`` is smoothed with ``sigma0``, every ``x1`` with ``sigma1``, ``N`` = dim):

* Lemma 10 (Van Erven & Harremoes 2014), with ``sigma_alpha^2 = (1 - alpha) sigma1^2 +
  alpha sigma0^2`` (must be positive)::

      D_alpha(N(mu1, s1^2) || N(mu0, s0^2))
          = alpha (mu1 - mu0)^2 / (2 sigma_alpha^2)
            + 1/(1 - alpha) log(sigma_alpha / (s1^(1 - alpha) s0^alpha)).

* Lemma 12 (isotropic normals factorise; Lemma 11 adds the coordinates)::

      D_alpha(N(x1, s1^2 I) || N(x0, s0^2 I))
          = alpha ||x0 - x1||^2 / (2 s1^2 + 2 alpha (s0^2 - s1^2))
            + N log(sigma_alpha / s1) / (1 - alpha) - N alpha/(1 - alpha) log(s0 / s1).

  It is affine in ``d^2 = ||x0 - x1||^2``: ``D_alpha = slope(alpha) d^2 + D_alpha(0)`` with
  ``slope = alpha / (2 s1^2 + 2 alpha (s0^2 - s1^2)) = alpha / (2 sigma_alpha^2) > 0``.

* Lemma 13 (Li et al. 2019, stated for ``alpha > 1``): with the power means
  ``M_1(a, b) = (a + b)/2`` and
  ``M_{1-alpha}(a, b) = ((a^(1-alpha) + b^(1-alpha))/2)^(1/(1-alpha))``, the smoothed
  classifier keeps its top class if ``D_alpha <= budget(alpha)``,
  ``budget(alpha) = -log(1 - 2 M_1(p_A, p_B) + 2 M_{1-alpha}(p_A, p_B))``.  By post-processing
  ``D_alpha`` of the output distributions is at most that of the Gaussians.

* Theorem 14 (the last displayed inequality of its proof has its direction reversed by a typo;
  this is the corrected statement): ``x1`` is certified if for *some* admissible ``alpha``
  ``slope(alpha) d^2 + D_alpha(0) <= budget(alpha)``, i.e.::

      d^2 <= (2 sigma_alpha^2 / alpha) * (budget(alpha) - D_alpha(0))   =: F(alpha),

      R^2 = max(0, sup_{alpha in S} F(alpha)),   radius R = sqrt(R^2),

  ``S = (1, inf)`` if ``sigma1 <= sigma0`` and ``S = (1, sigma1^2/(sigma1^2 - sigma0^2))``
  if ``sigma1 > sigma0`` (``sigma_alpha^2 > 0``).  Only ``alpha > 1`` is used (Li et al.'s
  range; the paper's ``S`` also lists ``alpha < 1``, which Lemma 13 does not cover).
  ``D_alpha(0)`` is evaluated literally from Lemma 12 (no closed-form simplification).
  For ``sigma1 = sigma0`` this is Li et al.'s radius (``D_alpha(0) = 0``, independent of N).

Behaviour of ``F`` on ``S`` (used by the search, and checked numerically by the tests):

* ``alpha -> 1+``: ``F`` extends continuously (``D_alpha(0) ->`` the KL divergence, a 0/0 form
  that is evaluated literally at ``alpha - 1 ~ 10^-(digits+5)`` with the precision raised by
  the digits lost).  For ``p_A`` near 1/2 or ``sigma1 > sigma0`` the supremum can be this
  limit.
* ``alpha -> sigma1^2/(sigma1^2 - sigma0^2)`` (``sigma1 > sigma0``): ``D_alpha(0) -> +inf``
  and ``F -> 0-``, so the supremum is never at that end.
* ``alpha -> inf`` (``sigma1 < sigma0``):
  ``F -> 2 (s0^2 - s1^2)(-log(1 - p_A + p_B) - N log(s0/s1))``, approached from above
  (``D_inf - D_alpha ~ N log(alpha) / (2 alpha)`` dominates), so the supremum is attained at
  a finite ``alpha``; for ``sigma1 = sigma0`` ``F -> 0``.
* ``F`` need not be unimodal (e.g. ``sigma1 = 0.8, N = 2, p_A = 0.6``: a local maximum at
  ``alpha -> 1`` and one at ``alpha ~ 12``, both negative); on the tested grid it is unimodal
  wherever the radius is positive.

Search: ``F`` is evaluated on a grid in ``t`` with ``alpha = 1 + e^t`` (``S`` unbounded) or
``alpha = 1 + (alpha_max - 1) / (1 + e^-t)`` (bounded), ``t`` from ``-(digits + 5) ln 10`` (the
``alpha -> 1`` limit to ``10^-(digits+5)``) up to 40, step 1/4 on ``|t| <= 12`` (where ``F``
varies), 2 to 8 outside (where it is flat); the upper end is extended while the largest value
sits there.  Grid values carry 25 digits beyond the cancellation near ``alpha = 1`` (enough to
order them).  Every grid local maximum is refined (successive parabolic interpolation
safeguarded by golden-section steps, in ``t``, at ``digits + 25`` (+ cancellation) digits) to
about ``10^-(digits/2 + 5)`` in ``t`` and the best refined value is taken (no unimodality is
assumed; :func:`renyi_sup` reports the number of grid local maxima).  Results at 30 and 60
digits agree to ~1e-40 relative.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import mpmath
from mpmath import mp, mpf

Real = int | float | str | mpf


def _to_mpf(value: Real) -> mpf:
    """Convert a number to mpf exactly (floats are binary and convert without rounding)."""
    return value if isinstance(value, mpf) else mpf(value)


def _working_dps(digits: int) -> int:
    """Working precision: absorbs the 0/0 cancellation of ``D_alpha(0)`` as ``alpha -> 1``."""
    return 2 * digits + 30


# ---------------------------------------------------------------------------------------------
# Lemmas 10, 12 and 13, literally
# ---------------------------------------------------------------------------------------------


def _sigma_alpha_sq(s0: mpf, s1: mpf, alpha: mpf) -> mpf:
    """``sigma_alpha^2 = (1 - alpha) sigma1^2 + alpha sigma0^2`` (Lemma 10)."""
    return (1 - alpha) * s1**2 + alpha * s0**2


def _d_lemma10(mu1: mpf, mu0: mpf, s1: mpf, s0: mpf, alpha: mpf) -> mpf:
    """Lemma 10: ``D_alpha(N(mu1, s1^2) || N(mu0, s0^2))``."""
    s_alpha = mpmath.sqrt(_sigma_alpha_sq(s0, s1, alpha))
    return alpha * (mu1 - mu0) ** 2 / (2 * s_alpha**2) + mpmath.log(
        s_alpha / (s1 ** (1 - alpha) * s0**alpha)
    ) / (1 - alpha)


def _d_lemma12(dist_sq: mpf, s0: mpf, s1: mpf, dim: mpf, alpha: mpf) -> mpf:
    """Lemma 12: ``D_alpha(N(x1, s1^2 I) || N(x0, s0^2 I))`` with ``||x0 - x1||^2 = dist_sq``."""
    s_alpha = mpmath.sqrt(_sigma_alpha_sq(s0, s1, alpha))
    return (
        alpha * dist_sq / (2 * s1**2 + 2 * alpha * (s0**2 - s1**2))
        + dim * mpmath.log(s_alpha / s1) / (1 - alpha)
        - dim * alpha / (1 - alpha) * mpmath.log(s0 / s1)
    )


def _power_mean(a: mpf, b: mpf, order: mpf) -> mpf:
    """``M_order(a, b) = ((a^order + b^order)/2)^(1/order)``; ``order < 0`` and ``b = 0`` give 0."""
    if order < 0 and (a == 0 or b == 0):
        return mpf(0)
    return ((a**order + b**order) / 2) ** (1 / order)


def _budget(p_a: mpf, p_b: mpf, alpha: mpf) -> mpf:
    """Lemma 13: ``-log(1 - 2 M_1(p_A, p_B) + 2 M_{1-alpha}(p_A, p_B))``."""
    m_1 = (p_a + p_b) / 2
    m_1_minus_alpha = _power_mean(p_a, p_b, 1 - alpha)
    return -mpmath.log(1 - 2 * m_1 + 2 * m_1_minus_alpha)


def _objective(s0: mpf, s1: mpf, dim: mpf, p_a: mpf, p_b: mpf, alpha: mpf) -> mpf:
    """``F(alpha)``: the largest ``d^2`` with ``D_alpha(d^2) <= budget(alpha)`` (Theorem 14).

    ``D_alpha(d^2) = slope d^2 + D_alpha(0)`` with the slope of Lemma 12's first term
    ``alpha / (2 s1^2 + 2 alpha (s0^2 - s1^2))``; ``D_alpha(0)`` is Lemma 12 at ``d^2 = 0``.
    """
    d_zero = _d_lemma12(mpf(0), s0, s1, dim, alpha)
    slope = alpha / (2 * s1**2 + 2 * alpha * (s0**2 - s1**2))
    return (_budget(p_a, p_b, alpha) - d_zero) / slope


# ---------------------------------------------------------------------------------------------
# Public helpers (also used by the tests)
# ---------------------------------------------------------------------------------------------


def renyi_divergence_normals(
    dist_sq: Real, sigma0: Real, sigma1: Real, dim: int, alpha: Real, digits: int = 40
) -> mpf:
    """Lemma 12: ``D_alpha(N(x1, sigma1^2 I) || N(x0, sigma0^2 I))``, ``||x0-x1||^2 = dist_sq``."""
    with mp.workdps(_working_dps(digits)):
        return _d_lemma12(
            _to_mpf(dist_sq), _to_mpf(sigma0), _to_mpf(sigma1), _to_mpf(dim), _to_mpf(alpha)
        )


def renyi_divergence_normals_1d(
    mu1: Real, mu0: Real, sigma1: Real, sigma0: Real, alpha: Real, digits: int = 40
) -> mpf:
    """Lemma 10: ``D_alpha(N(mu1, sigma1^2) || N(mu0, sigma0^2))``."""
    with mp.workdps(_working_dps(digits)):
        return _d_lemma10(
            _to_mpf(mu1), _to_mpf(mu0), _to_mpf(sigma1), _to_mpf(sigma0), _to_mpf(alpha)
        )


def li_budget(p_a: Real, p_b: Real, alpha: Real, digits: int = 40) -> mpf:
    """Lemma 13's bound ``-log(1 - 2 M_1(p_A, p_B) + 2 M_{1-alpha}(p_A, p_B))``."""
    with mp.workdps(_working_dps(digits)):
        return _budget(_to_mpf(p_a), _to_mpf(p_b), _to_mpf(alpha))


def alpha_max(sigma0: Real, sigma1: Real) -> mpf:
    """Upper end of the admissible orders: ``sigma1^2/(sigma1^2 - sigma0^2)`` or ``inf``."""
    s0, s1 = _to_mpf(sigma0), _to_mpf(sigma1)
    if s1 <= s0:
        return mpf("inf")
    return s1**2 / (s1**2 - s0**2)


def radius_sq_objective(
    alpha: Real,
    sigma0: Real,
    sigma1: Real,
    dim: int,
    p_a: Real,
    p_b: Real | None = None,
    digits: int = 40,
) -> mpf:
    """``F(alpha) = (2 sigma_alpha^2/alpha)(budget(alpha) - D_alpha(0))`` (Theorem 14)."""
    with mp.workdps(_working_dps(digits)):
        s0, s1, dimm, pa, pb = _inputs(sigma0, sigma1, dim, p_a, p_b)
        a = _to_mpf(alpha)
        if not 1 < a < alpha_max(s0, s1):
            raise ValueError("alpha outside (1, sigma1^2/(sigma1^2 - sigma0^2))")
        return _objective(s0, s1, dimm, pa, pb, a)


def _inputs(
    sigma0: Real, sigma1: Real, dim: int, p_a: Real, p_b: Real | None
) -> tuple[mpf, mpf, mpf, mpf, mpf]:
    s0, s1 = _to_mpf(sigma0), _to_mpf(sigma1)
    if not (s0 > 0 and s1 > 0):
        raise ValueError("sigmas must be positive")
    if int(dim) != dim or dim < 1:
        raise ValueError("dim must be a positive integer")
    pa = _to_mpf(p_a)
    pb = 1 - pa if p_b is None else _to_mpf(p_b)
    if not (0 <= pa <= 1 and 0 <= pb and pa + pb <= 1):
        raise ValueError("need 0 <= p_b, 0 <= p_a and p_a + p_b <= 1")
    return s0, s1, _to_mpf(int(dim)), pa, pb


class _Search:
    """The parametrisation ``t -> alpha`` of the admissible range and the objective in ``t``."""

    def __init__(self, s0: mpf, s1: mpf, dim: mpf, pa: mpf, pb: mpf, digits: int) -> None:
        self.args = (s0, s1, dim, pa, pb)
        self.digits = digits
        self.amax = alpha_max(s0, s1)
        self.bounded = mpmath.isfinite(self.amax)

    def alpha(self, t: mpf) -> mpf:
        if self.bounded:
            return 1 + (self.amax - 1) / (1 + mpmath.exp(-t))
        return 1 + mpmath.exp(t)

    def value(self, t: mpf, digits: int | None = None) -> mpf:
        """``F(alpha(t))`` with ``digits + 25`` digits (default: the requested accuracy) plus
        those lost to the 0/0 of ``D_alpha(0)`` when ``alpha - 1 ~ e^t`` is tiny."""
        extra = max(0, math.ceil(-float(t) / math.log(10)))
        with mp.workdps((self.digits if digits is None else digits) + 25 + extra):
            value = _objective(*self.args, self.alpha(t))
        return +value


def _grid(t_lo: float, t_hi: float) -> list[float]:
    """Grid in ``t``: step 8 below -20, 2 on [-20, -12], 1/4 on [-12, 12], 2 above 12."""
    points: list[float] = []
    t = t_lo
    while t < t_hi:
        points.append(t)
        t += 8.0 if t < -20 else 2.0 if t < -12 else 0.25 if t < 12 else 2.0
    points.append(t_hi)
    return points


def _refine_max(f: Callable[[mpf], mpf], a: mpf, b: mpf, c: mpf, tol: mpf) -> tuple[mpf, mpf]:
    """Maximise ``f`` in ``[a, c]`` given ``a < b < c`` with ``f(b) >= f(a), f(c)``.

    Successive parabolic interpolation through the bracketing triple (Brent-style): the vertex
    of the parabola is tried when it lies well inside the bracket and the bracket has been
    shrinking, otherwise a golden-section step into the larger part is taken.  Stops when the
    bracket is narrower than ``tol`` or a parabolic step moves by less than ``tol / 2`` (the
    error of the returned ``t`` is then about ``tol``; the value is flat to second order).
    Returns ``(t, f(t))``.
    """
    golden = (3 - mpmath.sqrt(5)) / 2
    fa, fb, fc = f(a), f(b), f(c)
    if not (fb >= fa and fb >= fc):  # the grid triple at full precision (plateau noise)
        b, fb = (a, fa) if fa >= fc else (c, fc)
        return b, fb
    widths = [c - a] * 3
    for _ in range(1000):
        if c - a <= tol:
            break
        x = None
        den = (b - a) * (fb - fc) - (b - c) * (fb - fa)
        shrinking = widths[-1] <= widths[-3] / 2 or len(widths) == 3
        if shrinking and den != 0:
            x = b - ((b - a) ** 2 * (fb - fc) - (b - c) ** 2 * (fb - fa)) / (2 * den)
            guard = (c - a) * mpf("1e-4")
            if not a + guard < x < c - guard:
                x = None
            elif abs(x - b) < tol / 2:
                break
        if x is None:
            x = b + golden * (c - b) if c - b > b - a else b - golden * (b - a)
        fx = f(x)
        if fx >= fb:
            if x > b:
                a, fa = b, fb
            else:
                c, fc = b, fb
            b, fb = x, fx
        elif x > b:
            c, fc = x, fx
        else:
            a, fa = x, fx
        widths.append(c - a)
    return b, fb


def _grid_values(search: _Search, digits: int) -> tuple[list[float], list[mpf]]:
    """Objective on the grid, the upper end extended while the maximum sits there.

    Precision: 25 digits beyond the cancellation of ``D_alpha(0)`` and beyond the relative
    size ``~ e^t`` of the differences between neighbouring values near ``alpha = 1``, which is
    enough to order them.
    """
    t_lo = -(digits + 5) * math.log(10)
    t_hi = 40.0
    while True:
        ts = _grid(t_lo, t_hi)
        values = [search.value(mpf(t), digits=max(0, math.ceil(-t / math.log(10)))) for t in ts]
        best = max(range(len(values)), key=values.__getitem__)
        if search.bounded or best < len(ts) - 1:
            return ts, values
        if t_hi > 600:
            raise ArithmeticError("supremum of the Renyi objective not found (alpha -> inf?)")
        t_hi *= 2


def _local_maxima(values: list[mpf]) -> list[int]:
    n = len(values)
    return [
        i
        for i in range(n)
        if (i == 0 or values[i] >= values[i - 1]) and (i == n - 1 or values[i] >= values[i + 1])
    ]


class RenyiSup(NamedTuple):
    """Result of the search: ``sup F``, an ``alpha`` where it is attained (``1`` stands for
    the ``alpha -> 1`` limit) and the number of grid local maxima of ``F`` (1 = unimodal at
    grid resolution; the upper end of a bounded range, where ``F -> 0-``, is not counted when
    ``F < 0`` there; the lower end ``alpha -> 1`` is)."""

    value: mpf
    alpha: mpf
    local_maxima: int
    radius: mpf  #: ``sqrt(max(0, value))``, and 0 if ``p_A <= p_B``


def renyi_sup(
    sigma0: Real, sigma1: Real, dim: int, p_a: Real, p_b: Real | None = None, digits: int = 40
) -> RenyiSup:
    """``sup_{alpha in S} F(alpha)`` of Theorem 14 (may be <= 0: nothing certified)."""
    with mp.workdps(_working_dps(digits)):
        s0, s1, dimm, pa, pb = _inputs(sigma0, sigma1, dim, p_a, p_b)
        if pa == 1 and pb == 0:
            return RenyiSup(mpf("inf"), mpf("inf"), 0, mpf("inf"))
        search = _Search(s0, s1, dimm, pa, pb, digits)
        ts, values = _grid_values(search, digits)
        maxima = _local_maxima(values)
        tol = mpf(10) ** (-(digits // 2 + 5))
        best_t = mpf(ts[0])  # the alpha -> 1 limit (to 10^-(digits + 5))
        best_v = search.value(best_t)
        for i in maxima:
            if 0 < i < len(ts) - 1:
                t, v = _refine_max(search.value, mpf(ts[i - 1]), mpf(ts[i]), mpf(ts[i + 1]), tol)
            else:
                t = mpf(ts[i])
                v = search.value(t)
            if v > best_v:
                best_t, best_v = t, v
        if search.bounded and maxima[-1] == len(values) - 1 and values[-1] < 0:
            maxima.pop()
        alpha = mpf(1) if best_t == ts[0] else search.alpha(best_t)
        # Lemma 13 needs p_A to be the largest probability (its bound is symmetric in p_A, p_B)
        radius = mpmath.sqrt(best_v) if best_v > 0 and pa > pb else mpf(0)
        return RenyiSup(best_v, alpha, len(maxima), radius)


def renyi_radius_reference(
    sigma0: Real, sigma1: Real, dim: int, p_a: Real, p_b: Real | None = None, digits: int = 40
) -> mpf:
    """Certified radius of Theorem 14 (Renyi / Li et al. method, ``x0`` smoothed with
    ``sigma0`` and every ``x1`` with ``sigma1``): ``sqrt(max(0, sup_{alpha in S} F(alpha)))``.

    ``p_b`` defaults to ``1 - p_A`` (formed exactly); ``p_A <= p_B`` gives 0 (Lemma 13 needs
    ``p_A`` to be the largest probability; its bound is symmetric in ``p_A, p_B``).  Accurate to
    about ``10^-digits`` relative (the supremum is located to ``10^-(digits/2 + 5)`` in
    ``t = log(alpha - 1)``, where ``F`` is flat to second order).
    """
    return renyi_sup(sigma0, sigma1, dim, p_a, p_b, digits).radius
