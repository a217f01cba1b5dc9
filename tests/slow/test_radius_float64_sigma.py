"""The IDRS radius at ImageNet's dimension stays sound for the float64 rounding of sigma(x), and
would not for a float32 sigma (the mpmath reference)."""

import mpmath
import pytest

from idrs_lightning.certification import idrs_radius
from tests.reference import mpmath_reference as reference

pytestmark = pytest.mark.slow  # mpmath at ImageNet's dimension


@pytest.mark.parametrize(
    ("sigma0", "r", "p_a"), [(0.25, 0.01, 0.99), (0.5, 0.002, 0.999), (0.25, 0.01, 0.6)]
)
def test_sound_for_the_float64_rounding_of_sigma_at_imagenet_dimension(sigma0, r, p_a) -> None:
    """The noise level sampled is sigma(x) as evaluated in float64 (Smooth), r-semi-elastic up
    to log errors of about 1e-15; Theorem 7 with the sigma1 interval widened by delta = 1e-12
    still holds at the returned radius (mpmath). A float32 sigma (delta = 2^-23) would not."""
    dim = 150_528
    radius = float(idrs_radius(sigma0, r, dim, p_a))
    assert radius > 0

    def worst(delta: float) -> float:
        spread = mpmath.mpf(r) * radius + delta
        below = reference.xi_greater(radius, sigma0, sigma0 * mpmath.exp(-spread), dim, p_a)
        above = reference.xi_less(radius, sigma0, sigma0 * mpmath.exp(spread), dim, p_a)
        return float(max(below, above))

    assert worst(1e-12) < 0.5
    assert worst(2.0**-23) > 0.5  # the float32 rounding of sigma breaks it
