"""The cone's ideal classifier under noise: ``P(x + sigma eps in cone)`` exactly, for the
properties of the cone data set that Appendix A.5 states in words ("the conic decision region
will shrink rather fast with increasing sigma") and for its figures.

Computation
-----------
- Exact probabilities: no Monte Carlo sampling of the noise, no confidence test.
- The probability. With ``y = x + sigma eps``, ``y_1 ~ N(x_1, sigma^2)`` and
  ``|y_perp|^2 / sigma^2 ~ ncx2(N - 1, |x_perp|^2 / sigma^2)`` are independent, so
  ``P = E[1{y_1 > 0} F(y_1^2 tan^2(theta) / sigma^2)]`` with ``F`` that noncentral chi-square
  cdf: a 1-D integral over ``t = (y_1 - x_1) / sigma`` against the standard normal density.
  It is computed by fixed composite Gauss-Legendre quadrature (16 nodes a panel) on
  ``[max(-x_1 / sigma, -8.5), 8.5]`` (the normal mass outside is below 1e-16), with panel
  edges at ``t = -6, -3, 0, 3, 6`` (for the normal density) and at ``c + w k``,
  ``k = 0, +-1, +-2, +-4, +-8``, around the point ``c = sqrt(N - 1 + lambda) / tan(theta) -
  x_1 / sigma`` where ``F`` rises from 0 to 1 over a width of about ``w = 1 / tan(theta)``.
  Plain Gauss-Hermite on the whole line is not used: the integrand has a kink at ``y_1 = 0``
  (for N = 2) and, for wide cones, a step narrower than the Hermite nodes' spacing. ``F`` is
  scipy's ``ncx2.cdf`` below the mean and ``1 - ncx2.sf`` above it: at the largest scales
  (noncentrality up to about 4e9) ``cdf`` returns NaN in the far upper tail. Vectorised
  over the points (0.02 s for 200 points at N = 2, 0.45 s at N = 400); the tests check it
  against Monte Carlo.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import ncx2

_T_MAX = 8.5
_FIXED_EDGES = np.array([-6.0, -3.0, 0.0, 3.0, 6.0])
_STEP_EDGES = np.array([-8.0, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, 8.0])
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(16)


def cone_probability(x: ArrayLike, sigma: float, half_angle_deg: float) -> NDArray[np.float64]:
    """``P(x + sigma eps in cone)`` for each row of ``x`` (shape ``(n, N)`` or ``(N,)``).

    The cone has half-angle ``half_angle_deg`` (in ``(0, 90)``) around the first axis and its
    apex at the origin; ``eps ~ N(0, I_N)``. Quadrature as in the module docstring.
    """
    points = np.atleast_2d(np.asarray(x, dtype=np.float64))
    n, dim = points.shape
    if dim < 2:
        raise ValueError(f"the cone needs dimension >= 2, got {dim}")
    if not 0.0 < half_angle_deg < 90.0:
        raise ValueError(f"half_angle_deg must lie in (0, 90), got {half_angle_deg!r}")
    if not sigma > 0.0:
        raise ValueError(f"sigma must be positive, got {sigma!r}")
    tan = math.tan(math.radians(half_angle_deg))
    u = points[:, 0] / sigma
    lam = np.sum(points[:, 1:] ** 2, axis=1) / sigma**2
    hi = np.full(n, _T_MAX)
    lo = np.minimum(np.maximum(-u, -_T_MAX), hi)
    centre = np.sqrt(dim - 1 + lam) / tan - u
    inner = np.concatenate(
        [
            np.broadcast_to(_FIXED_EDGES, (n, _FIXED_EDGES.size)),
            centre[:, None] + _STEP_EDGES / tan,
        ],
        axis=1,
    )
    inner = np.clip(inner, lo[:, None], hi[:, None])
    edges = np.sort(np.concatenate([lo[:, None], inner, hi[:, None]], axis=1), axis=1)
    half = (edges[:, 1:] - edges[:, :-1]) / 2
    t = (edges[:, :-1] + half)[..., None] + half[..., None] * _NODES
    weight = half[..., None] * _WEIGHTS * np.exp(-(t**2) / 2) / math.sqrt(2 * math.pi)
    cdf = _ncx2_cdf(((u[:, None, None] + t) * tan) ** 2, dim - 1, lam[:, None, None])
    return np.clip(np.sum(weight * cdf, axis=(1, 2)), 0.0, 1.0)


def _ncx2_cdf(x: NDArray[np.float64], df: int, nc: NDArray[np.float64]) -> NDArray[np.float64]:
    """The noncentral chi-square cdf: ``cdf`` below the mean ``df + nc``, ``1 - sf`` above.

    scipy's ``ncx2.cdf`` returns NaN in the far upper tail once ``nc`` exceeds about 1e10; its
    ``sf`` there does not (checked for ``nc`` up to 3e10 and +-60 standard deviations).
    Raises ``FloatingPointError`` if a NaN remains.
    """
    x, nc = np.broadcast_arrays(x, nc)
    upper = x > df + nc
    out = np.empty(x.shape)
    out[~upper] = ncx2.cdf(x[~upper], df, nc[~upper])
    out[upper] = 1.0 - ncx2.sf(x[upper], df, nc[upper])
    if np.isnan(out).any():
        raise FloatingPointError("noncentral chi-square cdf is NaN (noncentrality too large)")
    return out
