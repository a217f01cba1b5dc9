"""Benchmark: noise samples per second through ``Smooth.certify``.

What is compared, in the same run on one frozen model:

* the floor: the bare forward passes of exactly the noisy rows that ``Smooth.certify`` feeds
  the model (n0 selection plus n estimation rows, recorded from its own call: the same number
  of rows in the same batch shapes, with the same values), with nothing else;
* ``Smooth.certify`` on the same input and index (so on exactly those rows): noise generation,
  forward passes, counting, bounds and radius;
* a straightforward loop with the same batch shapes (repeat the input, add ``randn * sigma``,
  argmax, count on the host, as in Cohen et al.'s code);
* for reference, the bare forward on identical rows (on CPU the forward is data dependent:
  max pooling and ReLU branch alike on identical rows).

They are interleaved pass by pass: forward hooks run the floor's, the loop's and the
identical rows' j-th batch (rotating order) right before or right after (alternating) the j-th
forward pass inside ``Smooth.certify``, whose own time is its wall time minus the hooks'. So a
load change on a shared machine hits all of them alike; interleaving whole calls of a few
seconds each let the loop "beat" the floor in earlier versions. Neither ``Smooth.certify`` nor
the loop can beat the floor (each round is checked). Also timed: the radius step alone, and
its share of the per-input time. The model is LeNet frozen at its seeded initialisation (eval
mode); subnormals are flushed; every ratio is per round, with median, min-max and spread.
Usage: ``python bench/certify_throughput.py [--n 10000] [--batch 1000] [--rounds 7] [--quick]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
from _common import (
    Interleaved,
    flush_subnormals,
    print_floor_check,
    print_ratio,
    ratios,
    rotated,
    spread,
)

from idrs_lightning.certification import certified_radius
from idrs_lightning.models import build_model
from idrs_lightning.settings import CertificationSettings
from idrs_lightning.smoothing import Smooth

SIGMA, R, N0, ALPHA = 0.25, 0.01, 100, 0.001


def _record_batches(model: torch.nn.Module, run: Callable[[], object]) -> list[torch.Tensor]:
    """The batches ``model`` receives during ``run()``, copied."""
    batches: list[torch.Tensor] = []
    handle = model.register_forward_pre_hook(lambda _, args: batches.append(args[0].clone()))
    try:
        run()
    finally:
        handle.remove()
    return batches


def _baseline_step(model: torch.nn.Module, x: torch.Tensor, size: int, counts: np.ndarray) -> None:
    """One batch of the straightforward loop: repeat, add noise, classify, count on the host."""
    inputs = x.unsqueeze(0).repeat(size, *([1] * x.ndim))
    noisy = inputs + torch.randn_like(inputs) * SIGMA
    for prediction in model(noisy).argmax(dim=1).cpu().numpy():
        counts[prediction] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--model", default="lenet")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--quick", action="store_true", help="smoke-test size (seconds)")
    args = parser.parse_args()
    if args.quick:
        args.n, args.batch, args.rounds = 1_000, 500, 3
    if args.threads:
        torch.set_num_threads(args.threads)
    flush_subnormals()
    torch.manual_seed(0)
    model = build_model(args.model, 10, (1, 28, 28)).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    x = torch.rand(1, 28, 28)
    settings = CertificationSettings(n0=N0, n=args.n, alpha=ALPHA, batch_size=args.batch, seed=0)
    smooth = Smooth(model, 10, r=R, settings=settings)

    # The rows certify feeds the model, recorded from its own call (which is also a warm-up).
    noisy = _record_batches(model, lambda: smooth.certify(x, SIGMA, 0))
    identical = [x.expand_as(batch).contiguous() for batch in noisy]
    sizes = [len(batch) for batch in noisy]
    rows = sum(sizes)
    assert rows == N0 + args.n, f"certify fed {rows} rows, expected n0 + n = {N0 + args.n}"
    dim = x.numel()
    p_a, p_b = np.array([0.99]), np.array([0.002])
    counts = np.zeros(10, dtype=np.int64)
    interleaved = Interleaved(
        model,
        {
            "floor": lambda j: model(noisy[j]),
            "identical": lambda j: model(identical[j]),
            "baseline": lambda j: _baseline_step(model, x, sizes[j], counts),
        },
    )
    radius_steps: dict[str, Callable[[], object]] = {
        "radius": lambda: certified_radius(np.array([SIGMA]), R, dim, p_a),
        "radius_pb": lambda: certified_radius(np.array([SIGMA]), R, dim, p_a, p_b),
    }
    times: dict[str, list[float]] = {
        name: [] for name in ("ours", *interleaved.work, *radius_steps)
    }
    for round_index in range(-1, args.rounds):  # round -1 is a warm-up
        interleaved.start_round(round_index)
        start = time.perf_counter()
        smooth.certify(x, SIGMA, 0)
        wall = time.perf_counter() - start
        interleaved.stop()
        assert interleaved.batch == len(noisy) - 1, "certify changed its forward passes"
        radius = {}
        for name in rotated(list(radius_steps), round_index):
            begin = time.perf_counter()
            radius_steps[name]()
            radius[name] = time.perf_counter() - begin
        if round_index >= 0:
            times["ours"].append(wall - interleaved.inside)
            for name, seconds in (interleaved.times | radius).items():
                times[name].append(seconds)
    interleaved.remove()

    shapes = sorted(set(sizes), reverse=True)
    print(
        f"{args.model} (frozen at its seeded initialisation), n0 = {N0}, n = {args.n}, batch "
        f"{args.batch}: {rows} rows in {len(sizes)} forward passes of {shapes} rows, "
        f"{torch.get_num_threads()} threads"
    )
    labels = {
        "floor": "bare forward, its noisy rows (floor)",
        "identical": "bare forward, identical rows",
        "ours": "Smooth.certify",
        "baseline": "baseline loop",
    }
    for name, label in labels.items():
        print(f"  {label:37s} samples/s {spread([rows / t for t in times[name]])}")
    ours_over_floor = ratios(times["ours"], times["floor"])
    baseline_over_floor = ratios(times["baseline"], times["floor"])
    print_ratio("time Smooth.certify / floor", ours_over_floor)
    print_ratio("time baseline loop / Smooth.certify", ratios(times["baseline"], times["ours"]))
    print_ratio("time baseline loop / floor", baseline_over_floor)
    print_ratio("time identical rows / floor", ratios(times["identical"], times["floor"]))
    print_floor_check("Smooth.certify", ours_over_floor)
    print_floor_check("baseline loop", baseline_over_floor)
    for name, label in (("radius", "IDRS"), ("radius_pb", "IDRS with a separate p_b")):
        share = [100 * t for t in ratios(times[name], times["ours"])]
        at_100k = [s * (N0 + args.n) / (N0 + 100_000) for s in share]
        print(f"  {label} radius step: ms {spread([1e3 * t for t in times[name]])}")
        print(f"    share of Smooth.certify: {spread(share, '%')}")
        print(f"    share at n = 100,000 (forward time scaled): median {np.median(at_100k):.2f}%")


if __name__ == "__main__":
    main()
