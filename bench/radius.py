"""Benchmark: IDRS radius (Theorem 7) for 10,000 Clopper-Pearson p_a values.

Compares ``idrs_radius`` with the paper's Algorithm 3 done the straightforward way
(``scipy.stats.ncx2`` quantile and CDF for xi_> and xi_<, a dense radius grid up to Cohen's
radius, then bisection) on a subsample, and with the floor ``cohen_radius`` of the same p_a
(the closed form that ``idrs_radius`` evaluates first and then only lowers). Also times the
variant with a separate runner-up bound (``idrs_radius(..., p_b)``, Appendix B.5) on
``--pb-inputs`` inputs against the p_a-only radius at alpha (what runs without the option) and
against its floor, the p_a-only radius of its own p_a (which it computes first).

At low and moderate N (the cone at N = 60, 200, 400 and Fashion-MNIST at N = 784, r > 0), the
radius step is timed against the sampling it follows, ``SAMPLES`` = 100,000 LeNet forward passes
per input (the demo's n, on the CPU; timed on ``--sampling-rows`` rows and scaled) in the same
interleaved rounds: the p_a-only radius one input per call and vectorised, the radius thresholds
of sequential certification's 13-radius grid, and the radius with a separate p_b, each printed
as a share of the sampling per round.

Apart from that LeNet, no model is involved; subnormals are flushed all the same and the radii
are recomputed without flushing, to show that flushing does not change what is measured. The
variants run in interleaved rounds (``_common``); each ratio is per round, with median, min-max
and spread.
Usage: ``python bench/radius.py [--inputs 10000] [--baseline-inputs 20] [--pb-inputs 300]
[--cost-inputs 200] [--cost-singles 5] [--sampling-rows 5000] [--rounds 3] [--quick]``.
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
from idrs_lightning.certification.sequential import clear_threshold_cache, radius_thresholds
from idrs_lightning.models import build_model

#: Forward passes per input at the demo's settings (Cohen et al.'s n): the sampling cost the
#: radius step is measured against.
SAMPLES = 100_000
#: The settings at low and moderate N: (label, N, sigma(x) range, r, sigma_b). The cone of
#: configs/cone.yaml (sigma_b = 0.8, r = 0.03, sigma(x) <= 5 sigma_b) at N = 60 to 400, and
#: Fashion-MNIST (configs/fashion_mnist.yaml: sigma_b = 0.25, r = 0.01) at N = 784.
COST_SETTINGS = (
    ("cone", 60, (0.8, 4.0), 0.03, 0.8),
    ("cone", 200, (0.8, 4.0), 0.03, 0.8),
    ("cone", 400, (0.8, 4.0), 0.03, 0.8),
    ("Fashion-MNIST", 784, (0.25, 0.5), 0.01, 0.25),
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


def _sampling(rows: int, batch: int) -> Callable[[], None]:
    """``rows`` noisy forward passes of LeNet (frozen at its seeded initialisation) in batches
    of ``batch``, with the top class counted: the sampling that certification does per input."""
    torch.manual_seed(0)
    model = build_model("lenet", 10, (1, 28, 28)).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    x = torch.rand(1, 1, 28, 28)
    sizes = [min(batch, rows - start) for start in range(0, rows, batch)]

    def sample() -> None:
        counts = torch.zeros(10, dtype=torch.int64)
        with torch.inference_mode():
            for size in sizes:
                noisy = x.expand(size, -1, -1, -1) + 0.25 * torch.randn(size, 1, 28, 28)
                counts += torch.bincount(model(noisy).argmax(dim=1), minlength=10)

    return sample


def run_cost(inputs: int, singles: int, rows: int, batch: int, rounds: int, seed: int) -> None:
    """The radius step at low and moderate N against the sampling it follows, per input.

    Per setting: ``idrs_radius`` one input per call (as certification calls it) and vectorised
    over ``inputs`` inputs, ``radius_thresholds`` of a 13-radius grid (0 to 3 sigma_b, step
    sigma_b / 4, as sequential certification asks) one input per call, and the radius with a
    separate ``p_b`` one input per call (the thresholds searched afresh: their cache is
    cleared before each call); each input has its own sigma(x) in the setting's
    range and a Clopper-Pearson p_a. The sampling is ``rows`` LeNet forward passes, scaled to
    ``SAMPLES`` per input; every variant runs in the same interleaved rounds.
    """
    sample = _sampling(rows, batch)
    variants: dict[str, Callable[[], object]] = {"sampling": sample}
    per_input: dict[str, float] = {"sampling": rows / SAMPLES}
    rng = np.random.default_rng(seed)
    for _label, dim, (low, high), r, sigma_b in COST_SETTINGS:
        sigma = rng.uniform(low, high, inputs)
        p_a = clopper_pearson_sample(inputs, n=SAMPLES, alpha=0.001, seed=seed + dim)
        _, p_a2, p_b = runner_up_sample(singles, n=SAMPLES, alpha=0.001, seed=seed + dim)
        grid = np.arange(13) * sigma_b / 4
        one = [(float(sigma[i]), float(p_a[i])) for i in range(singles)]
        variants |= {
            f"{dim} single": lambda one=one, r=r, dim=dim: [
                idrs_radius(s, r, dim, p) for s, p in one
            ],
            f"{dim} batch": lambda sigma=sigma, r=r, dim=dim, p_a=p_a: idrs_radius(
                sigma, r, dim, p_a
            ),
            f"{dim} thresholds": lambda sigma=sigma, r=r, dim=dim, grid=grid: [
                (clear_threshold_cache(), radius_thresholds(grid, sigma[i], r, dim))
                for i in range(singles)
            ],
            f"{dim} p_b": lambda sigma=sigma, r=r, dim=dim, p_a2=p_a2, p_b=p_b: [
                idrs_radius(sigma[i], r, dim, p_a2[i], p_b[i]) for i in range(singles)
            ],
        }
        per_input |= {
            f"{dim} single": singles,
            f"{dim} batch": inputs,
            f"{dim} thresholds": singles,
            f"{dim} p_b": singles,
        }
    sample()  # warm-up: the model's first passes
    for name, work in variants.items():
        if name != "sampling":
            work()  # warm-up: the quadrature rules are built once
    times, _ = _rounds(variants, per_input, rounds)
    sampling = times["sampling"]
    print(
        f"\nthe radius step against the sampling it follows: {SAMPLES:,} LeNet forward passes per "
        f"input (timed on {rows} rows in batches of {batch}, scaled), {torch.get_num_threads()} "
        f"threads; per setting: one input per call ({singles} inputs) and vectorised "
        f"({inputs} inputs)"
    )
    worst = 0.0
    for label, dim, (low, high), r, sigma_b in COST_SETTINGS:
        print(
            f"cost N={dim} ({label}: sigma(x) in [{low:g}, {high:g}], r = {r:g}; grid of 13 "
            f"radii, 0 to {3 * sigma_b:g})"
        )
        print(f"  sampling, n = {SAMPLES:,}        s/input {spread(sampling)}")
        rows_printed = (
            ("single", "idrs_radius, one per call"),
            ("batch", "idrs_radius, vectorised"),
            ("thresholds", "radius_thresholds, 13 radii"),
            ("p_b", "idrs_radius(p_a, p_b)"),
        )
        for key, text in rows_printed:
            print(f"  {text:29s} ms/input {spread([1e3 * t for t in times[f'{dim} {key}']])}")
        for key, text in rows_printed:
            share = [100 * t for t in ratios(times[f"{dim} {key}"], sampling)]
            worst = max(worst, max(share))
            print(f"  share of sampling, {text + ':':30s} {spread(share, '%')}")
    verdict = "met" if worst <= 3.0 else "NOT met"
    print(f"largest share of the sampling in any round: {worst:.3g}% (target <= 3%: {verdict})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=10_000)
    parser.add_argument("--baseline-inputs", type=int, default=20)
    parser.add_argument("--pb-inputs", type=int, default=300)
    parser.add_argument("--singles", type=int, default=5, help="p_b radii timed one at a time")
    parser.add_argument("--cost-inputs", type=int, default=200)
    parser.add_argument("--cost-singles", type=int, default=5)
    parser.add_argument("--sampling-rows", type=int, default=5_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke-test size (seconds)")
    args = parser.parse_args()
    if args.quick:
        args.inputs, args.baseline_inputs, args.pb_inputs = 200, 1, 5
        args.singles, args.rounds = 2, 2
        args.cost_inputs, args.cost_singles, args.sampling_rows = 20, 1, 1_000
    flush_subnormals()
    print(
        "compares, per input: idrs_radius against the paper's Algorithm 3 on scipy (baseline) "
        "and cohen_radius (floor); with a separate p_b, against the p_a-only radius at alpha "
        "(baseline) and of its own p_a (floor); at low and moderate N, the radius step against "
        "the sampling it follows"
    )
    for dim in (3072, 784):
        run(dim, 0.12, 0.01, args.inputs, args.baseline_inputs, args.rounds, args.seed)
        singles = min(args.singles, args.pb_inputs)
        run_runner_up(dim, 0.12, 0.01, args.pb_inputs, singles, args.rounds, args.seed)
    run_cost(
        args.cost_inputs,
        min(args.cost_singles, args.cost_inputs),
        args.sampling_rows,
        args.batch,
        args.rounds,
        args.seed,
    )


if __name__ == "__main__":
    main()
