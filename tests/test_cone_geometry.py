"""The cone's ideal classifier under noise (``cone_geometry.cone_probability``) against Monte
Carlo, exact values and its limits (over whole test splits: tests/slow/test_cone_classes.py)."""

import math

import numpy as np
import pytest
from scipy import special

from idrs_lightning.paper import cone_geometry
from tests.cone import ANGLE, SCALE, SIGMA, cone_split


def _monte_carlo(point, sigma, half_angle_deg, draws, rng):
    noisy = point + sigma * rng.standard_normal((draws, point.size))
    inside = noisy[:, 0] >= math.cos(math.radians(half_angle_deg)) * np.linalg.norm(noisy, axis=1)
    return float(np.mean(inside))


@pytest.mark.parametrize("dim", [2, 60, 400])
def test_quadrature_matches_monte_carlo(dim):
    """20,000 noise draws at three test points with a non-extreme probability, within 4 SE."""
    sigma, draws = SIGMA[dim], 20_000
    split = cone_split("test", dim, SCALE[dim])
    probability = cone_geometry.cone_probability(split.x, sigma, ANGLE)
    chosen = np.flatnonzero((probability > 0.05) & (probability < 0.95))[:3]
    assert chosen.size == 3
    rng = np.random.default_rng(20220717 + dim)
    for index in chosen:
        point = split.x[index].astype(np.float64)
        estimate = _monte_carlo(point, sigma, ANGLE, draws, rng)
        p = probability[index]
        assert abs(estimate - p) <= 4 * math.sqrt(p * (1 - p) / draws), (index, p, estimate)


@pytest.mark.parametrize("dim", [2, 6, 18, 60, 400])
@pytest.mark.parametrize("half_angle_deg", [5.0, 42.0, 80.0, 89.9])
def test_quadrature_exact_at_the_apex(dim, half_angle_deg):
    """At the apex P is the cap's share of the sphere, I_{sin^2 theta}((N-1)/2, 1/2) / 2."""
    exact = 0.5 * special.betainc((dim - 1) / 2, 0.5, math.sin(math.radians(half_angle_deg)) ** 2)
    ours = cone_geometry.cone_probability(np.zeros(dim), 1.3, half_angle_deg)[0]
    assert ours == pytest.approx(exact, abs=1e-12)


def test_quadrature_limits():
    """Far behind the apex P = 0, far along the axis P = 1."""
    points = np.zeros((2, 18))
    points[:, 0] = [-20.0, 1e4]
    np.testing.assert_allclose(cone_geometry.cone_probability(points, 1.0, 30.0), [0.0, 1.0])


@pytest.mark.filterwarnings("ignore:Error in function cdf:RuntimeWarning")
def test_no_nan_where_the_noncentrality_is_1e10() -> None:
    """Points 1e5 off the axis (noncentrality 1e10 at sigma 1), at signed distances d from the
    surface up to 20 sigma inside: scipy's ncx2.cdf is NaN that far in its upper tail (its sf
    warns that its series did not converge, but returns about 1e-89).

    There the cone is a half-space to within its curvature, and noise across the axis (16
    further dimensions at N = 18) moves a point outwards by 16 / (2 * 1e5) on average: the
    probability is Phi(d - 16 cos(angle) / (2 * 1e5)), to second order in sigma / 1e5.
    """
    dim, lateral = 18, 1e5
    cos, tan = math.cos(math.radians(ANGLE)), math.tan(math.radians(ANGLE))
    distance = np.array([-5.0, -1.0, 0.0, 1.0, 5.0, 20.0])
    points = np.zeros((distance.size, dim))
    points[:, 0] = (distance / cos + lateral) / tan
    points[:, 1] = lateral
    ours = cone_geometry.cone_probability(points, 1.0, ANGLE)
    assert np.all(np.isfinite(ours))
    expected = special.ndtr(distance - (dim - 2) * cos / (2 * lateral))
    np.testing.assert_allclose(ours, expected, rtol=1e-7, atol=1e-15)


def test_scaling_the_data_is_smoothing_with_sigma_over_the_scale():
    """The cone is scale-invariant, and the generator draws the same points at every scale."""
    unit = cone_split("test", 18, 1.0).x.astype(np.float64)
    scaled = cone_split("test", 18, 250.0).x.astype(np.float64)
    np.testing.assert_allclose(scaled, 250.0 * unit, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(
        cone_geometry.cone_probability(scaled, 1.0, ANGLE),
        cone_geometry.cone_probability(unit, 1.0 / 250.0, ANGLE),
        atol=1e-4,
    )
