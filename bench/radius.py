"""Benchmark: IDRS radius (Theorem 7) for 10,000 Clopper-Pearson p_a values.

Compares ``idrs_radius`` with the paper's Algorithm 3 done the straightforward way
(``scipy.stats.ncx2`` quantile and CDF for xi_> and xi_<, a dense radius grid up to Cohen's
radius, then bisection) on a subsample, in the same run, and prints per-input times and their
ratio. Usage: ``python bench/radius.py [--inputs 10000] [--baseline-inputs 20]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import stats

from idrs_lightning.certification import clopper_pearson_lower, cohen_radius, idrs_radius


def clopper_pearson_sample(count: int, n: int, alpha: float, seed: int) -> np.ndarray:
    """p_a lower bounds as certification produces them: true top-class probabilities drawn
    from a mix of confident, moderate and hard inputs, counts from Bin(n, p), then CP."""
    rng = np.random.default_rng(seed)
    kind = rng.choice(3, size=count, p=[0.6, 0.3, 0.1])
    p_true = np.where(
        kind == 0,
        1.0 - rng.beta(1.0, 2000.0, count),
        np.where(kind == 1, rng.uniform(0.6, 0.999, count), rng.uniform(0.3, 0.6, count)),
    )
    n_a = rng.binomial(n, p_true)
    return clopper_pearson_lower(n_a, n, alpha)


def _xi_pair_scipy(radius: float, sigma0: float, r: float, dim: int, p_a: float) -> float:
    """max(xi_>(R, sigma0 e^{-rR}), xi_<(R, sigma0 e^{rR})) through scipy.stats.ncx2."""
    if radius == 0.0:
        return 1.0 - p_a
    s_low, s_high = sigma0 * np.exp(-r * radius), sigma0 * np.exp(r * radius)
    d_low = (sigma0**2 - s_low**2) ** 2
    q = stats.ncx2.ppf(1 - p_a, dim, sigma0**2 * radius**2 / d_low)
    xi_g = stats.ncx2.cdf(sigma0**2 / s_low**2 * q, dim, s_low**2 * radius**2 / d_low)
    d_high = (s_high**2 - sigma0**2) ** 2
    q = stats.ncx2.ppf(p_a, dim, sigma0**2 * radius**2 / d_high)
    xi_l = stats.ncx2.sf(sigma0**2 / s_high**2 * q, dim, s_high**2 * radius**2 / d_high)
    worst = max(xi_g, xi_l)
    return worst if np.isfinite(worst) else 1.0  # a failed evaluation certifies nothing


def algorithm_3_radius(
    sigma0: float, r: float, dim: int, p_a: float, grid: int = 100, bisections: int = 30
) -> float:
    """The paper's ComputeCertifiedRadius: grid up to Cohen's radius, then bisection."""
    if p_a <= 0.5:
        return 0.0
    radii = np.linspace(0.0, float(cohen_radius(sigma0, p_a)), grid)
    last_ok = 0.0
    for radius in radii[1:]:
        if _xi_pair_scipy(radius, sigma0, r, dim, p_a) >= 0.5:
            lo, hi = last_ok, radius
            for _ in range(bisections):
                mid = 0.5 * (lo + hi)
                if _xi_pair_scipy(mid, sigma0, r, dim, p_a) < 0.5:
                    lo = mid
                else:
                    hi = mid
            return lo
        last_ok = radius
    return last_ok


def run(dim: int, sigma0: float, r: float, inputs: int, baseline_inputs: int, seed: int) -> None:
    p_a = clopper_pearson_sample(inputs, n=100_000, alpha=0.001, seed=seed)
    unique = np.unique(p_a).size
    start = time.perf_counter()
    ours = idrs_radius(sigma0, r, dim, p_a)
    ours_time = time.perf_counter() - start

    sub = np.random.default_rng(seed + 1).choice(np.flatnonzero(p_a > 0.5), baseline_inputs)
    start = time.perf_counter()
    baseline = np.array([algorithm_3_radius(sigma0, r, dim, float(p)) for p in p_a[sub]])
    base_time = time.perf_counter() - start

    per_input = ours_time / inputs
    per_unique = ours_time / unique
    base_per_input = base_time / baseline_inputs
    gap = np.max(np.abs(baseline - ours[sub]) / np.maximum(ours[sub], 1e-12))
    print(f"N={dim} sigma0={sigma0} r={r}: {inputs} inputs ({unique} distinct p_a)")
    print(
        f"  idrs_radius        {1e3 * per_input:8.3f} ms/input  "
        f"({1e3 * per_unique:.3f} ms per distinct p_a)"
    )
    print(f"  Algorithm 3 scipy  {1e3 * base_per_input:8.1f} ms/input  ({baseline_inputs} inputs)")
    print(
        f"  speed-up           {base_per_input / per_input:8.0f}x per input, "
        f"{base_per_input / per_unique:.0f}x per distinct input"
    )
    print(f"  max relative radius difference to the baseline: {gap:.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=10_000)
    parser.add_argument("--baseline-inputs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for dim in (3072, 784):
        run(dim, 0.12, 0.01, args.inputs, args.baseline_inputs, args.seed)


if __name__ == "__main__":
    main()
