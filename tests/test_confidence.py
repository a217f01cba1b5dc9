"""Clopper-Pearson bounds and the abstain test against scipy's and mpmath's exact binomials."""

import mpmath
import numpy as np
import pytest
from scipy import stats

from idrs_lightning.certification import (
    binomial_abstain_test,
    clopper_pearson_lower,
    clopper_pearson_upper,
)

CASES = [(0, 10), (1, 10), (5, 10), (10, 10), (99_800, 100_000), (100_000, 100_000), (3, 7)]


@pytest.mark.parametrize(("k", "n"), CASES)
def test_bounds_match_scipy_exact_interval(k: int, n: int) -> None:
    # scipy's two-sided exact interval at confidence 1 - 2 alpha has one-sided alpha ends.
    alpha = 0.001
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=1 - 2 * alpha, method="exact")
    assert clopper_pearson_lower(k, n, alpha) == pytest.approx(ci.low, rel=1e-9, abs=1e-14)
    assert clopper_pearson_upper(k, n, alpha) == pytest.approx(ci.high, rel=1e-9)


@pytest.mark.parametrize(("k", "n"), [(1, 10), (7, 20), (9_990, 10_000), (1, 10**6), (2, 10**5)])
def test_bounds_are_conservative_by_the_exact_tail_probability(k: int, n: int) -> None:
    # Defining property: at p = lower bound, P(X >= k) = alpha, and at p = upper bound,
    # P(X <= k) = alpha (binomial sums in 40 digits). Rounding may only move the bounds
    # outward, where these tails are smaller than alpha, and only slightly.
    alpha = 0.01
    lower = mpmath.mpf(float(clopper_pearson_lower(k, n, alpha)))
    upper = mpmath.mpf(float(clopper_pearson_upper(k, n, alpha)))
    with mpmath.workdps(40):
        at_lower = mpmath.betainc(k, n - k + 1, 0, lower, regularized=True)  # P(X >= k | p)
        at_upper = mpmath.betainc(k + 1, n - k, upper, 1, regularized=True)  # P(X <= k | p)
    for tail in (at_lower, at_upper):
        assert alpha * (1 - 1e-5) <= float(tail) <= alpha


def test_edge_counts() -> None:
    assert clopper_pearson_lower(0, 50, 0.01) == 0.0
    assert clopper_pearson_upper(50, 50, 0.01) == 1.0
    # k = n: lower bound solves p^n = alpha.
    exact = 0.01 ** (1 / 50)
    assert exact - 1e-10 * (1 - exact) - 2e-15 <= clopper_pearson_lower(50, 50, 0.01) < exact


def test_vectorised_matches_scalar() -> None:
    k = np.array([0, 5, 90, 100])
    lows = clopper_pearson_lower(k, 100, 0.05)
    assert lows.shape == (4,)
    assert all(lows[i] == clopper_pearson_lower(int(k[i]), 100, 0.05) for i in range(4))
    assert np.all(np.diff(lows) > 0), "bound must increase with the success count"


@pytest.mark.parametrize(
    ("n_a", "n_b"), [(60, 40), (58, 42), (50, 50), (0, 0), (1000, 0), (7, 3), (3, 7), (520, 480)]
)
def test_abstain_test_matches_binomtest(n_a: int, n_b: int) -> None:
    alpha = 0.05
    if n_a + n_b == 0:
        assert bool(binomial_abstain_test(n_a, n_b, alpha))
        return
    p_value = stats.binomtest(n_a, n_a + n_b, 0.5).pvalue
    assert bool(binomial_abstain_test(n_a, n_b, alpha)) == (p_value > alpha)


def test_abstain_test_vectorised() -> None:
    n_a = np.arange(40, 70)
    n_b = 100 - n_a
    expected = [stats.binomtest(a, 100, 0.5).pvalue > 0.01 for a in n_a]
    assert binomial_abstain_test(n_a, n_b, 0.01).tolist() == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_success": 11, "n": 10, "alpha": 0.1}, "n_success must not exceed n"),
        ({"n_success": -1, "n": 10, "alpha": 0.1}, "n_success must lie in"),
        ({"n_success": 1.5, "n": 10, "alpha": 0.1}, "n_success must be a whole number"),
        ({"n_success": 1, "n": 0, "alpha": 0.1}, "n must lie in"),
        ({"n_success": 1, "n": 10, "alpha": 1.0}, r"alpha must lie in \(0.0, 1.0\)"),
        ({"n_success": 1, "n": 10, "alpha": float("nan")}, "alpha contains NaN"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        clopper_pearson_lower(**kwargs)
