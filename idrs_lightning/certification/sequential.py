"""Sequential CERTIFY: anytime-valid certification that stops once every grid radius is settled.

Cohen et al.'s CERTIFY draws a fixed ``n`` (typically 100,000) estimation samples per input and
bounds the top-class probability ``p_A`` once. Most inputs do not need that many: an input with
``p_A = 0.3`` abstains after a thousand samples, and an input whose ``p_A`` sits far from every
radius of interest is settled long before ``n``. This module holds the mathematics of stopping
early without losing the guarantee:

* :func:`look_schedule`: the sample counts (the *looks*) at which the bounds are examined, fixed
  before any sample is drawn; :func:`look_levels`: ``alpha`` spent over them;
* :func:`radius_thresholds`: per input and grid radius R, the smallest ``p_A`` lower bound whose
  certified radius (:func:`.cohen_radius` or :func:`.idrs_radius`) reaches R;
* :func:`budget_thresholds`: per threshold, the smallest top-class rate whose lower bound at the
  last look (``n_max`` samples) reaches it;
* :func:`settle` and :class:`SequentialCertifier`: at every look, a Clopper-Pearson lower bound
  at level ``alpha / J`` for a schedule of ``J`` looks (a confidence sequence: by the union
  bound they hold at all looks simultaneously) and an upper bound that only decides when to
  stop; a grid radius is *certified* when the lower bound reaches its threshold, *impossible*
  when the upper bound falls below the threshold, and *beyond the budget* when the upper bound
  falls below the budget threshold (so ``n_max`` samples would likely not certify it either);
  an input stops when every radius is certified or beyond the budget, or at the last look. The
  certified radius is that of the lower bound at the stopping look. Inputs move through the
  looks independently, so inputs at different looks can share forward passes.

The counts are those of the class selected beforehand (Cohen et al.'s ``n0`` selection
samples, independent of the estimation samples counted here); the runner-up is bounded by
``p_B = 1 - p_A``.

References
----------
J. Cohen, E. Rosenfeld, J. Z. Kolter, "Certified adversarial robustness via randomized
smoothing", ICML 2019 (CERTIFY).
D. A. Darling and H. Robbins, "Confidence sequences for mean, variance, and median", PNAS 58(1),
66-68, 1967 (confidence sequences; here the simplest one, a union bound over finitely many looks).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from idrs_lightning.certification.confidence import clopper_pearson_lower, clopper_pearson_upper
from idrs_lightning.certification.radius import cohen_radius, idrs_radius, p_b_budget
from idrs_lightning.validation import (
    check_count,
    check_non_negative,
    check_positive,
    check_probability,
    check_range,
)

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]

# Threshold of radius 0: "certified at 0" is Cohen et al.'s non-abstain rule p_A_lower > 1/2,
# written as lower >= the smallest double above 1/2 so that every radius uses the same test.
ZERO_RADIUS_THRESHOLD = float(np.nextafter(0.5, 1.0))
# The largest double below 1: a Clopper-Pearson lower bound never exceeds it (k = n gives
# (alpha / J)^(1/n)), so a radius not reached there is unreachable (threshold +inf).
_LARGEST_BELOW_ONE = float(np.nextafter(1.0, 0.0))
# The threshold search on z = PhiInv(p) stops when the bracket is this narrow relative to z.
_Z_RTOL = 1e-11
# Initial brackets, verified before use: Cohen's closed form Phi(R / sigma), relative in z,
# and Theorem 7's budget for p_b (the radius function's own slack applied), relative in p_b.
_COHEN_BRACKET = 4e-13
_BUDGET_BRACKET = 1e-6
_MAX_STEPS = 200
_MAX_LOOKS = 100_000
#: The default schedule, chosen by replaying a trained model's p_A through the certifier
#: (bench/sequential.py measures it): a first look at 100 samples, then 20% more per look.
FIRST_LOOK, LOOK_RATIO = 100, 1.2
#: Level of the upper bounds that decide when an input stops (per look; no part of ``alpha``).
STOP_LEVEL = 0.01
# Thresholds of the designs (grid, sigma, r, dim) searched so far, least recently used first.
_THRESHOLD_CACHE: OrderedDict[tuple[bytes, float, float, float], FloatArray] = OrderedDict()
_THRESHOLD_CACHE_SIZE = 4096


def look_schedule(
    n_max: int, first: int = FIRST_LOOK, ratio: float = LOOK_RATIO, step: int = 1
) -> IntArray:
    """Sample counts at which a sequential certification looks at its bounds.

    Parameters
    ----------
    n_max : int, ``>= 1``
        The most samples an input may use (Cohen et al.'s fixed ``n``): always the last look.
    first : int, ``>= 1``
        The first look.
    ratio : float, ``> 1``
        Growth factor between looks: ``first * ratio**k`` rounded up to a multiple of
        ``step``, repeats dropped, for every value below ``n_max``.
    step : int, ``>= 1``
        Every look but the last is a multiple of it (the sampler's block size).

    Returns
    -------
    ndarray of int64
        Strictly increasing look sizes ending at ``n_max``; ``[n_max]`` alone where
        ``n_max <= first``.

    Notes
    -----
    The schedule must be fixed before any sample is drawn: :func:`look_levels` splits
    ``alpha`` over its looks. More looks stop closer to the first moment a radius is
    settled, at a slightly lower level per look.
    """
    total = int(check_count("n_max", n_max, minimum=1))
    start = int(check_count("first", first, minimum=1))
    growth = float(check_range("ratio", ratio, 1.0, np.inf, low_open=True, high_open=True))
    block = int(check_count("step", step, minimum=1))
    if total <= start:
        return np.array([total], dtype=np.int64)
    steps = int(np.ceil(np.log(total / start) / np.log(growth)))
    if steps > _MAX_LOOKS:
        raise ValueError(f"ratio {growth!r} is too close to 1: over {_MAX_LOOKS} looks")
    sizes = start * growth ** np.arange(steps + 1)
    sizes = np.unique((np.ceil(sizes / block - 1e-9) * block).astype(np.int64))
    return np.append(sizes[sizes < total], total)


def look_levels(looks: ArrayLike, alpha: float) -> FloatArray:
    """The level of each look's lower bound: ``alpha`` spent over the schedule.

    Equal shares, ``alpha_j = alpha / J`` for ``J`` looks, so ``sum_j alpha_j = alpha`` (the
    union bound of :class:`SequentialCertifier`). Replaying a trained model's ``p_A`` through
    the certifier, giving half of ``alpha`` to the last look instead saved more samples at one
    radius but fewer at four and at thirteen.
    """
    sizes = _check_looks(looks)
    level = _check_alpha(alpha)
    return np.full(sizes.size, level / sizes.size)


def _check_looks(looks: ArrayLike) -> FloatArray:
    sizes = check_count("looks", looks, minimum=1)
    if sizes.ndim != 1 or sizes.size == 0:
        raise ValueError(f"looks must be a non-empty 1-D schedule, got shape {sizes.shape}")
    if (np.diff(sizes) <= 0).any():
        raise ValueError("looks must be strictly increasing")
    return sizes


def _check_alpha(alpha: ArrayLike) -> float:
    level = check_range("alpha", alpha, 0.0, 1.0, low_open=True, high_open=True)
    if level.ndim != 0:
        raise ValueError(f"alpha must be a scalar, got shape {level.shape}")
    return float(level)


def _check_thresholds(thresholds: ArrayLike) -> FloatArray:
    array = np.asarray(thresholds, dtype=np.float64)
    if np.isnan(array).any():
        raise ValueError("thresholds contains NaN")
    bad = ~((array > 0.5) & ((array <= 1.0) | (array == np.inf)))
    if bad.any():
        raise ValueError(
            f"thresholds must lie in (0.5, 1] or be +inf, got {float(array[bad].flat[0])!r}"
        )
    return array


def _check_design(
    radii: ArrayLike, sigma: ArrayLike, r: ArrayLike, dim: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """The radius grid (1-D, >= 0), sigma (> 0), r (>= 0) and dim (>= 1), validated."""
    grid = check_non_negative("radii", radii)
    if grid.ndim != 1:
        raise ValueError(f"radii must be 1-D, got shape {grid.shape}")
    sigma = check_positive("sigma", sigma)
    return grid, sigma, check_non_negative("r", r), check_count("dim", dim, minimum=1)


def radius_thresholds(
    radii: ArrayLike, sigma: ArrayLike, r: ArrayLike = 0.0, dim: ArrayLike = 1
) -> FloatArray:
    """Smallest ``p_A`` lower bound whose certified radius reaches each grid radius.

    Parameters
    ----------
    radii : array_like, shape ``(K,)``, ``>= 0``
        The radius grid.
    sigma : array_like, ``> 0``
        Noise level at each input (``sigma0`` of :func:`.idrs_radius`).
    r : array_like, ``>= 0``
        Semi-elasticity of ``sigma(x)``; ``0`` is Cohen et al.'s constant-sigma radius.
    dim : array_like of int, ``>= 1``
        Input dimension (unused where ``r = 0``).

    Returns
    -------
    ndarray, shape ``broadcast(sigma, r, dim).shape + (K,)``
        ``t`` with ``radius(t) >= R`` verified by the radius function itself
        (:func:`.idrs_radius`, which is exactly :func:`.cohen_radius` where ``r = 0``), and
        ``radius(p) < R`` verified at a ``p`` below ``t`` by at most a relative 1e-11 in
        ``PhiInv(p)`` (or at the adjacent double): the upper end of the final bracket of a
        search that starts from ``Phi(R / sigma)`` (Cohen; Theorem 15 puts the IDRS threshold
        above it). Radius 0 gets the smallest double above 1/2 (certified at 0 = not
        abstaining: ``lower > 1/2``). ``+inf`` marks a radius not reached below ``p_A = 1``
        (no Clopper-Pearson lower bound reaches 1, so it can never be certified).

    Notes
    -----
    ``lower >= t`` certifies R: the true radius is non-decreasing in ``p_A``, and the computed
    one at ``t`` is a verified lower bound of it. A threshold too high only certifies less;
    all rounding here errs that way. The computed :func:`.idrs_radius` is found to a relative
    1e-9 and so is non-decreasing only up to that: at a lower bound above ``t`` it may come
    out up to ~1e-9 relative below R, where the threshold (soundly) says certified.
    """
    grid, sigma, rate, size = _check_design(radii, sigma, r, dim)
    sigma, rate, size = np.broadcast_arrays(sigma, rate, size)
    shape = (*sigma.shape, grid.size)
    # An input's thresholds depend on its (sigma, r, dim) and the grid only (the search treats
    # every row alone): distinct designs are searched once, and remembered across calls
    # (clamped sigma(x), constant sigma and repeated grids recur batch after batch).
    designs = np.stack([a.ravel() for a in (sigma, rate, size)], axis=1)
    unique, inverse = np.unique(designs, axis=0, return_inverse=True)
    grid_key = grid.tobytes()
    keys = [(grid_key, *map(float, row)) for row in unique]
    table = np.empty((len(keys), grid.size))
    missing = []
    for i, key in enumerate(keys):
        if key in _THRESHOLD_CACHE:
            table[i] = _THRESHOLD_CACHE[key]
            _THRESHOLD_CACHE.move_to_end(key)
        else:
            missing.append(i)
    if missing:
        table[missing] = _thresholds_of(grid, *unique[missing].T)
        for i in missing:
            _THRESHOLD_CACHE[keys[i]] = table[i].copy()
        while len(_THRESHOLD_CACHE) > _THRESHOLD_CACHE_SIZE:
            _THRESHOLD_CACHE.popitem(last=False)
    return table[inverse.ravel()].reshape(shape)


def clear_threshold_cache() -> None:
    """Forget the thresholds :func:`radius_thresholds` remembers (benchmarks time the search)."""
    _THRESHOLD_CACHE.clear()


def _thresholds_of(
    grid: FloatArray, sigma: FloatArray, r: FloatArray, dim: FloatArray
) -> FloatArray:
    """:func:`radius_thresholds` of flat, validated designs: shape ``(designs, K)``."""
    shape = (sigma.size, grid.size)
    radius = np.broadcast_to(grid, shape).ravel()
    s, rr, d = (np.broadcast_to(a[:, None], shape).ravel() for a in (sigma, r, dim))
    out = np.full(radius.size, ZERO_RADIUS_THRESHOLD)
    search = np.flatnonzero(radius > 0.0)
    if search.size:
        out[search] = _search_thresholds(radius[search], s[search], rr[search], d[search])
    return out.reshape(shape)


def _search_thresholds(
    radius: FloatArray, sigma: FloatArray, r: FloatArray, dim: FloatArray
) -> FloatArray:
    """Thresholds for ``radius > 0``: a bracketed search on ``z = PhiInv(p)``, verified ends.

    Invariant: ``radius(p_lo) < R <= radius(p_hi)``, both evaluated by :func:`.idrs_radius`
    (or, for ``p_lo``, by :func:`.cohen_radius`, which bounds it: Theorem 15, and the computed
    IDRS radius is capped by the computed Cohen one). The start is Cohen's closed form
    ``Phi(R / sigma)`` for ``r = 0`` and, for ``r > 0``, the inverse of Theorem 7's budget
    (the largest ``p_b`` certifying distance R); Illinois steps then close the bracket to a
    relative ``_Z_RTOL`` in z, and ``p_hi`` is returned.
    """

    def excess(p: FloatArray, idx: NDArray[np.intp]) -> FloatArray:
        return idrs_radius(sigma[idx], r[idx], dim[idx], p) - radius[idx]

    z = radius / sigma
    # Lower end: the largest of a few points below Phi(R / sigma) whose Cohen radius is below R
    # (near p = 1 the first ones can round onto the threshold itself), else 1/2.
    p_lo, g_lo = np.full(radius.size, 0.5), -radius
    for shrink in (1e-2, 1e-5, 1e-9, _COHEN_BRACKET):
        p = special.ndtr(z * (1.0 - shrink))
        g = cohen_radius(sigma, p) - radius
        better = (g < 0.0) & (p > p_lo)
        p_lo, g_lo = np.where(better, p, p_lo), np.where(better, g, g_lo)
    p_hi = np.full(radius.size, _LARGEST_BELOW_ONE)
    g_hi = np.full(radius.size, np.nan)  # NaN: p_hi not verified yet

    def tighten(p: FloatArray, g: FloatArray) -> None:
        inside = (p > p_lo) & (p < p_hi)
        up, down = inside & (g >= 0.0), inside & (g < 0.0)
        p_hi[up], g_hi[up] = p[up], g[up]
        p_lo[down], g_lo[down] = p[down], g[down]

    cohen = r == 0.0
    guesses = [np.where(cohen, special.ndtr(z * (1.0 + _COHEN_BRACKET)), np.nan)]
    elastic = np.flatnonzero(~cohen)
    if elastic.size:
        budget = p_b_budget(z[elastic], r[elastic] * sigma[elastic], dim[elastic])
        for shift in (-_BUDGET_BRACKET, _BUDGET_BRACKET):
            guess = np.full(radius.size, np.nan)
            p_b = budget * (1.0 + shift)
            guess[elastic] = np.clip(1.0 - p_b, 0.5, _LARGEST_BELOW_ONE)
            guesses.append(guess)
    for guess in guesses:
        rows = np.flatnonzero(np.isfinite(guess) & (guess > p_lo) & (guess < p_hi))
        if rows.size:
            g = np.full(radius.size, np.nan)
            g[rows] = excess(guess[rows], rows)
            tighten(guess, g)
    # No guess reached R: try the largest double below 1, else R is out of reach.
    rows = np.flatnonzero(np.isnan(g_hi))
    if rows.size:
        g_hi[rows] = excess(p_hi[rows], rows)
    out = np.full(radius.size, np.inf)
    idx = np.flatnonzero(g_hi >= 0.0)
    p_lo, g_lo, p_hi, g_hi = p_lo[idx], g_lo[idx], p_hi[idx], g_hi[idx]

    retained = np.zeros(idx.size, dtype=np.int8)  # +1: hi kept last step, -1: lo kept
    active = np.arange(idx.size)
    for step in range(_MAX_STEPS):
        z_lo, z_hi = special.ndtri(p_lo[active]), special.ndtri(p_hi[active])
        open_ = z_hi - z_lo > _Z_RTOL * z_hi
        active, z_lo, z_hi = active[open_], z_lo[open_], z_hi[open_]
        if active.size == 0:
            break
        left, right = g_lo[active], g_hi[active]
        with np.errstate(invalid="ignore", divide="ignore"):
            guess = z_hi - right * (z_hi - z_lo) / (right - left)
        if step % 4 == 3:  # a bisection every fourth step bounds the worst case
            guess = np.full(active.size, np.nan)
        nudge = np.minimum(0.5 * _Z_RTOL * z_hi, 0.25 * (z_hi - z_lo))
        guess = np.where(np.isfinite(guess), guess, 0.5 * (z_lo + z_hi))
        p = special.ndtr(np.clip(guess, z_lo + nudge, z_hi - nudge))
        # Near p = 1 doubles are sparse in z: a guess that rounds onto an end tries the
        # double next to it, inside the bracket.
        p = np.where(p >= p_hi[active], np.nextafter(p_hi[active], 0.0), p)
        p = np.where(p <= p_lo[active], np.nextafter(p_lo[active], 1.0), p)
        adjacent = (p <= p_lo[active]) | (p >= p_hi[active])
        active, p, left, right = active[~adjacent], p[~adjacent], left[~adjacent], right[~adjacent]
        if active.size == 0:
            break
        g = excess(p, idx[active])
        up = g >= 0.0  # p reaches R: the new upper end
        keep_lo_again = up & (retained[active] == -1)
        keep_hi_again = ~up & (retained[active] == 1)
        p_hi[active] = np.where(up, p, p_hi[active])
        g_hi[active] = np.where(up, g, np.where(keep_hi_again, 0.5 * right, right))
        p_lo[active] = np.where(up, p_lo[active], p)
        g_lo[active] = np.where(up, np.where(keep_lo_again, 0.5 * left, left), g)
        retained[active] = np.where(up, -1, 1)
    out[idx] = p_hi
    return out


def budget_thresholds(thresholds: ArrayLike, n_max: int, level: float) -> FloatArray:
    """Smallest top-class rate ``k / n_max`` whose lower bound at ``n_max`` reaches each threshold.

    Parameters
    ----------
    thresholds : array_like
        :func:`radius_thresholds`: in ``(1/2, 1]`` or ``+inf``.
    n_max : int, ``>= 1``
        The last look of the schedule.
    level : float in ``(0, 1)``
        The lower bound's level there (``alpha / J`` for :class:`SequentialCertifier`).

    Returns
    -------
    ndarray, the shape of ``thresholds``
        ``k / n_max`` for the least integer ``k`` with
        ``clopper_pearson_lower(k, n_max, level) >= threshold``; ``+inf`` where even
        ``k = n_max`` falls short. Never below the threshold (the lower bound of a rate is
        below the rate).

    Notes
    -----
    With probability ``>= 1 - alpha`` the upper sequence holds at every look, so an upper bound
    below ``u = budget_thresholds(t, ...)`` shows ``p_A < u``: the radius is certified at
    ``n_max`` only if the count there exceeds its expectation ``p_A n_max``, which continuing to
    sample would rarely achieve. Stopping on it is the futility rule of sequential tests; it
    decides only when to stop, so every certificate keeps its guarantee.
    """
    limit = _check_thresholds(thresholds)
    total = int(check_count("n_max", n_max, minimum=1))
    level = _check_alpha(level)
    # one bisection per distinct threshold: inputs of one sigma share their grid's thresholds
    distinct, inverse = np.unique(limit, return_inverse=True)
    low = np.full(distinct.shape, -1.0)  # invariant: lower(low) < t <= lower(high)
    high = np.full(distinct.shape, float(total))
    reachable = clopper_pearson_lower(high, total, level) >= distinct
    for _ in range(int(np.ceil(np.log2(total + 1))) + 1):
        middle = np.floor((low + high) / 2)
        reaches = clopper_pearson_lower(np.maximum(middle, 0.0), total, level) >= distinct
        high, low = np.where(reaches, middle, high), np.where(reaches, low, middle)
    return np.where(reachable, high / total, np.inf)[inverse].reshape(limit.shape)


def settle(
    lower: ArrayLike, upper: ArrayLike, thresholds: ArrayLike
) -> tuple[BoolArray, BoolArray]:
    """Which grid radii a pair of bounds settles.

    Parameters
    ----------
    lower, upper : array_like, shape ``(...)``
        Lower and upper confidence bounds on ``p_A`` per input (e.g. the running extrema of
        :class:`SequentialCertifier`'s confidence sequence).
    thresholds : array_like, shape ``(..., K)``
        :func:`radius_thresholds` of each input's grid: in ``(1/2, 1]`` or ``+inf``.

    Returns
    -------
    certified, impossible : ndarray of bool, shape ``(..., K)``
        ``certified = lower >= threshold``; ``impossible = upper < threshold`` where not
        certified (the upper bound says ``p_A`` is below the threshold). Neither: unsettled.
        ``upper <= 1/2`` makes every radius impossible: the input abstains.
    """
    low = check_probability("lower", lower)
    high = check_probability("upper", upper)
    limit = _check_thresholds(thresholds)
    certified = low[..., None] >= limit
    return certified, ~certified & (high[..., None] < limit)


class SequentialResult(NamedTuple):
    """State of a sequential certification, per input (``K`` grid radii).

    Attributes
    ----------
    p_a_lower : ndarray, shape ``(inputs,)``
        Running maximum of the lower bounds up to the stopping (or latest) look: with
        probability ``>= 1 - alpha``, ``p_A >= p_a_lower``. 0 before the first look.
    p_a_upper : ndarray, shape ``(inputs,)``
        Running minimum of the upper bounds (used only to stop). 1 before the first look.
    n : ndarray of int64
        Samples used: the size of the stopping (or latest) look.
    look : ndarray of int64
        Index of that look in the schedule (-1 before the first).
    certified, impossible : ndarray of bool, shape ``(inputs, K)``
        :func:`settle` of ``p_a_lower`` and ``p_a_upper``.
    beyond_budget : ndarray of bool, shape ``(inputs, K)``
        Not certified, and ``p_a_upper`` below the :func:`budget_thresholds`: ``n_max``
        samples would not certify the radius either (includes ``impossible``).
    settled : ndarray of bool
        Every grid radius certified or beyond the budget: the input stopped before or at
        ``n_max`` because nothing was left to learn. ``False`` at ``n_max`` means some radii
        remain unsettled; ``certified`` is still the answer there.
    """

    p_a_lower: FloatArray
    p_a_upper: FloatArray
    n: IntArray
    look: IntArray
    certified: BoolArray
    impossible: BoolArray
    beyond_budget: BoolArray
    settled: BoolArray


class SequentialCertifier:
    """Sequential CERTIFY for a batch of inputs, each at its own look.

    The caller draws an active input's samples up to its :attr:`next_n`, passes its
    cumulative top-class count to :meth:`update`, and stops sampling the inputs that
    :attr:`active` no longer lists; inputs move through the schedule independently, so the
    samples of inputs at different looks can share forward passes::

        cert = SequentialCertifier(thresholds, look_schedule(100_000, step=100), alpha=0.001)
        counts = np.zeros(len(thresholds), dtype=np.int64)
        drawn = np.zeros(len(thresholds), dtype=np.int64)
        while not cert.finished:
            rows = np.flatnonzero(cert.active)
            target = cert.next_n[rows]
            # the caller's sampler: top-class votes in the new noise draws of each input
            counts[rows] += count_top_class(inputs[rows], target - drawn[rows])
            drawn[rows] = target
            cert.update(rows, counts[rows])
        result = cert.result()

    Parameters
    ----------
    thresholds : array_like, shape ``(inputs, K)``
        :func:`radius_thresholds` per input.
    looks : array_like of int, shape ``(J,)``
        The schedule (:func:`look_schedule`), fixed before any sample is drawn.
    alpha : float in ``(0, 1)``
        Bound on the probability that an input's ``p_a_lower`` exceeds its ``p_A``.
    stop_level : float in ``(0, 1)``
        Level of each look's upper bound, which only decides when an input stops.

    Notes
    -----
    At look ``j`` the lower bound is the one-sided Clopper-Pearson bound of the cumulative
    count at level ``alpha_j`` (:func:`look_levels`, ``sum_j alpha_j = alpha``). By the union
    bound over the ``J`` looks, with probability at least ``1 - alpha``

    .. math:: p_A \\ge \\mathrm{lower}_j \\quad \\text{for every look } j \\text{ simultaneously}.

    A simultaneous statement covers whichever look is reported, however it was chosen: the
    bound at a data-dependent stopping look, and the running maximum of the lower bounds kept
    here, are valid too. The upper bounds (level ``stop_level`` at each look, running minimum)
    only decide when to stop: if one errs, the input stops early with a smaller lower bound, a
    smaller radius that is still valid, so they cost no ``alpha``. Their level trades samples
    for how often an input stops short of a radius that ``n_max`` samples would have
    certified: at 0.01 per look the Fashion-MNIST default's certified accuracy stays within
    a point of fixed n (``bench/sequential.py``).

    An input stops at the first look where every grid radius is certified or beyond the budget
    (the upper bound below :func:`budget_thresholds` at ``n_max = looks[-1]`` and the last
    look's level), which covers abstaining (an upper bound ``<= 1/2`` puts every radius beyond
    it), or at the last look.
    """

    def __init__(
        self, thresholds: ArrayLike, looks: ArrayLike, alpha: float, stop_level: float = STOP_LEVEL
    ) -> None:
        limit = _check_thresholds(thresholds)
        if limit.ndim != 2:
            raise ValueError(f"thresholds must have shape (inputs, K), got {limit.shape}")
        self._thresholds = limit
        self._looks = _check_looks(looks).astype(np.int64)
        self._levels = look_levels(self._looks, _check_alpha(alpha))
        self._stop_level = _check_alpha(stop_level)
        self._budget = budget_thresholds(limit, int(self._looks[-1]), float(self._levels[-1]))
        inputs, radii = limit.shape
        self._count = np.zeros(inputs, dtype=np.int64)
        self._lower = np.zeros(inputs)
        self._upper = np.ones(inputs)
        self._look = np.full(inputs, -1, dtype=np.int64)
        self._active = np.ones(inputs, dtype=bool)
        self._certified = np.zeros((inputs, radii), dtype=bool)
        self._impossible = np.zeros((inputs, radii), dtype=bool)
        self._beyond_budget = np.zeros((inputs, radii), dtype=bool)

    @property
    def finished(self) -> bool:
        """No input is active: each is settled or has made the last look."""
        return not self._active.any()

    @property
    def active(self) -> BoolArray:
        """Inputs that still need samples (a copy)."""
        return self._active.copy()

    @property
    def next_n(self) -> IntArray:
        """Per input, the samples it must have in total at its next :meth:`update` (its last
        look's size where it is no longer active)."""
        following = np.minimum(self._look + self._active, self._looks.size - 1)
        return self._looks[following]

    def update(self, rows: ArrayLike, n_success: ArrayLike) -> None:
        """Take the cumulative counts of the active inputs ``rows`` at their next look.

        Parameters
        ----------
        rows : array_like of int, shape ``(m,)``
            Distinct active inputs, each at :attr:`next_n` samples.
        n_success : array_like of int, shape ``(m,)``
            Their cumulative top-class counts.
        """
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        counts = np.asarray(n_success)
        if counts.shape != rows.shape:
            raise ValueError(f"n_success must have shape {rows.shape}, got {counts.shape}")
        if rows.size and (rows.min() < 0 or rows.max() >= self._active.size):
            raise ValueError(f"rows must lie in [0, {self._active.size}), got {rows.tolist()}")
        if np.unique(rows).size != rows.size or not self._active[rows].all():
            raise ValueError("rows must be distinct active inputs")
        k = check_count("n_success", counts).astype(np.int64)
        j = self._look[rows] + 1
        drawn = self._looks[j] - np.where(j > 0, self._looks[np.maximum(j - 1, 0)], 0)
        previous = self._count[rows]
        if ((k < previous) | (k - previous > drawn)).any():
            raise ValueError(
                "n_success must be cumulative: between the previous count and the samples "
                "drawn since"
            )
        level = self._levels[j]
        lower = clopper_pearson_lower(k, self._looks[j], level)
        upper = clopper_pearson_upper(k, self._looks[j], self._stop_level)
        self._count[rows] = k
        self._lower[rows] = np.maximum(self._lower[rows], lower)
        self._upper[rows] = np.minimum(self._upper[rows], upper)
        self._look[rows] = j
        certified, impossible = settle(self._lower[rows], self._upper[rows], self._thresholds[rows])
        beyond_budget = ~certified & (self._upper[rows, None] < self._budget[rows])
        self._certified[rows] = certified
        self._impossible[rows] = impossible
        self._beyond_budget[rows] = beyond_budget
        self._active[rows] = ~(certified | beyond_budget).all(axis=1) & (j < self._looks.size - 1)

    def result(self) -> SequentialResult:
        """The state after the looks made so far (final once :attr:`finished`)."""
        n = np.where(self._look >= 0, self._looks[np.maximum(self._look, 0)], 0)
        return SequentialResult(
            p_a_lower=self._lower.copy(),
            p_a_upper=self._upper.copy(),
            n=n.astype(np.int64),
            look=self._look.copy(),
            certified=self._certified.copy(),
            impossible=self._impossible.copy(),
            beyond_budget=self._beyond_budget.copy(),
            settled=(self._certified | self._beyond_budget).all(axis=1),
        )
