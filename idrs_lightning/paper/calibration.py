"""Calibration of the cone data set's radial scale against Table 5's constant-sigma column.

Appendix A.5 of the IDRS paper describes its N-dimensional two-class "cone" data set only in
words: class 1 in "a cone of small angle" with "density higher near the vertex", class 0
spherically symmetric with density "highest in the center". It gives neither the angle nor
the scale of the data, so :func:`idrs_lightning.data.synthetic.generate_cone` has free
parameters. Our rule: free generator parameters are calibrated only against the constant-sigma
rows of Table 5 (clean accuracy 0.943, 0.946, 0.86, 0.83, 0.713, 0.623 for N = 2, 6, 18, 60,
180, 400 at sigma = 0.5, 0.5, 1.0, 1.0, 2.0, 2.0; read from ``numbers.json``, key ``table5``,
rows with ``r == 0.0``). The IDRS rows of Table 5 are then predictions. This module is that
calibration; ``python -m idrs_lightning.paper.calibration`` recomputes it and rewrites
``cone_calibration.json`` beside this file, which :func:`load` reads. :func:`load` returns, per
N, the generator options to pass (with ``dim``) as ``dataset_options``: ``{"half_angle_deg":
5.0, "radial_scale": s_N}``.

What is calibrated, and what is fixed
-------------------------------------
One number per N (the accuracy) can pin down one parameter, so the others are fixed:

- ``half_angle_deg`` = 5.0, the generator's default: "a cone of small angle", as the paper
  says.
- ``radial_df`` = 2.0, the default: the distance from the apex is ``radial_scale *
  sqrt(chi2(2))``, so the density in N dimensions is proportional to ``|x|^(2 - N)
  exp(-|x|^2 / (2 radial_scale^2))``, peaked at the apex, more sharply than a Gaussian, as the
  paper says.
- ``per_class_train`` 500, ``per_class_test`` 100, ``seed`` 0: the defaults of
  :func:`idrs_lightning.data.sources.load_split` (all fixed options are recorded in the JSON's
  ``generator``). The test split has 200 points, so the accuracy moves in steps of 0.005 and a
  target that is not a multiple of 0.005 is matched to within half a step at best.
- ``radial_scale`` is free, calibrated per N. It is the quantity that the noise must be
  compared with: the noise has norm about ``sigma sqrt(N)`` (40 for N = 400, sigma = 2), and
  because the cone is invariant under scaling, ``P(s x + sigma eps in cone) = P(x + (sigma / s)
  eps in cone)``: scaling the data by ``s`` is smoothing the unit-scale data with ``sigma / s``.
  The paper fixes the angle qualitatively ("small") and the sigmas numerically, but says
  nothing of the data's scale.

The alternative tried first calibrated the half-angle with the scale fixed at 1 (data at
distance about 1.3 from the apex). It matched the table only with half-angles of 42.8 and 84.7
degrees for N = 2 and 6 and within 1.6 degrees of 90 for N >= 18 (88.42, 89.48, 89.857, 89.892
for N = 18, 60, 180, 400): a half-space, not "a cone of small angle", since only a nearly flat
cone leaves points at distance 1.3 a probability above 1/2 under noise of norm 4 to 40. What
the high-dimensional rows contradict is the scale, not the angle.

What is matched
---------------
For each N, a radial scale at which the clean accuracy of the *smoothed ground-truth
classifier* on the generator's test split equals the table's accuracy. The ground truth is the
cone indicator ``f(y) = 1 iff y_1 >= cos(theta) |y|`` (half-angle ``theta`` around the first
axis, apex at the origin); its smoothed version predicts class 1 at ``x`` iff
``P(f(x + sigma eps) = 1) > 1/2``, ``eps ~ N(0, I)``. Clean accuracy is the fraction of the
test points whose smoothed prediction equals the label.

Why this proxy: the paper smooths a trained network, and a network trained on this data
approximates the indicator. Training one per trial scale is far too costly inside a root
finder (dozens of evaluations per N), and it would make the objective noisy. The proxy's
limits: off the data (the noisy copies lie at distance about ``sigma sqrt(N)`` from the data,
far outside it when N is large) a network extrapolates as it likes, and the indicator is only
one such extrapolation.

Computation
-----------
- Exact probabilities, no abstention: no Monte Carlo sampling of the noise, no confidence
  test, no abstain outcome. Cohen et al.'s PREDICT abstains when the top class is not
  significant; if the paper's evaluation abstained and counted abstentions as errors, its
  accuracy is below its classifier's, and the scale matched here is somewhat too small.
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
  over the test points (0.02 s per accuracy for N = 2, 0.45 s for N = 400); the tests check it
  against Monte Carlo at the calibrated scales.
- Monotone staircase. Every class-0 test point is classified correctly: the cone is convex, so
  a point outside it is separated from it by a half-space of Gaussian mass below 1/2. Hence the
  accuracy is ``(1 + class-1 recall) / 2``. For a class-1 point ``x``, ``K = cone - x`` is
  convex and contains 0, and ``P(s x + sigma eps in cone) = P(eps in (s / sigma) K)`` grows
  with ``s`` (``a K`` is contained in ``b K`` for ``a < b``): scaling a point outwards never
  loses it. The generator draws the same directions and the same ``chi2`` variates whatever
  the scale (the scale multiplies the distances after drawing), so the test points are
  ``s x_i`` (up to float32 rounding) and each class-1 point has one threshold scale above which
  it is kept. The accuracy is therefore a non-decreasing staircase in the scale, from 0.5 to 1,
  with steps of one test point (0.005) unless two thresholds coincide. Only up to the float32
  rounding of the data, though: within about 1e-6 (relative) of a step the accuracy may
  flicker between its two values, so the plateau ends found below are exact to about that.
- Search. (1) The accuracy on :data:`GRID_SIZE` scales geometric in :data:`SCALE_RANGE`
  (1e-1 .. 1e5, 8 a decade; the accuracy is 0.5 at the bottom for every row and at least
  0.99 at the top), checked non-decreasing; the bracket is the first grid cell whose
  accuracy goes from below the target to at least the target. (2) Bisection in ``log s``
  (relative width 1e-10) to the step ``s*`` where the accuracy first reaches the target. (3)
  Of the two plateaus beside that step, the one whose accuracy is nearer the target (ties: the
  upper); its other edge is found the same way (bracketed by the grid, then bisection), and the
  scale returned is the plateau's geometric midpoint, as far as possible from both steps (so
  the float32 rounding of the data cannot change the accuracy there). ``status`` is
  ``matched`` when that accuracy is within 0.005 (one test point) of the target, else
  ``jumped`` (the accuracy leaps over the target, several points sharing a threshold) with the
  ``shortfall`` recorded; ``scale_range`` is the plateau, every scale with the same accuracy,
  a measure of how loosely the 200 test points pin the scale down. If no grid scale reaches
  the target (``out of reach``), the smallest scale of best accuracy is returned and the
  shortfall recorded.

Outcome (``cone_calibration.json``, about 170 s on a shared 2-core machine): every row
``matched``, with radial scales 9.05, 71.0, 243, 656, 2977, 4462 for N = 2, 6, 18, 60, 180,
400 and accuracies 0.945, 0.945, 0.86, 0.83, 0.715, 0.625 (each plateau spans 1.6-30 % in
scale). Why so large: a class-1 point at angle ``alpha < theta`` to the axis keeps a
smoothed probability above 1/2 only if, roughly, ``|x| sqrt(sin(theta - alpha) sin(theta +
alpha)) / cos(theta) > sigma sqrt(N - 1)``, and in high dimension most of the cap's area, hence
most class-1 points, lies close to the cone's boundary (``theta - alpha`` of order ``theta /
N``). The data then spread widely: ``|x|`` over the train split (``train_norm`` in each row)
has median about 1.15-1.2 times the scale and maximum about 3.6-4.3 times it; the minimum is
0.36, 0.41, 8.5, 15.7, 7.2, 227 for N = 2, 6, 18, 60, 180, 400.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import ncx2

from ..data.sources import _default_options, load_split

#: Where :func:`write` puts the calibration and :func:`load` reads it.
JSON_PATH = Path(__file__).parent / "cone_calibration.json"
#: The cone's half-angle in degrees, fixed ("a cone of small angle"; the generator's default).
HALF_ANGLE_DEG = 5.0
#: Search range of the radial scale (see the module docstring).
SCALE_RANGE = (1e-1, 1e5)
#: Number of grid scales, geometric over :data:`SCALE_RANGE` (8 a decade).
GRID_SIZE = 49
#: Bisection stops when the bracket's ratio is below ``1 + RTOL``.
RTOL = 1e-10
#: Accuracy within this of the target counts as matched (one test point).
NEAR = 0.005

_T_MAX = 8.5
_FIXED_EDGES = np.array([-6.0, -3.0, 0.0, 3.0, 6.0])
_STEP_EDGES = np.array([-8.0, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, 8.0])
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(16)

PROCEDURE = (
    "Cone half-angle fixed at 5 degrees and radial_df at 2 (generator defaults, 'a cone of "
    "small angle', density peaked at the apex); for each Table 5 row with r = 0 (numbers.json "
    "'table5'), the radial scale (distance from the apex = radial_scale * sqrt(chi2(2))) at "
    "which the smoothed ground-truth classifier (cone indicator, predict 1 iff P(x + sigma eps "
    "in cone) > 1/2, P exact by 1-D quadrature over y_1 of the noncentral chi-square cdf, no "
    "abstention) has the table's clean accuracy on the generator's test split. The accuracy is "
    "a non-decreasing staircase in the scale (steps of one test point); grid of 49 scales "
    "geometric in [1e-1, 1e5], first cell reaching the target, bisection in log scale to the "
    "step, the adjacent plateau whose accuracy is nearest the target (ties: upper), its other "
    "edge by bisection; the scale kept is the plateau's geometric midpoint. Code: "
    "idrs_lightning/paper/calibration.py."
)


def generator_options() -> dict[str, Any]:
    """The cone generator's fixed options: ``load_split``'s defaults but ``dim`` and the scale.

    The half-angle is :data:`HALF_ANGLE_DEG` whatever the generator's default.
    """
    options = _default_options("cone")
    del options["dim"], options["radial_scale"]
    options["half_angle_deg"] = HALF_ANGLE_DEG
    return options


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


def cone_split(split: str, dim: int, radial_scale: float) -> Any:
    """The generator's ``split`` at dimension ``dim`` and this scale, other options fixed."""
    return load_split(
        "cone", split, ".", dim=int(dim), radial_scale=float(radial_scale), **generator_options()
    )


def smoothed_accuracy(dim: int, sigma: float, radial_scale: float) -> float:
    """Clean accuracy of the smoothed cone indicator on the cone test split at that scale."""
    return _accuracy(int(dim), float(sigma), float(radial_scale))


@cache
def _accuracy(dim: int, sigma: float, radial_scale: float) -> float:
    split = cone_split("test", dim, radial_scale)
    predicted = cone_probability(split.x, sigma, HALF_ANGLE_DEG) > 0.5
    return float(np.mean(predicted.astype(np.int64) == split.y))


def scale_grid() -> NDArray[np.float64]:
    """The search grid: :data:`GRID_SIZE` scales, geometric over :data:`SCALE_RANGE`."""
    return np.geomspace(*SCALE_RANGE, GRID_SIZE)


def _bisect(reached: Callable[[float], bool], low: float, high: float) -> tuple[float, float]:
    """``(a, b)``, ``b / a < 1 + RTOL``, with ``reached`` false at ``a`` and true at ``b``.

    ``reached`` must be false at ``low`` and true at ``high``; bisection in ``log s``.
    """
    while high > low * (1 + RTOL):
        middle = math.sqrt(low * high)
        if not low < middle < high:
            break
        if reached(middle):
            high = middle
        else:
            low = middle
    return low, high


def calibrate(dim: int, sigma: float, target: float) -> dict[str, Any]:
    """A radial scale at which the smoothed cone indicator's clean accuracy is ``target``.

    Returns a row: ``dim``, ``sigma``, ``target``, ``radial_scale``, ``achieved`` (the accuracy
    there), ``gap`` (``achieved - target``), ``status`` and ``shortfall``:

    - ``"matched"``: ``|gap| <= NEAR`` (one test point), ``shortfall`` is ``None``;
    - ``"jumped"``: the accuracy jumps across the target by more than one test point (several
      class-1 points share a threshold scale); ``shortfall = |gap|``;
    - ``"out of reach"``: no grid scale reaches the target; the smallest grid scale of best
      accuracy is returned, ``shortfall = target - achieved``.

    Bracketed rows also carry ``step_scale`` (where the accuracy first reaches the target) and
    ``scale_range``: the plateau ``[low, high]`` of scales with the accuracy ``achieved`` (the
    scale returned is its geometric midpoint; an end at the grid's edge means the plateau may
    extend beyond it). Raises ``RuntimeError`` if the grid accuracies decrease anywhere (they
    cannot, see the module docstring), ``ValueError`` if the smallest grid scale already
    reaches the target.
    """

    def accuracy(scale: float) -> float:
        return smoothed_accuracy(dim, sigma, scale)

    grid = scale_grid()
    accuracies = np.array([accuracy(s) for s in grid])
    if np.any(np.diff(accuracies) < 0):
        raise RuntimeError(f"the accuracy decreases with the scale on the grid (N = {dim})")
    reached = np.flatnonzero(accuracies >= target)
    if reached.size == 0:
        best = int(np.argmax(accuracies))
        achieved = float(accuracies[best])
        return _row(dim, sigma, target, float(grid[best]), achieved, "out of reach")
    first = int(reached[0])
    if first == 0:
        raise ValueError(
            f"accuracy {accuracies[0]} already reaches {target} at scale {grid[0]} (N = {dim})"
        )
    below, above = _bisect(lambda s: accuracy(s) >= target, grid[first - 1], grid[first])
    low_value, high_value = accuracy(below), accuracy(above)
    if high_value - target <= target - low_value:
        value, low = high_value, above
        higher = np.flatnonzero(accuracies > value)
        if higher.size == 0:
            high = float(grid[-1])
        else:
            k = int(higher[0])
            start = max(above, float(grid[k - 1]))
            high = _bisect(lambda s: accuracy(s) > value, start, float(grid[k]))[0]
    else:
        value, high = low_value, below
        lower = np.flatnonzero(accuracies < value)
        if lower.size == 0:
            low = float(grid[0])
        else:
            k = int(lower[-1])
            end = min(below, float(grid[k + 1]))
            low = _bisect(lambda s: accuracy(s) >= value, float(grid[k]), end)[1]
    scale = math.sqrt(low * high)
    achieved = accuracy(scale)
    if achieved != value:
        raise RuntimeError(f"accuracy {achieved} at the plateau's midpoint, not {value}")
    status = "matched" if abs(achieved - target) <= NEAR + 1e-12 else "jumped"
    row = _row(dim, sigma, target, scale, achieved, status)
    row["step_scale"] = math.sqrt(below * above)
    row["scale_range"] = [low, high]
    return row


def _row(
    dim: int, sigma: float, target: float, scale: float, achieved: float, status: str
) -> dict[str, Any]:
    gap = achieved - target
    return {
        "dim": dim,
        "sigma": sigma,
        "target": target,
        "radial_scale": scale,
        "achieved": achieved,
        "gap": gap,
        "status": status,
        "shortfall": None if status == "matched" else abs(gap),
    }


def train_norms(dim: int, radial_scale: float) -> dict[str, float]:
    """Least, median and greatest ``|x|`` over the train split at that scale."""
    norms = np.linalg.norm(cone_split("train", dim, radial_scale).x.astype(np.float64), axis=1)
    return {
        "min": float(norms.min()),
        "median": float(np.median(norms)),
        "max": float(norms.max()),
    }


def table5_constant_rows() -> list[dict[str, Any]]:
    """Table 5's constant-sigma rows (``r == 0.0``) from ``numbers.json``: dim, sigma, accuracy."""
    numbers = json.loads((Path(__file__).parent / "numbers.json").read_text(encoding="utf-8"))
    return [row for row in numbers["table5"]["rows"] if row["r"] == 0.0]


def calibrate_all() -> dict[str, Any]:
    """The calibration of every constant-sigma row of Table 5, as written to the JSON.

    Each row also records ``train_norm``, the spread of ``|x|`` over the train split at the
    calibrated scale (what the kNN-based sigma(x) of the IDRS rows sees).
    """
    rows = []
    for table_row in table5_constant_rows():
        row = calibrate(table_row["dim"], table_row["sigma"], table_row["accuracy"])
        row["train_norm"] = train_norms(row["dim"], row["radial_scale"])
        rows.append(row)
    return {"procedure": PROCEDURE, "generator": generator_options(), "rows": rows}


def write(path: str | Path = JSON_PATH) -> dict[str, Any]:
    """Recompute the calibration and write it as JSON to ``path``; returns what was written."""
    payload = calibrate_all()
    Path(path).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return payload


def load(path: str | Path = JSON_PATH) -> dict[int, dict[str, float]]:
    """``dim -> {"half_angle_deg": 5.0, "radial_scale": s}``: the cone generator options to use.

    Pass them, with ``dim``, as the cone's ``dataset_options``. Raises ``RuntimeError`` when
    the stored fixed generator options are no longer :func:`generator_options` (recompute with
    ``python -m idrs_lightning.paper.calibration``).
    """
    payload = json.loads(Path(path).read_text(encoding="utf-8"))
    if payload["generator"] != generator_options():
        raise RuntimeError(
            f"{path} was calibrated with generator options {payload['generator']}, but the "
            f"fixed options are now {generator_options()}; rerun "
            "`python -m idrs_lightning.paper.calibration`"
        )
    angle = float(payload["generator"]["half_angle_deg"])
    return {
        int(row["dim"]): {"half_angle_deg": angle, "radial_scale": float(row["radial_scale"])}
        for row in payload["rows"]
    }


def main() -> None:
    start = time.perf_counter()
    payload = write()
    for row in payload["rows"]:
        note = "" if row["shortfall"] is None else f"  shortfall {row['shortfall']:.3f}"
        note = f"  [{row['status']}]{note}"
        norm = row["train_norm"]
        print(
            f"N = {row['dim']:3d}  sigma = {row['sigma']:.2f}  target {row['target']:.3f}  "
            f"radial_scale {row['radial_scale']:.6g}  achieved {row['achieved']:.3f}{note}  "
            f"train |x| min {norm['min']:.4g} median {norm['median']:.4g} max {norm['max']:.4g}"
        )
    print(f"wrote {JSON_PATH} in {time.perf_counter() - start:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
