"""Independent high-precision reference for the IDRS certification mathematics.

Paper: "Intriguing properties of input-dependent randomized smoothing" (Sukenik, Kuvshinov,
Guennemann), ``/work/shared/paper/idrs-paper.md``.  Everything here is computed with mpmath
(arbitrary precision) from first principles and is meant to check a fast float64
implementation.  scipy is used *only* for starting guesses of root finders; the returned
values never depend on it.

Notation (paper, Sections 2-3, Appendix F):

* ``chi2_N(lambda, x)`` is the cdf of the non-central chi-square distribution with ``N``
  degrees of freedom and non-centrality ``lambda`` at ``x``; ``chi2_{N,qf}`` its quantile.
* Theorem 2 / 3: for ``sigma0 > sigma1`` the worst-case class-B region is a ball, and
  ``xi_>(a) = chi2_N(s1^2 a^2 / d^2, (s0^2/s1^2) chi2_{N,qf}(s0^2 a^2 / d^2, 1 - p_A))`` with
  ``d = s0^2 - s1^2``; for ``sigma0 < sigma1`` it is the complement of a ball and
  ``xi_<(a) = 1 - chi2_N(s1^2 a^2 / d^2, (s0^2/s1^2) chi2_{N,qf}(s0^2 a^2 / d^2, p_A))``.
* Theorem 7: ``CR = max{0, sup{R >= 0 : xi_>(R, s0 e^{-rR}) < 1/2 and xi_<(R, s0 e^{rR}) < 1/2}}``.
* Theorem 4 (curse of dimensionality) and Table 1: ``log(s^2) + 1 - s^2 < 2 log(1 - p_A) / N``.

Non-central chi-square algorithms (both give the smaller tail directly, never ``1 - other``):

* ``nc <= NC_SERIES_MAX``: Poisson mixture
  ``P(X <= x) = sum_j Pois(j; nc/2) P(df/2 + j, x/2)`` (``P`` = regularized lower incomplete
  gamma).  One incomplete gamma is evaluated at the outer end of the summation range; all
  other terms follow from the exact, numerically stable recurrences
  ``P(b - 1, y) = P(b, y) + D(b - 1)`` (summing downwards, cdf) and
  ``Q(b + 1, y) = Q(b, y) + D(b)`` (summing upwards, sf) with ``D(b) = y^b e^{-y} / Gamma(b + 1)``,
  so only additions of positive numbers occur.  The summation range covers the Poisson mode
  +- K standard deviations and is extended until the remaining terms (which decay at least
  geometrically) are below ``10^-(working digits)`` of the sum; the first term is checked to be
  negligible too.  For speed the recurrence loop runs in Python's ``decimal`` module
  (correctly rounded arbitrary-precision arithmetic with an unbounded exponent range) at the
  working precision; logarithms, exponentials and log-gamma come from mpmath.
* Incomplete gamma functions (``mpmath.gammainc`` fails to converge for shape >~ 1e7) are
  likewise positive-term sums: ``P(b, y) = sum_{i>=0} D(b + i, y)`` for ``y <= b`` and
  ``Q(b, y) = sum_{i>=1} D(b - i, y) + Q(b - n, y)`` (``b - n`` in (0, 1], closed form) for
  ``y >= b``; the other one is the complement (then >= ~1/2).  Agreement with
  ``mpmath.gammainc`` (where it works) is ~1e-60 relative.
* ``nc > NC_SERIES_MAX`` (too many Poisson terms): ``X = (Z + sqrt(nc))^2 + V^2`` with
  ``Z ~ N(0, 1)`` and ``V ~ chi_{df-1}`` independent, conditioned on ``V = v``::

      P(X <= x) = int_0^sqrt(x) f_V(v) [Phi(s - mu) - Phi(-s - mu)] dv,
      P(X >  x) = P(V > sqrt(x)) + int_0^sqrt(x) f_V(v) [Phi(mu - s) + Phi(-s - mu)] dv,

  with ``mu = sqrt(nc)`` and ``s = sqrt(x - v^2)``.  The integrand is (numerically verified
  to be) unimodal; its mode is found by bisection on the derivative of its logarithm, and
  ``mpmath.quad`` (tanh-sinh) integrates over pieces at ``mode +- 2^i * width`` until the
  integrand has dropped by ``exp(-L)``, ``L = (digits + 10) ln 10``.  Differences of normal
  cdfs are evaluated with adaptively increased precision so they are relatively accurate.
* ``df == 1`` and ``nc == 0`` use the closed forms (normal cdf, regularized gamma).

Checks done (dps = 50): both algorithms agree to ~1e-55 relative on df in {2, ..., 200000},
nc in {1e2, 1e4, 1e6, 1e9}, x = mean + z sd for |z| <= 8; at nc = 1e9 and 1e12 the integral
also agrees (~1e-39) with conditioning on ``Z`` instead (``df = 2``, closed-form ``P_W``);
central values agree with the finite Poisson sum for even df.  Every public function takes
``dps`` (decimal digits); the internal working precision is ``dps + 10`` digits.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal, localcontext

import mpmath
from mpmath import mp, mpf

Real = int | float | str | mpf

#: Largest non-centrality for which the Poisson-mixture series is used (about 1.2e5 terms).
NC_SERIES_MAX = 2.0e7

_GUARD_DPS = 10


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------


def _to_mpf(value: Real) -> mpf:
    """Convert a number to mpf exactly (floats are binary and convert without rounding)."""
    return value if isinstance(value, mpf) else mpf(value)


def _to_dec(value: mpf) -> Decimal:
    """Convert an mpf into a Decimal with the current working precision (+5 digits)."""
    return Decimal(mpmath.libmp.to_str(value._mpf_, mp.dps + 5))


def _phi_diff(b: mpf, c: mpf) -> mpf:
    """``Phi(b) - Phi(c)`` for ``b >= c`` with full *relative* accuracy.

    The difference is formed from the two lower (or two upper) tails and the working precision
    is raised until the cancellation is absorbed.
    """
    if b <= c:
        return mpf(0)
    if c >= 0:  # both arguments positive: use upper tails, Phi(b)-Phi(c) = Phi(-c)-Phi(-b)
        b, c = -c, -b
    extra = 20
    while True:
        with mp.extraprec(extra):
            hi = mpmath.ncdf(b)
            lo = mpmath.ncdf(c)
            diff = hi - lo
        if diff > 0:
            loss = mpmath.mag(hi) - mpmath.mag(diff)
            if loss < extra - 10:
                return +diff
            extra = loss + 40
        else:
            extra *= 4
        if extra > 200000:
            raise ArithmeticError("Phi difference does not converge")


def _norm_ppf(p: mpf) -> mpf:
    """Standard normal quantile ``Phi^{-1}(p)`` (Newton polish of an erfinv/asymptotic guess)."""
    if p <= 0:
        return mpf("-inf")
    if p >= 1:
        return mpf("inf")
    if p == mpf(0.5):
        return mpf(0)
    if p > mpf(0.5):
        return -_norm_ppf_lower(1 - p)
    return _norm_ppf_lower(p)


def _norm_ppf_lower(p: mpf) -> mpf:
    """``Phi^{-1}(p)`` for ``0 < p < 1/2`` by Newton iteration on ``log Phi(z) = log p``."""
    if p > mpf("1e-10"):
        z = mpmath.sqrt(2) * mpmath.erfinv(2 * p - 1)
    else:
        t = -2 * mpmath.log(p)
        z = -mpmath.sqrt(t - mpmath.log(t) - mpmath.log(2 * mpmath.pi))
    logp = mpmath.log(p)
    tol = mpmath.ldexp(1, -mp.prec + 8)
    for _ in range(100):
        cdf = mpmath.ncdf(z)
        step = (mpmath.log(cdf) - logp) * cdf / mpmath.npdf(z)
        z -= step
        if abs(step) <= tol * max(1, abs(z)):
            return z
    raise ArithmeticError("normal quantile did not converge")


# ---------------------------------------------------------------------------------------------
# Non-central chi-square: the three evaluation methods
# ---------------------------------------------------------------------------------------------


def _dec_context() -> Context:
    """Decimal context with the current working precision (+5) and unbounded exponents."""
    return Context(prec=mp.dps + 5, Emin=MIN_EMIN, Emax=MAX_EMAX)


def _log_d(b: mpf, y: mpf) -> mpf:
    """``log D(b, y)`` with ``D(b, y) = y^b e^{-y} / Gamma(b + 1) = P(b, y) - P(b + 1, y)``."""
    return b * mpmath.log(y) - y - mpmath.loggamma(b + 1)


def _extra_digits(*magnitudes: mpf | float) -> int:
    """Extra decimal digits that absorb the size of large logarithmic intermediate terms."""
    big = max([1.0, *(abs(float(v)) for v in magnitudes)])
    return int(math.log10(big)) + 5


def _gamma_p_series(b: mpf, y: mpf) -> mpf:
    """Regularized lower incomplete gamma ``P(b, y) = sum_{i >= 0} D(b + i, y)``.

    Positive terms only; the term ratios ``y / (b + i + 1)`` decrease, so once below one the
    remainder is bounded by a geometric series.  Efficient for ``y <~ b``.
    """
    with mp.extradps(_extra_digits(b * mpmath.log(y), y)):
        t0 = mpmath.exp(_log_d(b, y))
        t_d, y_d, b_d = _to_dec(t0), _to_dec(y), _to_dec(b)
    with localcontext(_dec_context()):
        eps = Decimal(10) ** (-mp.dps)
        total = Decimal(0)
        t, c = t_d, b_d
        while True:
            total += t
            ratio = y_d / (c + 1)
            if ratio < 1 and t * ratio <= eps * total * (1 - ratio):
                break
            t *= ratio
            c += 1
        return mpf(str(total))


def _gamma_q_series(b: mpf, y: mpf) -> mpf:
    """Regularized upper incomplete gamma ``Q(b, y) = sum_{i=1}^{n} D(b - i, y) + Q(b - n, y)``
    with ``b - n`` in (0, 1].

    Positive terms only (the exact upward recurrence ``Q(c + 1) = Q(c) + D(c)``, summed from
    the top); the term ratios ``c / y`` decrease, and ``Q(b - n, y) <= D(b - n - 1, y)``, so the
    truncated remainder is bounded by a geometric series.  Efficient for ``y >~ b``.
    """
    n = int(mpmath.ceil(b)) - 1
    if n <= 0:
        return mpmath.gammainc(b, y, mpmath.inf, regularized=True)
    with mp.extradps(_extra_digits(b * mpmath.log(y), y)):
        t0 = mpmath.exp(_log_d(b - 1, y))
        t_d, y_d, c_d = _to_dec(t0), _to_dec(y), _to_dec(b - 1)
    with localcontext(_dec_context()):
        eps = Decimal(10) ** (-mp.dps)
        total = Decimal(0)
        t, c = t_d, c_d
        for _ in range(n):
            total += t
            ratio = c / y_d
            if ratio < 1 and t * ratio <= eps * total * (1 - ratio):
                return mpf(str(total))
            t *= ratio
            c -= 1
        result = mpf(str(total))
    return result + mpmath.gammainc(b - n, y, mpmath.inf, regularized=True)


def _gamma_p(b: mpf, y: mpf) -> mpf:
    """Regularized lower incomplete gamma, relatively accurate when small."""
    if y <= b:
        return _gamma_p_series(b, y)
    return 1 - _gamma_q_series(b, y)


def _gamma_q(b: mpf, y: mpf) -> mpf:
    """Regularized upper incomplete gamma, relatively accurate when small."""
    if y >= b:
        return _gamma_q_series(b, y)
    return 1 - _gamma_p_series(b, y)


def _central_tails(x: mpf, df: mpf, lower: bool) -> tuple[mpf, mpf]:
    """Central chi-square: the requested tail (regularized incomplete gamma) and the pdf."""
    a = df / 2
    y = x / 2
    tail = _gamma_p(a, y) if lower else _gamma_q(a, y)
    with mp.extradps(_extra_digits(a * mpmath.log(y), y)):
        pdf = mpmath.exp((a - 1) * mpmath.log(y) - y - mpmath.loggamma(a)) / 2
    return tail, pdf


def _df1_tails(x: mpf, nc: mpf, lower: bool) -> tuple[mpf, mpf]:
    """df = 1: ``X = (Z + mu)^2`` so both tails and the pdf are normal-cdf expressions."""
    mu = mpmath.sqrt(nc)
    s = mpmath.sqrt(x)
    if lower:
        tail = _phi_diff(s - mu, -s - mu)
    else:
        tail = mpmath.ncdf(mu - s) + mpmath.ncdf(-s - mu)
    pdf = (mpmath.npdf(s - mu) + mpmath.npdf(s + mu)) / (2 * s)
    return tail, pdf


def _series_tail(
    x: mpf, df: mpf, nc: mpf, lower: bool, width: float | None = None
) -> tuple[mpf, mpf]:
    """Poisson-mixture series for the lower (cdf) or upper (sf) tail; also returns the pdf.

    ``cdf = sum_j w_j P(a + j, y)``, ``sf = sum_j w_j Q(a + j, y)``,
    ``pdf = 1/2 sum_j w_j D(a + j - 1)`` with ``a = df/2``, ``y = x/2``, ``m = nc/2``,
    ``w_j = e^{-m} m^j / j!`` and ``D(b) = y^b e^{-y} / Gamma(b + 1)``.
    """
    digits = mp.dps
    a = df / 2
    y = x / 2
    m = nc / 2
    if width is None:
        width = math.sqrt(2 * math.log(10) * (digits + 3)) + 2
    mf = float(m)
    sm = math.sqrt(mf)
    if lower:  # the cdf is summed downwards, starting above the Poisson mode
        j0 = int(mf + width * sm + width * width / 2 + 10)
    else:  # the sf is summed upwards, starting below the Poisson mode
        j0 = max(0, int(mf - width * sm - width))
    b0 = a + j0
    start = _gamma_p(b0, y) if lower else _gamma_q(b0, y)
    with mp.extradps(_extra_digits(b0 * mpmath.log(y), y, m * mpmath.log(m), m)):
        d0 = mpmath.exp(_log_d(b0, y))
        w0 = mpmath.exp(-m + j0 * mpmath.log(m) - mpmath.loggamma(j0 + 1))
        start_d, d_d, w_d = _to_dec(start), _to_dec(d0), _to_dec(w0)
        y_d, m_d, b_d = _to_dec(y), _to_dec(m), _to_dec(b0)
    with localcontext(_dec_context()):
        eps = Decimal(10) ** (-digits)
        total = Decimal(0)
        pdf = Decimal(0)
        first = None
        t_prev = None
        j = j0
        tail = start_d
        d = d_d
        w = w_d
        b = b_d
        while True:
            t = w * tail
            total += t
            d_below = d * b / y_d  # D(b - 1)
            pdf += w * d_below
            if first is None:
                first = t
            past_mode = j <= m_d if lower else j >= m_d
            if past_mode and t_prev is not None and t < t_prev:
                rho = t / t_prev  # ratios keep decreasing: the rest is a geometric tail
                if t * rho <= eps * total * (1 - rho):
                    break
            if lower:
                if j == 0:
                    break
                tail += d_below
                d = d_below
                w = w * j / m_d
                j -= 1
                b -= 1
            else:
                tail += d
                d = d * y_d / (b + 1)
                w = w * m_d / (j + 1)
                j += 1
                b += 1
            t_prev = t
        ok = (not lower and j0 == 0) or first <= eps * total
        result = mpf(str(total))
        pdf_val = mpf(str(pdf / 2))
    if not ok:
        return _series_tail(x, df, nc, lower, width * 1.5)
    return result, pdf_val


def _integral_tail(x: mpf, df: mpf, nc: mpf, lower: bool) -> mpf:
    """Lower or upper tail by conditioning on ``V = ||Z_2..N||`` (chi with ``df - 1`` d.o.f.).

    ``cdf = int_0^sqrt(x) f_V(v) F(s(v)) dv``, ``sf = P(V > sqrt x) + int_0^sqrt(x) f_V Q(s) dv``
    with ``s(v) = sqrt(x - v^2)``, ``F(s) = P(|Z + mu| <= s)``, ``Q = 1 - F``, ``mu = sqrt(nc)``.
    """
    if df < 2:
        raise ValueError("integral representation needs df >= 2 (df = 1 has a closed form)")
    mu = mpmath.sqrt(nc)
    k = df - 1
    sx = mpmath.sqrt(x)
    drop = (mp.dps + 10) * math.log(10) + 10
    logc = -((k / 2 - 1) * mpmath.log(2) + mpmath.loggamma(k / 2))

    def s_of(v: mpf) -> mpf:
        return mpmath.sqrt((sx - v) * (sx + v))

    def factor(s: mpf) -> mpf:
        if lower:
            return _phi_diff(s - mu, -s - mu)
        return mpmath.ncdf(mu - s) + mpmath.ncdf(-s - mu)

    def log_f(v: mpf) -> mpf:
        if v <= 0:
            return logc if k == 1 else mpf("-inf")
        if v >= sx:
            return mpf("-inf") if lower else logc + (k - 1) * mpmath.log(sx) - x / 2
        fac = factor(s_of(v))
        if fac == 0:
            return mpf("-inf")
        return logc + (k - 1) * mpmath.log(v) - v * v / 2 + mpmath.log(fac)

    def dlog_f(v: mpf) -> mpf:
        s = s_of(v)
        term = v / s * (mpmath.npdf(s - mu) + mpmath.npdf(s + mu)) / factor(s)
        base = (k - 1) / v - v
        return base - term if lower else base + term

    # --- mode of the integrand (bisection on the sign of d/dv log f) --------------------------
    vstar = None
    tiny = sx * mpf("1e-30")
    if k == 1 and dlog_f(tiny) <= 0:
        vstar = mpf(0)
    else:
        hi = min(mpmath.sqrt(k - 1) if k > 1 else mpf(1), sx / 2)
        lo = mpf(0)
        for _ in range(400):
            if dlog_f(hi) < 0:
                break
            lo = hi
            hi = min(2 * hi, (hi + sx) / 2)
        else:
            vstar = sx  # increasing up to the end point
        if vstar is None:
            for _ in range(80):
                mid = (lo + hi) / 2
                if dlog_f(mid) > 0:
                    lo = mid
                else:
                    hi = mid
                if hi - lo <= mpf("1e-12") * hi:
                    break
            vstar = (lo + hi) / 2
    # --- width from the curvature of log f at the mode --------------------------------------
    width = 1 / mpmath.sqrt(1 + (k - 1) / vstar**2) if vstar > 0 else mpf(1)
    width = min(width, sx / 4)
    if 0 < vstar < sx:
        for _ in range(6):
            dv = width * mpf("1e-4")
            if vstar - dv <= 0 or vstar + dv >= sx:
                break
            curv = (dlog_f(vstar + dv) - dlog_f(vstar - dv)) / (2 * dv)
            if curv >= 0:
                break
            new = 1 / mpmath.sqrt(-curv)
            done = abs(new / width - 1) < mpf(0.1)
            width = new
            if done:
                break
    gstar = log_f(vstar)

    # --- break points mode +- width * 2^i until the integrand is negligible -------------------
    def outward(direction: int) -> list[mpf]:
        pts: list[mpf] = []
        last = gstar
        for i in range(-3, 200):
            v = vstar + direction * width * mpf(2) ** i
            if v <= 0 or v >= sx:
                pts.append(mpf(0) if direction < 0 else sx)
                return pts
            gv = log_f(v)
            if gv > last + mpf("1e-6") * (1 + abs(last)):
                raise ArithmeticError("ncx2 integrand is not unimodal at these arguments")
            pts.append(v)
            last = gv
            if gv < gstar - drop:
                return pts
        raise ArithmeticError("ncx2 integrand break points did not terminate")

    right = outward(+1)
    left = outward(-1)
    if not lower and right[-1] < sx and log_f(sx) > gstar - drop:
        raise ArithmeticError("ncx2 sf integrand has a non-negligible end point peak")
    pts = [*reversed(left), vstar, *right]
    pts = sorted(set(pts))
    upts = [(p - vstar) / width for p in pts]

    def integrand(u: mpf) -> mpf:
        v = vstar + width * u
        if v <= 0 or v >= sx:
            return mpf(0)
        return mpmath.exp(logc + (k - 1) * mpmath.log(v) - v * v / 2 - gstar) * factor(s_of(v))

    value = mpmath.quad(integrand, upts)
    result = width * mpmath.exp(gstar) * value
    if not lower:
        result += _gamma_q(k / 2, x / 2)
    return result


def _tails(x: mpf, df: mpf, nc: mpf, method: str = "auto") -> tuple[mpf, mpf, mpf | None]:
    """``(cdf, sf, pdf)`` at the current precision.  The tail on the side of ``x`` relative to
    the mean ``df + nc`` is computed directly and the other one as its complement (which is
    then >= ~0.3, so no accuracy is lost).  ``pdf`` is None when not available cheaply."""
    if x <= 0:
        return mpf(0), mpf(1), None
    lower = x < df + nc
    pdf: mpf | None
    if nc == 0:
        tail, pdf = _central_tails(x, df, lower)
    elif df == 1:
        tail, pdf = _df1_tails(x, nc, lower)
    else:
        if method == "auto":
            method = "series" if nc <= NC_SERIES_MAX else "integral"
        if method == "series":
            tail, pdf = _series_tail(x, df, nc, lower)
        elif method == "integral":
            tail, pdf = _integral_tail(x, df, nc, lower), None
        else:
            raise ValueError(f"unknown method {method!r}")
    if lower:
        return tail, 1 - tail, pdf
    return 1 - tail, tail, pdf


# ---------------------------------------------------------------------------------------------
# Non-central chi-square: public API
# ---------------------------------------------------------------------------------------------


def ncx2_cdf(x: Real, df: Real, nc: Real, dps: int = 50, method: str = "auto") -> mpf:
    """Non-central chi-square cdf ``chi2_df(nc, x) = P(X <= x)`` (paper Theorem 3 notation).

    Relative accuracy ~``10^-dps`` also in the far lower tail (see the module docstring for the
    algorithms; ``method`` in {"auto", "series", "integral"} forces one of them).
    """
    with mp.workdps(dps + _GUARD_DPS):
        return _tails(_to_mpf(x), _to_mpf(df), _to_mpf(nc), method)[0]


def ncx2_sf(x: Real, df: Real, nc: Real, dps: int = 50, method: str = "auto") -> mpf:
    """Non-central chi-square survival function ``P(X > x)``; the upper tail is computed
    directly (never as ``1 - cdf`` when it is small)."""
    with mp.workdps(dps + _GUARD_DPS):
        return _tails(_to_mpf(x), _to_mpf(df), _to_mpf(nc), method)[1]


def ncx2_cdf_sf(
    x: Real, df: Real, nc: Real, dps: int = 50, method: str = "auto"
) -> tuple[mpf, mpf]:
    """Both ``(cdf, sf)`` from one evaluation (the smaller one is computed directly)."""
    with mp.workdps(dps + _GUARD_DPS):
        cdf, sf, _ = _tails(_to_mpf(x), _to_mpf(df), _to_mpf(nc), method)
        return cdf, sf


def _normal_slope(x: mpf, df: mpf, nc: mpf, upper: bool) -> mpf:
    """Approximate ``d/dx log(tail)`` magnitude from a normal approximation (first secant step)."""
    mean = df + nc
    sd = mpmath.sqrt(2 * (df + 2 * nc))
    z = (x - mean) / sd
    tail = mpmath.ncdf(-z) if upper else mpmath.ncdf(z)
    return mpmath.npdf(z) / (sd * tail)


def _sankaran_guess(p: mpf, df: mpf, nc: mpf, upper: bool) -> mpf:
    """Sankaran's (1963) normal approximation of ``(X / (df + nc))^h`` inverted at ``p``.

    Relative error ~1e-23 at ``nc = 1e12``, ~1e-3 for small ``nc`` (only a starting point).
    """
    h = 1 - mpf(2) / 3 * (df + nc) * (df + 3 * nc) / (df + 2 * nc) ** 2
    big_p = (df + 2 * nc) / (df + nc) ** 2
    m = (h - 1) * (1 - 3 * h)
    mean = 1 + h * big_p * (h - 1 - (1 - h / 2) * m * big_p)
    sd = h * mpmath.sqrt(2 * big_p) * (1 + m * big_p / 2)
    z = _norm_ppf(p)
    base = mean + sd * (-z if upper else z)
    if base <= 0:
        return (df + nc) * mpf("1e-6")
    return (df + nc) * base ** (1 / h)


def _initial_guess(p: mpf, df: mpf, nc: mpf, upper: bool) -> mpf:
    """Starting point for the quantile iteration: scipy's float quantile where it is reliable
    (``nc <= NC_SERIES_MAX``), else (or if it fails) Sankaran's approximation."""
    if nc <= NC_SERIES_MAX:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from scipy import stats  # only used for a starting guess

                dist = stats.chi2(float(df)) if nc == 0 else stats.ncx2(float(df), float(nc))
                pf = float(p)
                guess = float(dist.isf(pf) if upper else dist.ppf(pf))
            if math.isfinite(guess) and guess > 0:
                return mpf(guess)
        except Exception:  # any failure just means "no guess"
            pass
    return _sankaran_guess(p, df, nc, upper)


def _quantile(p: mpf, df: mpf, nc: mpf, upper: bool, tol_digits: int, method: str = "auto") -> mpf:
    """Solve ``cdf(x) = p`` (``upper=False``) or ``sf(x) = p`` (``upper=True``) for ``x``.

    Safeguarded Newton iteration on ``log(tail)`` (secant when the pdf is not available) inside
    a maintained bracket; stops when the step is below ``10^-tol_digits`` relative.
    """
    if p <= 0:
        return mpf("inf") if upper else mpf(0)
    if p >= 1:
        return mpf(0) if upper else mpf("inf")
    logp = mpmath.log(p)
    tol = mpf(10) ** (-tol_digits)
    x = _initial_guess(p, df, nc, upper)
    lo, hi = mpf(0), mpf("inf")
    x_prev = g_prev = None
    for _ in range(300):
        cdf, sf, pdf = _tails(x, df, nc, method)
        tail = sf if upper else cdf
        if tail == 0:
            g = mpf("inf") if upper else mpf("-inf")
        else:
            g = logp - mpmath.log(tail) if upper else mpmath.log(tail) - logp
        if g == 0:
            return x
        if g < 0:
            lo = max(lo, x)
        else:
            hi = min(hi, x)
        slope = None
        if mpmath.isfinite(g):
            if pdf is not None and pdf > 0 and tail > 0:
                slope = pdf / tail
            elif x_prev is not None and mpmath.isfinite(g_prev) and g != g_prev:
                slope = (g - g_prev) / (x - x_prev)
            else:
                slope = _normal_slope(x, df, nc, upper)
        x_new = x - g / slope if slope is not None and slope > 0 else None
        if x_new is not None and lo <= x_new <= hi and abs(x_new - x) <= tol * abs(x_new):
            return x_new
        if x_new is None or not lo < x_new < hi:
            if hi == mpf("inf"):
                x_new = 2 * x
            elif lo == 0:
                x_new = hi / 2
            else:
                x_new = (lo + hi) / 2
        if abs(x_new - x) <= tol * abs(x_new):
            return x_new
        x_prev, g_prev = x, g
        x = x_new
    raise ArithmeticError("ncx2 quantile iteration did not converge")


def ncx2_ppf(q: Real, df: Real, nc: Real, dps: int = 50, method: str = "auto") -> mpf:
    """Non-central chi-square quantile ``chi2_{df,qf}(nc, q)``.

    Root finding on the cdf for ``q <= 1/2`` and on the sf with target ``1 - q`` for
    ``q > 1/2`` (``1 - q`` is exact for a double ``q >= 1/2``).  Relative accuracy ~``10^-dps``.
    """
    with mp.workdps(dps + _GUARD_DPS):
        qm, dfm, ncm = _to_mpf(q), _to_mpf(df), _to_mpf(nc)
        if qm > mpf(0.5):
            return _quantile(1 - qm, dfm, ncm, True, dps + 2, method)
        return _quantile(qm, dfm, ncm, False, dps + 2, method)


def ncx2_isf(p: Real, df: Real, nc: Real, dps: int = 50, method: str = "auto") -> mpf:
    """Inverse survival function: the ``x`` with ``P(X > x) = p``."""
    with mp.workdps(dps + _GUARD_DPS):
        return _quantile(_to_mpf(p), _to_mpf(df), _to_mpf(nc), True, dps + 2, method)


# ---------------------------------------------------------------------------------------------
# xi functions (Section 2, Theorems 2-3) and the certified radius (Theorem 7)
# ---------------------------------------------------------------------------------------------


def _xi(
    a: mpf, s0sq: mpf, s1sq: mpf, dsq: mpf, dim: mpf, p_b: mpf, greater: bool, tol_digits: int
) -> mpf:
    """Core of xi_> / xi_< at the current precision; ``dsq = |sigma0^2 - sigma1^2| > 0``."""
    a2 = a * a
    lam0 = s0sq * a2 / dsq**2
    lam1 = s1sq * a2 / dsq**2
    ratio = s0sq / s1sq
    if greater:
        # P_0(B) = chi2_N(lam0, R^2/s0^2) = p_B   ->  xi_> = chi2_N(lam1, (s0^2/s1^2) * qf)
        xq = _quantile(p_b, dim, lam0, False, tol_digits)
        return _tails(ratio * xq, dim, lam1)[0]
    # B is the complement of a ball: P_0(ball) = chi2_N(lam0, R^2/s0^2) = p_A, i.e. its
    # survival function equals p_B;  xi_< = 1 - chi2_N(lam1, (s0^2/s1^2) * qf) as an sf.
    xq = _quantile(p_b, dim, lam0, True, tol_digits)
    return _tails(ratio * xq, dim, lam1)[1]


def xi_greater(a: Real, sigma0: Real, sigma1: Real, dim: int, p_a: Real, dps: int = 40) -> mpf:
    """``xi_>(a) = P_1(B)`` for ``sigma1 < sigma0`` (paper Section 2, from Theorems 2 and 3).

    ``xi_>(a) = chi2_N(s1^2 a^2/d^2, (s0^2/s1^2) chi2_{N,qf}(s0^2 a^2/d^2, 1 - p_A))`` with
    ``d = s0^2 - s1^2``; at ``a = 0`` both distributions are central.  ``1 - p_A`` is formed
    exactly from the given ``p_A``.
    """
    with mp.workdps(dps + _GUARD_DPS):
        s0, s1 = _to_mpf(sigma0), _to_mpf(sigma1)
        if not 0 < s1 < s0:
            raise ValueError("xi_greater needs 0 < sigma1 < sigma0")
        dsq = (s0 - s1) * (s0 + s1)
        p_b = 1 - _to_mpf(p_a)
        return _xi(_to_mpf(a), s0 * s0, s1 * s1, dsq, _to_mpf(dim), p_b, True, dps + 2)


def xi_less(a: Real, sigma0: Real, sigma1: Real, dim: int, p_a: Real, dps: int = 40) -> mpf:
    """``xi_<(a) = P_1(B)`` for ``sigma1 > sigma0`` (paper Section 2, from Theorems 2 and 3).

    ``xi_<(a) = 1 - chi2_N(s1^2 a^2/d^2, (s0^2/s1^2) chi2_{N,qf}(s0^2 a^2/d^2, p_A))`` with
    ``d = s1^2 - s0^2``, evaluated as a survival function (the quantile at ``p_A`` is the
    inverse survival function at ``1 - p_A``).
    """
    with mp.workdps(dps + _GUARD_DPS):
        s0, s1 = _to_mpf(sigma0), _to_mpf(sigma1)
        if not 0 < s0 < s1:
            raise ValueError("xi_less needs 0 < sigma0 < sigma1")
        dsq = (s1 - s0) * (s1 + s0)
        p_b = 1 - _to_mpf(p_a)
        return _xi(_to_mpf(a), s0 * s0, s1 * s1, dsq, _to_mpf(dim), p_b, False, dps + 2)


def cohen_radius(sigma0: Real, p_a: Real, dps: int = 40) -> mpf:
    """Cohen et al. (2019) radius with ``p_B = 1 - p_A``: ``sigma0 * Phi^{-1}(p_A)`` (0 if
    ``p_A <= 1/2``).  By Theorem 15 it upper-bounds the IDRS radius."""
    with mp.workdps(dps + _GUARD_DPS):
        p = _to_mpf(p_a)
        if p <= mpf(0.5):
            return mpf(0)
        return _to_mpf(sigma0) * _norm_ppf(p)


def _first_crossing(f: Callable[[mpf], mpf], f0: mpf, hi: mpf, rel_tol: mpf) -> mpf:
    """Root of an increasing-through-zero ``f`` on ``(0, hi]`` with ``f(0+) = f0 < 0``.

    Illinois (modified regula falsi) with bisection safeguard; returns the midpoint of a
    bracket whose width is at most ``rel_tol / 4`` of its lower end.  Returns ``hi`` if
    ``f(hi) < 0`` (no crossing).
    """
    fhi = f(hi)
    if fhi < 0:
        return hi
    lo, flo = mpf(0), f0
    side = 0
    stall = 0
    width = hi - lo
    while True:
        if hi - lo <= rel_tol * lo / 4:
            return (lo + hi) / 2
        if stall >= 3:
            x = (lo + hi) / 2
            stall = 0
        else:
            x = (lo * fhi - hi * flo) / (fhi - flo)
            margin = (hi - lo) * mpf("1e-3")
            x = min(max(x, lo + margin), hi - margin)
        fx = f(x)
        if fx < 0:
            lo, flo = x, fx
            if side == -1:
                fhi /= 2
            side = -1
        else:
            hi, fhi = x, fx
            if side == 1:
                flo /= 2
            side = 1
        if hi - lo > width / 2:
            stall += 1
        else:
            stall = 0
            width = hi - lo


def idrs_radius(
    sigma0: Real, r: Real, dim: int, p_a: Real, rel_tol: float = 1e-7, dps: int = 30
) -> mpf:
    """Certified radius of Theorem 7 for an ``r``-semi-elastic ``sigma(x)``.

    ``CR = max{0, sup{R >= 0 : xi_>(R, s0 e^{-rR}) < 1/2 and xi_<(R, s0 e^{rR}) < 1/2}}`` with
    ``p_B = 1 - p_A``.  The set of certified ``R`` is an interval starting at 0 (Lemma 20 +
    Theorem 6) contained in ``[0, sigma0 Phi^{-1}(p_A)]`` (Theorem 15), and as ``R -> 0+`` both
    xi tend to ``p_B`` (the non-centralities tend to ``1 / (4 r^2 sigma0^2)``), so every
    ``p_A > 1/2`` has ``CR > 0``; ``p_A <= 1/2`` gives 0.

    Each of the two conditions is solved for its first crossing of 1/2 with a bracketing
    Illinois iteration (the second only if it binds before the first), so the result is
    accurate to ``rel_tol`` (relative).  Internally the ncx2 functions run at ``dps + 10``
    digits (default 30 + 10); ``sigma0^2 - sigma1^2`` is formed with ``expm1`` so small ``R``
    is exact.  For ``r = 0`` Cohen's radius is returned.
    """
    with mp.workdps(dps + _GUARD_DPS):
        s0 = _to_mpf(sigma0)
        rr = _to_mpf(r)
        pa = _to_mpf(p_a)
        if pa <= mpf(0.5):
            return mpf(0)
        p_b = 1 - pa
        rc = s0 * _norm_ppf(pa)
        if rr == 0:
            return rc
        s0sq = s0 * s0
        dimm = _to_mpf(dim)

        def f_greater(radius: mpf) -> mpf:
            t = 2 * rr * radius
            dsq = -s0sq * mpmath.expm1(-t)
            return _xi(radius, s0sq, s0sq * mpmath.exp(-t), dsq, dimm, p_b, True, dps) - 0.5

        def f_less(radius: mpf) -> mpf:
            t = 2 * rr * radius
            dsq = s0sq * mpmath.expm1(t)
            return _xi(radius, s0sq, s0sq * mpmath.exp(t), dsq, dimm, p_b, False, dps) - 0.5

        f0 = p_b - mpf(0.5)
        tol = _to_mpf(rel_tol)
        r_less = _first_crossing(f_less, f0, rc, tol)
        if f_greater(r_less) < 0:
            return r_less
        return _first_crossing(f_greater, f0, r_less, tol)


# ---------------------------------------------------------------------------------------------
# Curse-of-dimensionality thresholds (Theorem 4, Table 1, Figure 3)
# ---------------------------------------------------------------------------------------------


def curse_threshold(dim: int, p_a: Real, dps: int = 30) -> mpf:
    """Theorem 4, part 1 (Table 1): the root ``s`` in (0, 1) of
    ``log(s^2) + 1 - s^2 = 2 log(1 - p_A) / N``.  Every ``sigma1/sigma0 < s`` is uncertifiable.

    Solved for ``e = 1 - s^2`` from ``log1p(-e) + e = rhs`` (decreasing in ``e``) by bisection.
    """
    with mp.workdps(dps + _GUARD_DPS):
        rhs = 2 * mpmath.log(1 - _to_mpf(p_a)) / _to_mpf(dim)
        lo, hi = mpf(0), mpf(1)
        for _ in range(mp.prec + 10):
            mid = (lo + hi) / 2
            if mpmath.log1p(-mid) + mid > rhs:
                lo = mid
            else:
                hi = mid
        return mpmath.sqrt(1 - (lo + hi) / 2)


def practical_threshold(dim: int, p_a: Real, dps: int = 30) -> mpf:
    """The ratio ``s = sigma1/sigma0 < 1`` where the central ``xi_>(0) = 1/2`` (Figure 3).

    ``xi_>(0) = chi2_N(chi2_{N,qf}(1 - p_A) / s^2)`` is decreasing in ``s``, so the solution is
    ``s = sqrt(chi2_{N,qf}(1 - p_A) / chi2_{N,qf}(1/2))``.
    """
    with mp.workdps(dps + _GUARD_DPS):
        dimm = _to_mpf(dim)
        p_b = 1 - _to_mpf(p_a)
        q_b = _quantile(p_b, dimm, mpf(0), False, dps + 2)
        med = _quantile(mpf(0.5), dimm, mpf(0), False, dps + 2)
        return mpmath.sqrt(q_b / med)
