"""The IDRS radius with a separate runner-up bound p_b is certified for every sigma1 of the
r-semi-elastic interval, tightly, by the independent mpmath reference (25 digits)."""

import mpmath
import numpy as np
import pytest

from idrs_lightning.certification import idrs_radius
from tests.reference import mpmath_reference as reference

pytestmark = pytest.mark.slow  # mpmath at 25 digits


def _reference_margin(radius: float, t: float, dim: int, p_a: float, p_b: float) -> float:
    """``1 - W(R, t, 1 - p_a) - W(R, t, p_b)`` (sigma0 = 1) from the independent mpmath code."""
    if t == 1.0:  # Cohen's half-space on both sides
        z_a, z_b = reference._norm_ppf(mpmath.mpf(p_a)), reference._norm_ppf(mpmath.mpf(p_b))
        return float(mpmath.ncdf(z_a - radius) - mpmath.ncdf(z_b + radius))
    xi = reference.xi_greater if t < 1.0 else reference.xi_less
    worst_a = xi(radius, 1.0, t, dim, p_a, dps=25)
    worst_b = xi(radius, 1.0, t, dim, 1.0 - p_b, dps=25)
    return float(1 - worst_a - worst_b)


@pytest.mark.parametrize(
    ("dim", "rho", "p_a", "p_b"),
    [
        (2, 0.5, 0.9, 0.01),
        (60, 0.2, 0.6, 0.2),
        (784, 0.05, 0.99, 1e-4),
        (3072, 0.02, 0.5, 0.1),
        (150528, 0.002, 0.99, 1e-3),  # ImageNet 224 x 224 x 3
    ],
)
def test_certified_for_every_sigma1_by_the_mpmath_reference(
    dim: int, rho: float, p_a: float, p_b: float
) -> None:
    radius = float(idrs_radius(1.0, rho, dim, p_a, p_b))
    assert radius > 0.0
    ratios = np.exp(rho * radius * np.linspace(-1.0, 1.0, 21))
    margins = [_reference_margin(radius, t, dim, p_a, p_b) for t in ratios]
    assert min(margins) > 0.0
    # Tight: slightly further out, an extreme sigma1 already breaks the condition.
    beyond = radius * (1.0 + 1e-4)
    extremes = np.exp(rho * beyond * np.array([-1.0, 1.0]))
    assert min(_reference_margin(beyond, t, dim, p_a, p_b) for t in extremes) < 0.0


@pytest.mark.parametrize(
    ("dim", "rho", "p_a", "p_b"),
    [(2, 0.1, 0.999, 9.49 * 2.0**-53), (3, 1e-3, 0.99, 1e-15), (60, 1e-2, 1 - 1e-9, 1e-15)],
)
def test_tiny_p_b_is_used_as_given(dim: int, rho: float, p_a: float, p_b: float) -> None:
    # 1 - (1 - p_b) would round p_b down by up to 5e-17 (5% at 1e-15) and over-certify.
    radius = float(idrs_radius(1.0, rho, dim, p_a, p_b))
    assert radius > 0.0
    ratios = np.exp(rho * radius * np.linspace(-1.0, 1.0, 5))
    assert min(_reference_margin(radius, t, dim, p_a, p_b) for t in ratios) > 0.0
