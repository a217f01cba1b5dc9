"""A few of the certification math's mpmath reference values recomputed live (50 digits), at
the extremes of the noncentral chi-square and of the radius."""

import numpy as np
import pytest

from idrs_lightning.certification import idrs_radius, ncx2_cdf, ncx2_sf
from tests.reference import mpmath_reference as ref

pytestmark = pytest.mark.slow  # mpmath at 50 digits


@pytest.mark.parametrize(
    ("x_sd", "df", "nc"),
    [(-6.0, 150528, 1e12), (5.0, 200000, 1e9), (-3.0, 3, 5e11), (4.0, 60, 0.0)],
)
def test_ncx2_live_against_mpmath(x_sd: float, df: int, nc: float) -> None:
    x = df + nc + x_sd * np.sqrt(2 * df + 4 * nc)
    assert float(ncx2_cdf(x, df, nc)) == pytest.approx(float(ref.ncx2_cdf(x, df, nc)), rel=1e-9)
    assert float(ncx2_sf(x, df, nc)) == pytest.approx(float(ref.ncx2_sf(x, df, nc)), rel=1e-9)


@pytest.mark.parametrize(("dim", "r", "p_a"), [(60, 0.03, 0.95), (784, 0.01, 0.9995)])
def test_radius_live_against_mpmath(dim: int, r: float, p_a: float) -> None:
    reference = float(ref.idrs_radius(0.5, r, dim, p_a, rel_tol=1e-8))
    ours = float(idrs_radius(0.5, r, dim, p_a))
    assert reference * (1 - 1e-4) <= ours <= reference * (1 + 1e-8)
