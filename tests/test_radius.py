"""IDRS certified radius (Theorem 7): theorems, limits, soundness and bad input."""

import itertools

import numpy as np
import pytest

from idrs_lightning.certification import cohen_radius, idrs_radius, xi_greater, xi_less

P_A = np.array([0.51, 0.6, 0.9, 0.99, 0.999, 0.99993, 1 - 1e-9])
SETTINGS = [(2, 0.5), (60, 0.05), (784, 0.02), (3072, 0.01), (3072, 0.0012), (150528, 0.001)]


def _worst_xi(radius: np.ndarray, r: float, dim: int, p_a: np.ndarray) -> np.ndarray:
    """max(xi_>, xi_<) at distance R with the extreme sigma1 of an r-semi-elastic sigma."""
    below = xi_greater(radius, 1.0, np.exp(-r * radius), dim, p_a)
    above = xi_less(radius, 1.0, np.exp(r * radius), dim, p_a)
    return np.maximum(below, above)


def test_r_zero_is_exactly_cohen() -> None:
    sigma = np.array([0.12, 0.25, 0.5, 1.0])[:, None]
    assert np.array_equal(idrs_radius(sigma, 0.0, 3072, P_A), cohen_radius(sigma, P_A))


@pytest.mark.parametrize(("dim", "r"), SETTINGS)
def test_never_exceeds_cohen_theorem_15(dim: int, r: float) -> None:
    for sigma0 in (0.12, 0.5, 2.0):
        ours = idrs_radius(sigma0, r, dim, P_A)
        assert np.all(ours <= cohen_radius(sigma0, P_A)), (sigma0, ours)
        assert np.all(ours > 0)


@pytest.mark.parametrize(("dim", "r"), SETTINGS)
def test_radius_is_where_the_paper_xi_cross_one_half(dim: int, r: float) -> None:
    # Soundness through a second code path: the xi of Theorem 3 (quantile at p_b, then tail)
    # are below 1/2 just inside the returned radius and above it just outside.
    p_a = P_A[1:-1]
    radius = idrs_radius(1.0, r, dim, p_a)
    assert np.all(_worst_xi(radius * (1 - 1e-7), r, dim, p_a) < 0.5)
    assert np.all(_worst_xi(radius * (1 + 1e-5), r, dim, p_a) > 0.5)


def test_r_to_zero_limit_is_cohen() -> None:
    gaps = [
        np.abs(idrs_radius(0.25, r, 3072, P_A[:-1]) / cohen_radius(0.25, P_A[:-1]) - 1)
        for r in (1e-2, 1e-3, 1e-5, 1e-7)
    ]
    assert all(np.all(a >= b) for a, b in itertools.pairwise(gaps)), gaps
    assert np.all(gaps[-1] < 1e-4), gaps[-1]


@pytest.mark.parametrize(("dim", "r"), SETTINGS)
def test_monotone_in_r_and_p_a(dim: int, r: float) -> None:
    rates = r * np.array([0.25, 0.5, 1.0, 2.0, 4.0])
    radii = idrs_radius(1.0, rates[:, None], dim, P_A[None, :])
    assert np.all(np.diff(radii, axis=0) <= 1e-9 * radii[:-1]), "must not grow with r"
    assert np.all(np.diff(radii, axis=1) >= 0), "must not shrink with p_a"


@pytest.mark.parametrize("sigma0", [0.12, 0.5, 3.0])
def test_scale_invariance(sigma0: float) -> None:
    r, dim = 0.01, 3072
    lhs = idrs_radius(sigma0, r, dim, P_A)
    rhs = sigma0 * idrs_radius(1.0, r * sigma0, dim, P_A)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12)


def test_imagenet_dimension_is_finite_and_below_cohen() -> None:
    dim = 3 * 224 * 224
    radius = idrs_radius(0.5, 0.001, dim, P_A)
    assert np.all(np.isfinite(radius)) and np.all(radius > 0)
    assert np.all(radius < cohen_radius(0.5, P_A))
    p_a = P_A[1:-1]
    unit = idrs_radius(1.0, 0.0005, dim, p_a)
    assert np.all(_worst_xi(unit * (1 - 1e-7), 0.0005, dim, p_a) < 0.5)
    assert np.all(_worst_xi(unit * (1 + 1e-5), 0.0005, dim, p_a) > 0.5)


def test_abstain_and_certain_inputs_mid_batch() -> None:
    p_a = np.array([0.3, 0.5, 0.7, 1.0])
    radius = idrs_radius(0.25, 0.01, 784, p_a)
    assert radius[0] == 0.0 and radius[1] == 0.0
    assert 0 < radius[2] < np.inf
    assert radius[3] == np.inf  # P_0(B) = 0: the worst-case class B is empty


def test_broadcasting_matches_elementwise() -> None:
    sigma0 = np.array([0.1, 0.2, 0.4])
    p_a = np.array([0.7, 0.95, 0.999])
    batch = idrs_radius(sigma0, 0.01, 784, p_a)
    single = [float(idrs_radius(s, 0.01, 784, p)) for s, p in zip(sigma0, p_a, strict=True)]
    np.testing.assert_array_equal(batch, single)
    assert idrs_radius(sigma0[:, None], 0.01, 784, p_a[None, :]).shape == (3, 3)


def test_tiny_p_b_rounds_down() -> None:
    # p_b below 1e-15 is evaluated at 1e-15: the radius may only shrink.
    p_a = np.nextafter(1.0, 0.0)  # p_b = 1.1e-16
    extreme = idrs_radius(1.0, 0.001, 784, p_a)
    at_floor = idrs_radius(1.0, 0.001, 784, 1 - 1e-15)
    assert extreme == at_floor
    assert extreme <= cohen_radius(1.0, p_a)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"p_a": 0.0}, r"p_a must lie in \(0.0, 1.0\]"),
        ({"p_a": 1.2}, r"p_a must lie in \(0.0, 1.0\], got 1.2"),
        ({"p_a": float("nan")}, "p_a contains NaN"),
        ({"sigma0": 0.0}, "sigma0 must lie in"),
        ({"sigma0": -1.0}, "sigma0 must lie in"),
        ({"r": -0.01}, "r must lie in"),
        ({"dim": 0}, "dim must lie in"),
        ({"dim": 2.5}, "dim must be a whole number"),
    ],
)
def test_bad_input_names_the_argument(kwargs: dict, message: str) -> None:
    arguments = {"sigma0": 0.5, "r": 0.01, "dim": 784, "p_a": 0.9} | kwargs
    with pytest.raises(ValueError, match=message):
        idrs_radius(**arguments)


def test_cohen_radius_two_sided_and_abstain() -> None:
    assert cohen_radius(0.5, 0.9, 0.05) == pytest.approx(0.25 * (1.2815515655 + 1.6448536270))
    assert cohen_radius(0.5, 0.4, 0.45) == 0.0
    assert cohen_radius(0.5, 0.4) == 0.0
    # A p_b above 1 - p_a is lowered to 1 - p_a, as idrs_radius does: the one-sided radius.
    lowered = cohen_radius(0.5, 0.9, 0.2)
    assert lowered == pytest.approx(cohen_radius(0.5, 0.9), rel=1e-15)
    assert lowered == pytest.approx(0.5 * 1.2815515655446004, rel=1e-13)
    assert lowered == idrs_radius(0.5, 0.0, 784, 0.9, 0.2)


def test_vanishing_rate_is_cohen_not_an_overflow() -> None:
    # r sigma0 = 1e-160: the worst-case balls are half-spaces to double precision; the radius
    # is Cohen's less the 1e-7 probability slack (about 5e-8 relative here).
    radius = idrs_radius(1.0, 1e-160, 3072, 0.9)
    assert radius <= cohen_radius(1.0, 0.9)
    assert radius == pytest.approx(cohen_radius(1.0, 0.9), rel=1e-7)
