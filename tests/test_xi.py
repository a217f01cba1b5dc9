"""xi_> and xi_< (Theorem 3): limits, continuity, monotonicity, central case, curse."""

import numpy as np
import pytest
from scipy import stats

from idrs_lightning.certification import curse_threshold, xi_greater, xi_less

DIMS = [1, 2, 60, 784, 3072, 150528]


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("p_a", [0.6, 0.99, 0.99999])
def test_tend_to_half_space_as_sigma1_tends_to_sigma0(dim: int, p_a: float) -> None:
    a = np.array([0.01, 0.3, 1.0, 2.5])
    cohen = stats.norm.cdf(a / 0.5 - stats.norm.ppf(p_a))
    for fn, sigma1 in ((xi_greater, 0.5 * (1 - 1e-12)), (xi_less, 0.5 * (1 + 1e-12))):
        np.testing.assert_allclose(fn(a, 0.5, sigma1, dim, p_a), cohen, rtol=1e-6)
        np.testing.assert_allclose(fn(a, 0.5, 0.5, dim, p_a), cohen, rtol=1e-10)


@pytest.mark.parametrize("dim", DIMS)
def test_continuous_at_zero_distance(dim: int) -> None:
    for fn, sigma1 in ((xi_greater, 0.97), (xi_less, 1.03)):
        at_zero = fn(0.0, 1.0, sigma1, dim, 0.999)
        near_zero = fn(1e-9, 1.0, sigma1, dim, 0.999)
        assert near_zero == pytest.approx(at_zero, rel=1e-6)


@pytest.mark.parametrize("dim", [2, 60, 3072])
def test_central_case_matches_chi_square(dim: int) -> None:
    # a = 0: the worst-case sets are centred balls; scipy's central chi-square is accurate.
    p_a = 0.99
    s_small, s_large = 0.9, 1.1
    q_b = stats.chi2.ppf(1 - p_a, dim)
    q_a = stats.chi2.ppf(p_a, dim)
    assert xi_greater(0.0, 1.0, s_small, dim, p_a) == pytest.approx(
        stats.chi2.cdf(q_b / s_small**2, dim), rel=1e-9
    )
    assert xi_less(0.0, 1.0, s_large, dim, p_a) == pytest.approx(
        stats.chi2.sf(q_a / s_large**2, dim), rel=1e-9
    )


@pytest.mark.parametrize("dim", [2, 10])
def test_matches_scipy_noncentral_formula_in_its_comfort_zone(dim: int) -> None:
    # Theorem 3 through scipy.stats.ncx2, where its non-centralities are small.
    a, sigma0, p_a = 0.7, 1.0, 0.95
    for sigma1 in (0.5, 0.8):
        nc0 = sigma0**2 * a**2 / (sigma0**2 - sigma1**2) ** 2
        nc1 = sigma1**2 * a**2 / (sigma0**2 - sigma1**2) ** 2
        expected = stats.ncx2.cdf(
            sigma0**2 / sigma1**2 * stats.ncx2.ppf(1 - p_a, dim, nc0), dim, nc1
        )
        assert xi_greater(a, sigma0, sigma1, dim, p_a) == pytest.approx(expected, rel=1e-7)
    for sigma1 in (1.5, 2.0):
        nc0 = sigma0**2 * a**2 / (sigma1**2 - sigma0**2) ** 2
        nc1 = sigma1**2 * a**2 / (sigma1**2 - sigma0**2) ** 2
        expected = stats.ncx2.sf(sigma0**2 / sigma1**2 * stats.ncx2.ppf(p_a, dim, nc0), dim, nc1)
        assert xi_less(a, sigma0, sigma1, dim, p_a) == pytest.approx(expected, rel=1e-7)


@pytest.mark.parametrize("dim", [2, 784, 150528])
def test_non_decreasing_in_distance_lemma_20(dim: int) -> None:
    a = np.linspace(0.0, 3.0, 31)
    for fn, sigma1 in ((xi_greater, 0.995), (xi_less, 1.005)):
        values = fn(a, 1.0, sigma1, dim, 0.99)
        assert np.all(np.diff(values) >= -1e-12), values


@pytest.mark.parametrize("dim", [784, 3072])
def test_curse_region_certifies_nothing_theorem_4(dim: int) -> None:
    p_a = 0.999
    ratio = float(curse_threshold(dim, p_a)) * 0.999
    assert xi_greater(0.0, 1.0, ratio, dim, p_a) > 0.5


def test_wrong_side_and_bad_values() -> None:
    with pytest.raises(ValueError, match="xi_greater needs sigma1 <= sigma0"):
        xi_greater(0.1, 1.0, 1.1, 10, 0.9)
    with pytest.raises(ValueError, match="xi_less needs sigma1 >= sigma0"):
        xi_less(0.1, 1.0, 0.9, 10, 0.9)
    with pytest.raises(ValueError, match="a must lie in"):
        xi_less(-0.1, 1.0, 1.1, 10, 0.9)


def test_quantile_never_steps_past_the_top_of_the_range() -> None:
    # The p_b-ball here is a sliver just below sup S; a step past sup gave xi = 0 (certified)
    # where Theorem 3 gives 1 - 7.6e-12 (mpmath reference, tests/reference).
    assert xi_greater(5.570175, 1.0, 1e-6, 1, 1 - 1e-12) == pytest.approx(0.999999999992413)


@pytest.mark.parametrize(
    ("a", "ratio", "dim", "p_a", "expected"),
    [
        # Tiny worst-case balls (p_b = 1e-12 near the P_0 mode): tau alone cannot resolve them.
        # Expected values: tests/reference/mpmath_reference.py, xi_greater at 40 digits.
        (0.3, 0.5, 1, 1 - 1e-12, 2.12362611378892e-12),
        (0.3, 0.5, 3, 1 - 1e-9, 8.4946726333921e-9),
        (5.0, 0.2, 1, 1 - 1e-12, 2.25858512384135e-6),
        (5.0, 0.2, 2, 1 - 1e-12, 1.1292820309181e-5),
    ],
)
def test_small_worst_case_balls(a, ratio, dim, p_a, expected) -> None:
    assert xi_greater(a, 1.0, ratio, dim, p_a) == pytest.approx(expected, rel=1e-9)
