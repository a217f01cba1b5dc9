"""Benchmark: training steps per second with input-dependent, constant and no noise.

Same model (LeNet on 1x28x28 inputs), batch and optimiser for the three variants; the
``training_step`` of :class:`~idrs_lightning.training.BaseClassifierModule` plus backward and
SGD step. Rounds are interleaved so that machine noise hits all variants alike; the median
round is reported. Target: input-dependent augmentation within 3% of constant sigma.
Usage: ``python bench/train_step.py [--batch 256] [--steps 20] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from idrs_lightning.training import BaseClassifierModule


def _steps_per_second(module: BaseClassifierModule, batch: tuple, steps: int) -> float:
    optimizer = torch.optim.SGD(module.parameters(), lr=0.01, momentum=0.9)
    start = time.perf_counter()
    for index in range(steps):
        optimizer.zero_grad(set_to_none=True)
        module.training_step(batch, index).backward()
        optimizer.step()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.rand(args.batch, 1, 28, 28)
    y = torch.randint(0, 10, (args.batch,))
    sigmas = {
        "input-dependent": 0.25 * torch.exp(0.01 * torch.randn(args.batch)),
        "constant": torch.full((args.batch,), 0.25),
        "no noise": torch.full((args.batch,), 0.25),
    }
    modules = {
        name: BaseClassifierModule(
            "lenet", augment=name != "no noise", num_classes=10, sample_shape=(1, 28, 28)
        )
        for name in sigmas
    }
    for module in modules.values():
        module.log = lambda *a, **k: None  # no trainer attached: logging is not measured
    rates: dict[str, list[float]] = {name: [] for name in sigmas}
    for name in sigmas:  # warm-up
        _steps_per_second(modules[name], (x, y, sigmas[name]), 3)
    for _ in range(args.rounds):
        for name, sigma in sigmas.items():
            rates[name].append(_steps_per_second(modules[name], (x, y, sigma), args.steps))
    median = {name: statistics.median(values) for name, values in rates.items()}
    print(f"LeNet, batch {args.batch}, {torch.get_num_threads()} threads")
    for name, rate in median.items():
        print(f"  {name:16s} {rate:7.2f} steps/s")
    overhead = median["constant"] / median["input-dependent"] - 1
    print(f"  input-dependent vs constant: {100 * overhead:+.2f}% time per step (target <= 3%)")
    noise_cost = median["no noise"] / median["constant"] - 1
    print(f"  constant vs no noise:        {100 * noise_cost:+.2f}% time per step")


if __name__ == "__main__":
    main()
