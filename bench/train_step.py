"""Benchmark: training steps per second with input-dependent, constant and no noise.

Same model (LeNet on 1x28x28 inputs), batch and optimiser for the three variants; the
``training_step`` of :class:`~idrs_lightning.training.module.BaseClassifierModule` plus backward and
SGD step. What is compared: input-dependent sigma (one sigma per sample, varying) against
constant sigma (the same per-sample tensor, all 0.25), and both against the floor, the same
step without augmentation ("no noise"), which does strictly less work. Target: input-dependent
augmentation within 3% of constant sigma. Both noisy variants execute the same operations on
tensors of the same shapes, so their ratio should be 1 up to the bench's resolution, which the
spread over rounds shows.

Fair by construction: the model is first trained for ``--pretrain`` steps, and that one state
(weights and momentum buffers) is loaded into every variant at the start of every round, so
no variant's weights drift away from the others'; subnormals are flushed (a drifting,
untrained model whose momentum decays into subnormal floats made earlier versions of this
bench report anything from -10% to +263%). Within a round the variants take turns step by
step in a rotating order; a round's time is its median step, and every ratio is per round,
with median, min-max and spread over rounds.
Usage: ``python bench/train_step.py [--batch 256] [--steps 10] [--rounds 7] [--quick]``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from _common import flush_subnormals, print_floor_check, print_ratio, ratios, rotated, spread

from idrs_lightning.training.module import BaseClassifierModule

VARIANTS = ("input-dependent", "constant", "no noise")


def _step(module: BaseClassifierModule, optimizer: torch.optim.Optimizer, batch: tuple) -> None:
    optimizer.zero_grad(set_to_none=True)
    module.training_step(batch, 0).backward()
    optimizer.step()


def _timed_step(
    module: BaseClassifierModule, optimizer: torch.optim.Optimizer, batch: tuple
) -> float:
    start = time.perf_counter()
    _step(module, optimizer, batch)
    return time.perf_counter() - start


def _subnormal_count(module: BaseClassifierModule, optimizer: torch.optim.Optimizer) -> int:
    tensors = [*module.parameters()]
    tensors += [v for state in optimizer.state.values() for v in state.values()]
    tiny = torch.finfo(torch.float32).tiny
    return sum(
        int(((t != 0) & (t.abs() < tiny)).sum())
        for t in tensors
        if isinstance(t, torch.Tensor) and t.is_floating_point()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per variant and round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--pretrain", type=int, default=30, help="steps before the shared state")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--quick", action="store_true", help="smoke-test size (seconds)")
    args = parser.parse_args()
    if args.quick:
        args.batch, args.steps, args.rounds, args.pretrain = 16, 3, 2, 2
    if args.threads:
        torch.set_num_threads(args.threads)
    flush_subnormals()
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
        for name in VARIANTS
    }
    optimizers = {
        name: torch.optim.SGD(module.parameters(), lr=0.01, momentum=0.9)
        for name, module in modules.items()
    }
    for module in modules.values():
        module.log = lambda *a, **k: None  # no trainer attached: logging is not measured

    # One trained state (weights and momentum) for every variant and round.
    first = VARIANTS[1]
    for _ in range(args.pretrain):
        _step(modules[first], optimizers[first], (x, y, sigmas[first]))
    state = copy.deepcopy(modules[first].state_dict())
    optimizer_state = copy.deepcopy(optimizers[first].state_dict())

    def reset(name: str) -> None:
        modules[name].load_state_dict(state)
        optimizers[name].load_state_dict(optimizer_state)

    for name in VARIANTS:  # warm-up
        reset(name)
        for _ in range(2):
            _timed_step(modules[name], optimizers[name], (x, y, sigmas[name]))
    # Every round starts all variants from the shared state; within a round the variants take
    # turns step by step (rotating order), so load changes hit all three alike. A round's time
    # is its median step.
    batch_of = {name: (x, y, sigmas[name]) for name in VARIANTS}
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for round_index in range(args.rounds):
        steps: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for name in VARIANTS:
            reset(name)
        for step in range(args.steps):
            for name in rotated(VARIANTS, round_index + step):
                steps[name].append(_timed_step(modules[name], optimizers[name], batch_of[name]))
        for name in VARIANTS:
            times[name].append(statistics.median(steps[name]))
    subnormals = sum(_subnormal_count(modules[n], optimizers[n]) for n in VARIANTS)

    print(
        f"LeNet, batch {args.batch}, {torch.get_num_threads()} threads, {args.steps} steps per "
        f"variant and round, every variant from the same state after {args.pretrain} steps"
    )
    for name in VARIANTS:
        rates = [1 / t for t in times[name]]
        print(f"  {name:16s} steps/s {spread(rates)}")
    print_ratio("time input-dependent / constant", ratios(times[VARIANTS[0]], times[VARIANTS[1]]))
    print("    (target <= 1.03; both run the same operations, so this is the bench's resolution)")
    print_ratio("time constant / no noise (floor)", ratios(times[VARIANTS[1]], times[VARIANTS[2]]))
    over_floor = ratios(times[VARIANTS[0]], times[VARIANTS[2]])
    print_ratio("time input-dependent / no noise (floor)", over_floor)
    print_floor_check("input-dependent", over_floor, "no noise")
    print(f"  subnormal values in weights and momentum after the rounds: {subnormals}")


if __name__ == "__main__":
    main()
