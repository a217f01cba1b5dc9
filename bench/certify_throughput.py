"""Benchmark: noise samples per second through ``Smooth.certify``.

Against, in the same run, (a) the bare forward pass of the same model at the same batch size
on a fixed batch of noisy inputs (the floor), and (b) a straightforward loop (repeat the
input, add ``randn * sigma``, argmax, count on the host, as in Cohen et al.'s code). Also
reports the radius step's share of the per-input time.
Usage: ``python bench/certify_throughput.py [--n 10000] [--batch 1000]``.

The floor feeds noisy inputs because the forward pass itself is data dependent on CPU: on a
batch of identical rows (max pooling and ReLU branch the same way every row) LeNet runs 10-15%
faster than on the noisy rows that smoothing must classify. That identical-row pass is printed
too, for reference.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from idrs_lightning.models import build_model
from idrs_lightning.smoothing import Smooth


def _bare_forward(
    model: torch.nn.Module, x: torch.Tensor, n: int, batch: int, sigma: float | None
) -> float:
    inputs = x.unsqueeze(0).repeat(batch, *([1] * x.ndim))
    if sigma is not None:
        inputs += sigma * torch.randn_like(inputs)
    start = time.perf_counter()
    with torch.no_grad():
        for _ in range(n // batch):
            model(inputs).argmax(dim=1)
    return time.perf_counter() - start


def _baseline_loop(model: torch.nn.Module, x: torch.Tensor, n: int, batch: int) -> float:
    start = time.perf_counter()
    counts = np.zeros(10, dtype=np.int64)
    with torch.no_grad():
        for _ in range(n // batch):
            inputs = x.unsqueeze(0).repeat(batch, *([1] * x.ndim))
            noisy = inputs + torch.randn_like(inputs) * 0.25
            for prediction in model(noisy).argmax(dim=1).cpu().numpy():
                counts[prediction] += 1
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--model", default="lenet")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = build_model(args.model, 10, (1, 28, 28)).eval()
    x = torch.rand(1, 28, 28)
    smooth = Smooth(model, 10, rate=0.01, batch_size=args.batch)
    smooth.certify(x, 0.25, 100, 1_000, 0.001, index=0)  # warm-up

    # Interleaved rounds, median of each: machine noise hits all four alike.
    floors, identicals, baselines, ourses = [], [], [], []
    for round_index in range(args.rounds):
        floors.append(_bare_forward(model, x, args.n, args.batch, sigma=0.25))
        identicals.append(_bare_forward(model, x, args.n, args.batch, sigma=None))
        baselines.append(_baseline_loop(model, x, args.n, args.batch))
        start = time.perf_counter()
        smooth.certify(x, 0.25, 100, args.n, 0.001, index=round_index)
        ourses.append(time.perf_counter() - start)
    floor, identical, baseline, ours = (
        statistics.median(v) for v in (floors, identicals, baselines, ourses)
    )
    sigma, p_a, p_b = np.array([0.25]), np.array([0.99]), np.array([0.002])
    start = time.perf_counter()
    smooth.radii(x.numel(), sigma, p_a)
    radius_time = time.perf_counter() - start
    start = time.perf_counter()
    smooth.radii(x.numel(), sigma, p_a, p_b)
    runner_up_time = time.perf_counter() - start

    threads = torch.get_num_threads()
    print(f"{args.model}, n = {args.n}, batch {args.batch}, {threads} threads")
    print(f"  (median of {args.rounds} interleaved rounds)")
    print(f"  bare forward, noisy rows      {args.n / floor:10.0f} samples/s  (floor)")
    print(f"  bare forward, identical rows  {args.n / identical:10.0f} samples/s")
    print(
        f"  Smooth.certify                {args.n / ours:10.0f} samples/s  "
        f"({100 * floor / ours:.1f}% of floor, {100 * identical / ours:.1f}% of identical rows)"
    )
    print(
        f"  baseline loop                 {args.n / baseline:10.0f} samples/s  "
        f"({baseline / ours:.2f}x slower)"
    )
    for name, seconds in (("IDRS", radius_time), ("IDRS with a separate p_b", runner_up_time)):
        print(
            f"  {name} radius step: {1e3 * seconds:.2f} ms "
            f"({100 * seconds / ours:.2f}% of certify at n = {args.n}, "
            f"{100 * seconds / (ours * 100_000 / args.n):.2f}% at n = 100,000)"
        )


if __name__ == "__main__":
    main()
