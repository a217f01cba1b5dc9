"""The IDRS radius with a separate runner-up bound p_b (Appendix B.5, idrs_radius(..., p_b)); its
soundness against the mpmath reference is in tests/slow/test_runner_up_reference.py."""

import mpmath
import numpy as np
import pytest

from idrs_lightning.certification import cohen_radius, idrs_radius
from idrs_lightning.certification.runner_up import runner_up_unit_radius, scale_total_variation


@pytest.mark.parametrize("dim", [1, 3, 50, 3072])
@pytest.mark.parametrize("log_ratio", [1e-6, 1e-3, 0.1, 1.0])
def test_total_variation_bounds_the_integral_of_the_density_difference(
    dim: int, log_ratio: float
) -> None:
    # TV = 1/2 int |f(s) - f(s / rho^2) / rho^2| ds over the chi-square density of ||Z||^2
    mpmath.mp.dps = 30
    rho2 = mpmath.exp(2 * mpmath.mpf(log_ratio))
    k = mpmath.mpf(dim) / 2

    def chi2_pdf(s: mpmath.mpf) -> mpmath.mpf:
        return mpmath.exp((k - 1) * mpmath.log(s) - s / 2 - k * mpmath.log(2) - mpmath.loggamma(k))

    def gap(s: mpmath.mpf) -> mpmath.mpf:
        return abs(chi2_pdf(s) - chi2_pdf(s / rho2) / rho2)

    centre, spread = mpmath.mpf(dim), 40 * mpmath.sqrt(2 * dim) + 60 * rho2
    crossing = dim * 2 * log_ratio * rho2 / (rho2 - 1)
    points = sorted({mpmath.mpf(0), crossing, max(centre - spread, 0), centre + spread * rho2})
    exact = mpmath.quad(gap, points) / 2
    bound = scale_total_variation(np.array(log_ratio), np.array(dim))
    assert float(exact) <= bound <= float(exact) + 1e-10
    assert scale_total_variation(np.array(-log_ratio), np.array(dim)) == bound


def test_r_zero_is_cohens_two_sided_radius() -> None:
    p_a = np.array([0.4, 0.6, 0.9, 0.999])
    p_b = np.array([0.3, 0.1, 0.05, 1e-6])
    np.testing.assert_array_equal(
        idrs_radius(0.5, 0.0, 3072, p_a, p_b), cohen_radius(0.5, p_a, p_b)
    )


@pytest.mark.parametrize("dim", [2, 784, 3072])
def test_p_b_equal_to_one_minus_p_a_matches_theorem_7(dim: int) -> None:
    # Two code paths: the median budget of Theorem 7 against the two-set margin plus the
    # total-variation check, which coincide when p_b = 1 - p_a.
    p_a = np.array([0.6, 0.9, 0.99, 0.99999])
    p_b = 1.0 - p_a
    rho = np.full(p_a.shape, 0.3)
    theorem_7 = idrs_radius(1.0, 0.3, dim, p_a)
    two_set = runner_up_unit_radius(rho, np.full(p_a.shape, dim), p_a, p_b, np.zeros(4))
    assert np.all(two_set <= theorem_7 * (1.0 + 1e-8))
    assert np.all(two_set >= theorem_7 * (1.0 - 3e-6))
    np.testing.assert_array_equal(idrs_radius(1.0, 0.3, dim, p_a, p_b), theorem_7)


@pytest.mark.parametrize("dim", [2, 60, 784, 3072])
def test_between_the_p_a_only_radius_and_cohens(dim: int) -> None:
    p_a = np.array([0.55, 0.7, 0.9, 0.99, 0.999])
    p_b = np.array([0.3, 0.1, 0.02, 1e-3, 1e-6])
    radius = idrs_radius(0.25, 0.2, dim, p_a, p_b)
    assert np.all(radius >= idrs_radius(0.25, 0.2, dim, p_a))
    assert np.all(radius <= cohen_radius(0.25, p_a, p_b))
    assert np.all(radius > idrs_radius(0.25, 0.2, dim, p_a) * 1.01)  # a real gain


def test_monotone_in_p_b_and_r() -> None:
    p_b = np.array([0.3, 0.1, 0.01, 1e-4, 1e-8])
    by_p_b = idrs_radius(1.0, 0.05, 784, 0.7, p_b)
    assert np.all(np.diff(by_p_b) >= 0.0)
    by_r = idrs_radius(1.0, np.array([0.0, 0.01, 0.05, 0.2, 1.0]), 784, 0.7, 0.01)
    assert np.all(np.diff(by_r) <= 0.0)


def test_multi_class_input_with_p_a_below_one_half_is_certified() -> None:
    # Theorem 7 with p_b = 1 - p_a abstains below 1/2; a separate runner-up bound certifies.
    assert idrs_radius(0.5, 0.01, 3072, 0.45) == 0.0
    radius = idrs_radius(0.5, 0.01, 3072, 0.45, 0.2)
    assert 0.0 < radius <= cohen_radius(0.5, 0.45, 0.2)
    assert idrs_radius(0.5, 0.01, 3072, 0.3, 0.3) == 0.0  # tie: abstain


def test_scale_invariance() -> None:
    for sigma0 in (0.12, 0.5, 3.0):
        np.testing.assert_allclose(
            idrs_radius(sigma0, 0.02, 784, 0.8, 0.05),
            sigma0 * idrs_radius(1.0, 0.02 * sigma0, 784, 0.8, 0.05),
            rtol=1e-12,
        )


def test_p_b_above_one_minus_p_a_is_lowered_not_rejected() -> None:
    # Clopper-Pearson bounds of the two counts can sum above 1; 1 - p_a bounds p_b anyway.
    assert idrs_radius(1.0, 0.1, 60, 0.8, 0.3) == idrs_radius(1.0, 0.1, 60, 0.8)


@pytest.mark.parametrize(
    ("p_b", "message"), [(np.nan, "p_b contains NaN"), (-0.1, "p_b must lie"), (1.0, "p_b must")]
)
def test_bad_p_b_names_the_argument(p_b: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        idrs_radius(1.0, 0.1, 60, 0.8, p_b)


def test_margin_too_small_to_resolve_falls_back_within_the_bounds() -> None:
    # Probabilities of ~1e-5 across sigma1: the additive bound cannot resolve the margin at
    # the nearly exact radius, so a shorter radius (or the p_a-only one) is verified instead.
    radius = idrs_radius(1.0, 0.0049, 10, 0.5433, 2.9e-17)
    assert idrs_radius(1.0, 0.0049, 10, 0.5433) < radius <= cohen_radius(1.0, 0.5433, 1e-15)
