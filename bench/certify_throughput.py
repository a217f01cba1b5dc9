"""Benchmark: noise samples per second through ``Smooth.certify``.

Against, in the same run, (a) the bare forward pass of the same model at the same batch size
(the floor) and (b) a straightforward loop (repeat the input, add ``randn * sigma``, argmax,
count on the host, as in Cohen et al.'s code). Also reports the radius step's share of the
per-input time. Usage: ``python bench/certify_throughput.py [--n 10000] [--batch 1000]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from idrs_lightning.models import build_model
from idrs_lightning.smoothing import Smooth


def _bare_forward(model: torch.nn.Module, x: torch.Tensor, n: int, batch: int) -> float:
    inputs = x.unsqueeze(0).repeat(batch, *([1] * x.ndim))
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

    # Interleaved rounds, median of each: machine noise hits all three alike.
    floors, baselines, ourses = [], [], []
    for round_index in range(args.rounds):
        floors.append(_bare_forward(model, x, args.n, args.batch))
        baselines.append(_baseline_loop(model, x, args.n, args.batch))
        start = time.perf_counter()
        cert = smooth.certify(x, 0.25, 100, args.n, 0.001, index=round_index)
        ourses.append(time.perf_counter() - start)
    floor, baseline, ours = (statistics.median(v) for v in (floors, baselines, ourses))
    start = time.perf_counter()
    smooth.radii(x.numel(), np.array([0.25]), np.array([max(cert.p_a_lower, 0.99)]))
    radius_time = time.perf_counter() - start

    threads = torch.get_num_threads()
    print(f"{args.model}, n = {args.n}, batch {args.batch}, {threads} threads")
    print(f"  (median of {args.rounds} interleaved rounds)")
    print(f"  bare forward   {args.n / floor:10.0f} samples/s  (floor)")
    print(f"  Smooth.certify {args.n / ours:10.0f} samples/s  ({100 * floor / ours:.1f}% of floor)")
    print(f"  baseline loop  {args.n / baseline:10.0f} samples/s  ({baseline / ours:.2f}x slower)")
    share = 100 * radius_time / ours
    print(f"  IDRS radius step: {1e3 * radius_time:.2f} ms ({share:.2f}% of certify)")


if __name__ == "__main__":
    main()
