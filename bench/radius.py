"""Benchmark: IDRS radius (Theorem 7) for 10,000 Clopper-Pearson p_a values.

Compares ``idrs_radius`` with the paper's Algorithm 3 done the straightforward way
(``scipy.stats.ncx2`` quantile and CDF for xi_> and xi_<, a dense radius grid up to Cohen's
radius, then bisection) on a subsample, and with the floor ``cohen_radius`` of the same p_a
(the closed form that ``idrs_radius`` evaluates first and then only lowers). Also times the
variant with a separate runner-up bound (``idrs_radius(..., p_b)``, Appendix B.5) on
``--pb-inputs`` inputs against the p_a-only radius at alpha (what runs without the option) and
against its floor, the p_a-only radius of its own p_a (which it computes first).

No model is involved; subnormals are flushed all the same and the radii are recomputed without
flushing, to show that flushing does not change what is measured. The variants run in
interleaved rounds (``_common``); each ratio is per round, with median, min-max and spread.
Usage: ``python bench/radius.py [--inputs 10000] [--baseline-inputs 20] [--pb-inputs 300]
[--rounds 3] [--quick]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
from _common import flush_subnormals, print_floor_check, print_ratio, ratios, rotated, spread
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


def _timed(function: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def _max_relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    both_inf = np.isinf(a) & np.isinf(b)
    diff = np.where(both_inf, 0.0, np.abs(a - b) / np.maximum(np.abs(b), 1e-12))
    return float(np.max(diff, initial=0.0))


def _same_without_flush(compute: Callable[[], np.ndarray], flushed_result: np.ndarray) -> str:
    """The same radii recomputed with subnormals not flushed: flushing must not change them."""
    torch.set_flush_denormal(False)
    try:
        plain = compute()
    finally:
        torch.set_flush_denormal(True)
    gap = _max_relative_difference(flushed_result, plain)
    return "identical" if gap == 0 else f"max relative difference {gap:.1e}"


def run(
    dim: int, sigma0: float, r: float, inputs: int, baseline_inputs: int, rounds: int, seed: int
) -> None:
    p_a = clopper_pearson_sample(inputs, n=100_000, alpha=0.001, seed=seed)
    unique = np.unique(p_a).size
    sub = np.random.default_rng(seed + 1).choice(np.flatnonzero(p_a > 0.5), baseline_inputs)
    variants: dict[str, Callable[[], np.ndarray]] = {
        "floor": lambda: cohen_radius(sigma0, p_a),
        "ours": lambda: idrs_radius(sigma0, r, dim, p_a),
        "baseline": lambda: np.array(
            [algorithm_3_radius(sigma0, r, dim, float(p)) for p in p_a[sub]]
        ),
    }
    per_input = {"floor": inputs, "ours": inputs, "baseline": baseline_inputs}
    idrs_radius(sigma0, r, dim, p_a[:50])  # warm-up (quadrature rules are built once)
    times, results = _rounds(variants, per_input, rounds)
    ours, baseline = results["ours"], results["baseline"]
    gap = np.max(np.abs(baseline - ours[sub]) / np.maximum(ours[sub], 1e-12))
    check = min(inputs, 1000)
    flush = _same_without_flush(lambda: idrs_radius(sigma0, r, dim, p_a[:check]), ours[:check])

    print(f"N={dim} sigma0={sigma0} r={r}: {inputs} inputs ({unique} distinct p_a)")
    print(f"  idrs_radius          ms/input {spread([1e3 * t for t in times['ours']])}")
    print(f"  cohen_radius (floor) ms/input {spread([1e3 * t for t in times['floor']])}")
    print(
        f"  Algorithm 3 scipy    ms/input {spread([1e3 * t for t in times['baseline']])} "
        f"on {baseline_inputs} inputs"
    )
    speed_up = ratios(times["baseline"], times["ours"])
    print_ratio("Algorithm 3 / idrs_radius, per input", speed_up)
    print_ratio(
        "Algorithm 3 / idrs_radius, per distinct p_a", [s * unique / inputs for s in speed_up]
    )
    over_floor = ratios(times["ours"], times["floor"])
    print_ratio("idrs_radius / cohen_radius (floor)", over_floor)
    print_floor_check("idrs_radius", over_floor, "cohen_radius")
    print(f"  max relative radius difference to the baseline: {gap:.2e}")
    print(f"  radii of {check} inputs with subnormals not flushed: {flush}")


def _rounds(
    variants: dict[str, Callable[[], np.ndarray]], per_input: dict[str, int], rounds: int
) -> tuple[dict[str, list[float]], dict[str, np.ndarray]]:
    """Seconds per input of every variant in each round (order rotating), and the results."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    results: dict[str, np.ndarray] = {}
    for round_index in range(rounds):
        for name in rotated(list(variants), round_index):
            seconds, results[name] = _timed(variants[name])
            times[name].append(seconds / per_input[name])
    return times, results


def run_runner_up(
    dim: int, sigma0: float, r: float, inputs: int, singles: int, rounds: int, seed: int
) -> None:
    p_a_alone, p_a, p_b = runner_up_sample(inputs, n=100_000, alpha=0.001, seed=seed)
    variants: dict[str, Callable[[], np.ndarray]] = {
        # what idrs_radius(p_a, p_b) computes first: the p_b = 1 - p_a radius of its p_a
        "floor": lambda: idrs_radius(sigma0, r, dim, p_a),
        "baseline": lambda: idrs_radius(sigma0, r, dim, p_a_alone),
        "ours": lambda: idrs_radius(sigma0, r, dim, p_a, p_b),
        "single": lambda: [idrs_radius(sigma0, r, dim, p_a[i], p_b[i]) for i in range(singles)],
    }
    per_input = {"floor": inputs, "baseline": inputs, "ours": inputs, "single": singles}
    times, results = _rounds(variants, per_input, rounds)
    single, two_sided = results["baseline"], results["ours"]
    check = min(inputs, 20)
    flush = _same_without_flush(
        lambda: idrs_radius(sigma0, r, dim, p_a[:check], p_b[:check]), two_sided[:check]
    )
    gain = two_sided[single > 0] / single[single > 0]

    print(f"N={dim} sigma0={sigma0} r={r}: {inputs} inputs with a separate runner-up bound")
    print(f"  idrs_radius(p_a, p_b)  ms/input {spread([1e3 * t for t in times['ours']])}")
    print(
        f"    one input at a time  ms/input {spread([1e3 * t for t in times['single']])} "
        f"({singles} inputs)"
    )
    print(f"  idrs_radius(p_a) alpha ms/input {spread([1e3 * t for t in times['baseline']])}")
    print(f"  floor, its p_a alone   ms/input {spread([1e3 * t for t in times['floor']])}")
    print_ratio(
        "idrs_radius(p_a, p_b) / idrs_radius(p_a)", ratios(times["ours"], times["baseline"])
    )
    over_floor = ratios(times["ours"], times["floor"])
    print_ratio("idrs_radius(p_a, p_b) / floor", over_floor)
    print_floor_check("idrs_radius(p_a, p_b)", over_floor)
    print(
        f"  radius against p_a alone: median {np.median(gain):.3f}x, max {gain.max():.2f}x, "
        f"smaller for {np.mean(gain < 1):.1%}; certified {np.mean(two_sided > 0):.1%} of inputs "
        f"(p_a alone: {np.mean(single > 0):.1%})"
    )
    print(f"  radii of {check} inputs with subnormals not flushed: {flush}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=10_000)
    parser.add_argument("--baseline-inputs", type=int, default=20)
    parser.add_argument("--pb-inputs", type=int, default=300)
    parser.add_argument("--singles", type=int, default=5, help="p_b radii timed one at a time")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke-test size (seconds)")
    args = parser.parse_args()
    if args.quick:
        args.inputs, args.baseline_inputs, args.pb_inputs = 200, 1, 5
        args.singles, args.rounds = 2, 2
    flush_subnormals()
    print(
        "compares, per input: idrs_radius against the paper's Algorithm 3 on scipy (baseline) "
        "and cohen_radius (floor); with a separate p_b, against the p_a-only radius at alpha "
        "(baseline) and of its own p_a (floor)"
    )
    for dim in (3072, 784):
        run(dim, 0.12, 0.01, args.inputs, args.baseline_inputs, args.rounds, args.seed)
        singles = min(args.singles, args.pb_inputs)
        run_runner_up(dim, 0.12, 0.01, args.pb_inputs, singles, args.rounds, args.seed)


if __name__ == "__main__":
    main()
