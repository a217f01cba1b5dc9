"""Benchmark: IDRS radius (Theorem 7) for 10,000 Clopper-Pearson p_a values.

Compares ``idrs_radius`` with the paper's Algorithm 3 done the straightforward way
(``scipy.stats.ncx2`` quantile and CDF for xi_> and xi_<, a dense radius grid up to Cohen's
radius, then bisection) on a subsample, in the same run, and prints per-input times and their
ratio. Also times the variant with a separate runner-up bound (``idrs_radius(..., p_b)``,
Appendix B.5) on ``--pb-inputs`` inputs against the ``p_b = 1 - p_a`` radius of the same inputs.
Usage: ``python bench/radius.py [--inputs 10000] [--baseline-inputs 20] [--pb-inputs 1000]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import stats

from idrs_lightning.certification import (
    clopper_pearson_lower,
    clopper_pearson_upper,
    cohen_radius,
    idrs_radius,
)


def _top_probabilities(rng: np.random.Generator, count: int) -> np.ndarray:
    """True top-class probabilities: a mix of confident, moderate and hard inputs."""
    kind = rng.choice(3, size=count, p=[0.6, 0.3, 0.1])
    p_true = np.where(
        kind == 0,
        1.0 - rng.beta(1.0, 2000.0, count),
        np.where(kind == 1, rng.uniform(0.6, 0.999, count), rng.uniform(0.3, 0.6, count)),
    )
    return p_true


def clopper_pearson_sample(count: int, n: int, alpha: float, seed: int) -> np.ndarray:
    """p_a lower bounds as certification produces them: counts from Bin(n, p), then CP."""
    rng = np.random.default_rng(seed)
    n_a = rng.binomial(n, _top_probabilities(rng, count))
    return clopper_pearson_lower(n_a, n, alpha)


def runner_up_sample(
    count: int, n: int, alpha: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The runner-up holding 30-100% of the rest: p_a lower at alpha (for the p_a-only
    radius), and p_a lower and p_b upper at alpha / 2 each (as ``Smooth`` uses them)."""
    rng = np.random.default_rng(seed)
    n_a = rng.binomial(n, _top_probabilities(rng, count))
    n_b = np.minimum(rng.binomial(n - n_a, rng.uniform(0.3, 1.0, count)), n_a)
    p_a = clopper_pearson_lower(n_a, n, alpha / 2)
    p_b = np.minimum(clopper_pearson_upper(n_b, n, alpha / 2), 1.0 - p_a)
    return clopper_pearson_lower(n_a, n, alpha), p_a, p_b


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


def run_runner_up(dim: int, sigma0: float, r: float, inputs: int, seed: int) -> None:
    p_a_alone, p_a, p_b = runner_up_sample(inputs, n=100_000, alpha=0.001, seed=seed)
    start = time.perf_counter()
    single = idrs_radius(sigma0, r, dim, p_a_alone)
    single_time = time.perf_counter() - start
    start = time.perf_counter()
    two_sided = idrs_radius(sigma0, r, dim, p_a, p_b)
    two_sided_time = time.perf_counter() - start
    start = time.perf_counter()
    idrs_radius(sigma0, r, dim, p_a[:1], p_b[:1])
    one_time = time.perf_counter() - start
    gain = two_sided[single > 0] / single[single > 0]
    print(f"N={dim} sigma0={sigma0} r={r}: {inputs} inputs with a separate runner-up bound")
    print(f"  idrs_radius(p_a)       {1e3 * single_time / inputs:8.3f} ms/input  (p_a at alpha)")
    print(
        f"  idrs_radius(p_a, p_b)  {1e3 * two_sided_time / inputs:8.3f} ms/input  "
        f"(both at alpha / 2); {1e3 * one_time:.1f} ms for a single input"
    )
    print(
        f"  radius against p_a alone: median {np.median(gain):.3f}x, max {gain.max():.2f}x, "
        f"smaller for {np.mean(gain < 1):.1%}; certified {np.mean(two_sided > 0):.1%} of inputs "
        f"(p_a alone: {np.mean(single > 0):.1%})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=10_000)
    parser.add_argument("--baseline-inputs", type=int, default=20)
    parser.add_argument("--pb-inputs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for dim in (3072, 784):
        run(dim, 0.12, 0.01, args.inputs, args.baseline_inputs, args.seed)
        run_runner_up(dim, 0.12, 0.01, args.pb_inputs, args.seed)


if __name__ == "__main__":
    main()
