"""The Renyi-divergence radius of Theorem 14 (IDRS paper, Appendix B.1; Li et al. 2019)."""

import numpy as np
import pytest
from scipy import integrate, optimize, special, stats

from idrs_lightning.certification import cohen_radius, renyi_radius
from idrs_lightning.certification.renyi import zero_distance_divergence


def _brute_squared(sigma0, sigma1, dim, p_a, p_b, alpha):
    """Theorem 14's bracket, written as printed in the paper, at the orders ``alpha``."""
    q = 1.0 - alpha
    log_mean = (np.logaddexp(q * np.log(p_a), q * np.log(p_b)) - np.log(2.0)) / q
    budget = -np.log(1.0 - p_a - p_b + 2.0 * np.exp(log_mean))
    sigma_alpha2 = (1.0 - alpha) * sigma1**2 + alpha * sigma0**2
    per_dim = (0.5 * np.log(sigma_alpha2 / sigma1**2) - alpha * np.log(sigma0 / sigma1)) / (
        1.0 - alpha
    )
    return 2.0 * sigma_alpha2 / alpha * (budget - dim * per_dim)


def _brute_radius(sigma0, sigma1, dim, p_a, p_b=None):
    """Dense grid over alpha > 1, scipy's bounded search around its best point, alpha -> 1."""
    p_b = 1.0 - p_a if p_b is None else p_b
    log_u = np.linspace(np.log(1e-7), np.log(1e5), 40001)
    if sigma1 > sigma0:
        log_u = log_u[np.exp(log_u) < 0.999 * sigma0**2 / (sigma1**2 - sigma0**2)]

    def value(x):
        return _brute_squared(sigma0, sigma1, dim, p_a, p_b, 1.0 + np.exp(x))

    values = value(log_u)
    i = int(np.argmax(values))
    lo, hi = log_u[max(i - 1, 0)], log_u[min(i + 1, log_u.size - 1)]
    res = optimize.minimize_scalar(
        lambda x: -value(x), bounds=(lo, hi), method="bounded", options={"xatol": 1e-12}
    )
    # The limit alpha -> 1: M_0 is the geometric mean and the divergence per dimension is the
    # Kullback-Leibler divergence log(sigma0 / sigma1) + sigma1^2 / (2 sigma0^2) - 1/2.
    budget_1 = -np.log(1.0 - p_a - p_b + 2.0 * np.sqrt(p_a * p_b))
    kl = np.log(sigma0 / sigma1) + sigma1**2 / (2 * sigma0**2) - 0.5
    limit_1 = 2.0 * sigma0**2 * (budget_1 - dim * kl)  # sigma_alpha = sigma0 at alpha = 1
    return np.sqrt(max(values[i], -res.fun, limit_1, 0.0))


@pytest.mark.parametrize("sigma", [0.25, 1.0, 3.0])
@pytest.mark.parametrize("p_a", [0.55, 0.7, 0.9, 0.99, 0.999, 0.99999])
def test_equal_sigmas_match_li_et_al(sigma: float, p_a: float) -> None:
    # sigma0 == sigma1: Li et al.'s R^2 = sup_{alpha > 1} (2 sigma^2 / alpha) budget(alpha),
    # independent of the dimension.
    ref = _brute_radius(sigma, sigma, 1, p_a)
    got = renyi_radius(sigma, sigma, [1, 100, 10**6], p_a)
    assert ref > 0
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    assert np.all(got <= ref * (1 + 1e-12))


@pytest.mark.parametrize(("p_a", "p_b"), [(0.8, 0.1), (0.9, 1e-4), (0.6, 0.3), (0.99, 1e-9)])
def test_equal_sigmas_with_runner_up_bound(p_a: float, p_b: float) -> None:
    ref = _brute_radius(1.0, 1.0, 1, p_a, p_b)
    got = float(renyi_radius(1.0, 1.0, 5, p_a, p_b))
    assert got == pytest.approx(ref, rel=1e-6)
    assert got <= ref * (1 + 1e-12)


@pytest.mark.parametrize(
    ("sigma0", "sigma1", "dim", "p_a"),
    [(1.0, 0.8, 1, 0.99), (1.0, 0.8, 20, 0.99), (1.0, 1.2, 3, 0.999), (2.0, 1.9, 10, 0.9)],
)
def test_two_sigmas_match_theorem_14_as_printed(sigma0, sigma1, dim, p_a) -> None:
    ref = _brute_radius(sigma0, sigma1, dim, p_a)
    got = float(renyi_radius(sigma0, sigma1, dim, p_a))
    assert ref > 0
    assert got == pytest.approx(ref, rel=1e-6)
    assert got <= ref * (1 + 1e-12)


@pytest.mark.parametrize(
    ("sigma1", "alpha"), [(0.8, 1.5), (0.8, 30.0), (1.2, 1.0 + 1e-3), (1.2, 3.0)]
)
def test_divergence_at_zero_distance_is_lemma_10(sigma1: float, alpha: float) -> None:
    # 1-D Renyi divergence D_alpha(N(0, sigma1^2) || N(0, 1)) by quadrature.
    def integrand(x):
        return np.exp(alpha * stats.norm.logpdf(x, 0, sigma1) + (1 - alpha) * stats.norm.logpdf(x))

    mass, _ = integrate.quad(integrand, -60, 60, epsabs=0, epsrel=1e-13, limit=200)
    ref = np.log(mass) / (alpha - 1)
    t = 1 - sigma1**2
    got = zero_distance_divergence(np.array(alpha - 1), np.array(t), -t - np.log1p(-t))
    assert float(got) == pytest.approx(ref, rel=1e-8)
    assert got >= 0


def test_curse_of_dimensionality_figure_11() -> None:
    dims = np.array([1, 2, 5, 10, 20, 30, 40, 50, 100, 1000, 10**5])
    for sigma1 in (0.8, 1.25):
        radius = renyi_radius(1.0, sigma1, dims, 0.99)
        assert radius[0] > 0
        assert radius[-2] == 0 and radius[-1] == 0
        assert np.all(np.diff(radius) <= 0)
    # Dense check of monotonicity in N.
    radius = renyi_radius(1.0, 0.9, np.arange(1, 1000), 0.999)
    assert radius[0] > 0 and radius[-1] == 0
    assert np.all(np.diff(radius) <= 0)


@pytest.mark.parametrize(
    ("sigma0", "sigma1", "dim"), [(1.0, 1.0, 1), (1.0, 0.9, 10), (0.5, 0.55, 4)]
)
def test_monotone_in_p_a(sigma0: float, sigma1: float, dim: int) -> None:
    p_a = np.linspace(0.3, 1 - 1e-9, 401)
    radius = renyi_radius(sigma0, sigma1, dim, p_a)
    assert np.all(np.diff(radius) >= 0)
    assert np.all(radius[p_a <= 0.5] == 0)
    assert radius[-1] > 0


def test_never_above_cohen_for_equal_sigmas() -> None:
    p_a = np.concatenate([np.linspace(0.5 + 1e-6, 0.999, 300), 1 - np.logspace(-4, -14, 30)])
    for sigma in (0.3, 1.0, 2.0):
        renyi = renyi_radius(sigma, sigma, 10, p_a)
        cohen = sigma * special.ndtri(p_a)
        assert np.all(renyi > 0)
        assert np.all(renyi <= cohen)


def test_runner_up_bound() -> None:
    # p_b above 1 - p_a is lowered to it; a smaller p_b can only help; p_a <= p_b abstains.
    default = renyi_radius(1.0, 0.9, 3, 0.9)
    assert renyi_radius(1.0, 0.9, 3, 0.9, 0.5) == default
    assert renyi_radius(1.0, 0.9, 3, 0.9, 0.01) > default
    assert renyi_radius(1.0, 0.9, 3, 0.9, 0.0) >= renyi_radius(1.0, 0.9, 3, 0.9, 1e-6)
    assert renyi_radius(1.0, 1.0, 1, 0.4, 0.4) == 0
    assert renyi_radius(1.0, 1.0, 1, 0.4, 0.3) > 0
    # p_b = 0 and sigma0 == sigma1: the supremum is at alpha -> 1, R^2 = -2 sigma^2 log(1 - p_a).
    ref = np.sqrt(-2 * np.log(0.1))
    got = float(renyi_radius(1.0, 1.0, 1, 0.9, 0.0))
    assert got == pytest.approx(ref, rel=1e-7)
    assert got <= ref
    # Li et al. never beats Cohen's bound with p_b either.
    p_a = np.linspace(0.4, 0.999, 40)[:, None]
    p_b = np.logspace(-8, np.log10(0.5), 30)[None, :]
    assert np.all(renyi_radius(1.0, 1.0, 1, p_a, p_b) <= cohen_radius(1.0, p_a, p_b))


def test_scales_with_sigma() -> None:
    base = renyi_radius(1.0, [0.8, 1.0, 1.1], 7, 0.95)
    np.testing.assert_allclose(renyi_radius(3.0, [2.4, 3.0, 3.3], 7, 0.95), 3 * base, rtol=1e-9)


def test_broadcasting() -> None:
    assert renyi_radius(1.0, 0.9, 2, 0.9).shape == ()
    got = renyi_radius(1.0, [[0.9], [1.0], [1.1]], [1, 2, 5, 10], 0.99)
    assert got.shape == (3, 4)
    assert got.dtype == np.float64
    for i, s1 in enumerate([0.9, 1.0, 1.1]):
        for j, n in enumerate([1, 2, 5, 10]):
            assert got[i, j] == renyi_radius(1.0, s1, n, 0.99)
    got = renyi_radius([1.0, 2.0], 1.0, 1, [[0.9], [0.99]], [[0.05], [0.001]])
    assert got.shape == (2, 2)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"p_a": 0.0}, "p_a"),
        ({"p_a": 1.0}, "p_a"),
        ({"p_a": -0.2}, "p_a"),
        ({"p_a": [0.9, 1.5]}, "p_a"),
        ({"p_a": np.nan}, "p_a"),
        ({"sigma0": -1.0}, "sigma0"),
        ({"sigma0": 0.0}, "sigma0"),
        ({"sigma1": -0.5}, "sigma1"),
        ({"sigma1": np.inf}, "sigma1"),
        ({"dim": 0}, "dim"),
        ({"dim": 2.5}, "dim"),
        ({"p_b": 1.0}, "p_b"),
        ({"p_b": -0.1}, "p_b"),
    ],
)
def test_bad_arguments_raise(kwargs: dict, name: str) -> None:
    args = {"sigma0": 1.0, "sigma1": 0.9, "dim": 3, "p_a": 0.9, "p_b": None} | kwargs
    with pytest.raises(ValueError, match=name):
        renyi_radius(**args)
