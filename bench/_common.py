"""Shared pieces of the benchmarks: subnormal flushing, interleaved rounds and their spread.

Every benchmark flushes subnormal floats to zero before it builds anything (a slowly decaying
weight, momentum buffer or activation otherwise turns its arithmetic into microcode assists
that cost 10-100x, and the benchmark measures that rather than the code), runs its variants
in interleaved rounds (the order rotates every round, so machine noise and the order itself
hit every variant alike) and reports each ratio per round: median, min-max and the relative
spread ``(max - min) / median``. Where a product calls a model batch by batch,
:class:`Interleaved` runs the comparisons between its forward passes, so that they are
interleaved pass by pass rather than call by call.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


def flush_subnormals(announce: bool = True) -> bool:
    """Flush subnormals to zero (``torch.set_flush_denormal(True)``) and check that it holds.

    Call before the first parallel torch operation. The check multiplies subnormal inputs
    across torch's thread pool and in numpy on this thread; every product must be zero.
    """
    import torch

    supported = torch.set_flush_denormal(True)
    tiny = torch.full((1 << 20,), 1e-40)
    torch_ok = int((tiny * 1.0).count_nonzero()) == 0
    numpy_ok = not np.any(np.full(1024, 1e-40, dtype=np.float32) * np.float32(1.0))
    flushed = bool(supported and torch_ok and numpy_ok)
    if announce:
        state = "on" if flushed else "NOT on (unsupported here: timings may include subnormals)"
        print(
            f"subnormals flushed to zero: {state} (torch.set_flush_denormal(True), checked on "
            f"torch's {torch.get_num_threads()} threads and in numpy)"
        )
    return flushed


def rotated(items: Sequence[T], round_index: int) -> list[T]:
    """``items`` rotated by the round index: each variant runs first, second, ... in turn."""
    shift = round_index % len(items)
    return [*items[shift:], *items[:shift]]


def spread(values: Sequence[float], unit: str = "") -> str:
    """``median M<unit> (min-max A-B, spread S% over R rounds)``, 3 significant digits."""
    median = statistics.median(values)
    low, high = min(values), max(values)
    relative = 100 * (high - low) / median if median else float("nan")
    return (
        f"median {median:.3g}{unit} (min-max {low:.3g}-{high:.3g}, spread {relative:.1f}% "
        f"over {len(values)} rounds)"
    )


def ratios(numerator: Sequence[float], denominator: Sequence[float]) -> list[float]:
    """Per-round ratios of two variants measured in the same rounds."""
    return [a / b for a, b in zip(numerator, denominator, strict=True)]


def print_ratio(label: str, values: Sequence[float], width: int = 44) -> None:
    """One ratio line: ``ratio <label>: median ...x (min-max ..., spread ...)``."""
    print(f"  ratio {label + ':':{width}s} {spread(values, 'x')}")


def print_floor_check(name: str, over_floor: Sequence[float], floor: str = "the floor") -> None:
    """How often ``name`` ran below ``floor`` (per-round ratio < 1), and whether that is noise:
    a median below 1, or a round further below 1 than the rounds' spread, means the floor is
    wrong (or the product does less work than the floor claims)."""
    below = sum(value < 1.0 for value in over_floor)
    median = statistics.median(over_floor)
    low, high = min(over_floor), max(over_floor)
    if below == 0:
        verdict = "ok"
    elif len(over_floor) < 3:
        verdict = f"{low:.3f}x at worst; too few rounds to judge"
    elif median >= 1.0 and (1.0 - low) < (high - low):
        verdict = f"{low:.3f}x at worst, within the spread; median above the floor"
    else:
        verdict = f"{low:.3f}x at worst: FLOOR BEATEN beyond the spread, the floor is wrong"
    print(f"  floor check: {name} below {floor} in {below} of {len(over_floor)} rounds ({verdict})")


class Interleaved:
    """Runs each of ``work[name](j)`` (rotating order) right before or right after
    (alternating) the j-th forward pass of ``model`` in the product, through forward hooks; the
    product's own time is its wall time minus ``inside``, the time spent in the hooks. So the
    comparisons (e.g. the bare forward passes of the product's own batches) are interleaved
    pass by pass with the product, and load changes hit them alike."""

    def __init__(self, model: Any, work: dict[str, Callable[[int], object]]) -> None:
        self.work = work
        self.round = self.batch = 0
        self.times = dict.fromkeys(work, 0.0)
        self.inside = 0.0
        self._busy = True  # inactive until start_round
        self._handles = [
            model.register_forward_pre_hook(self._before),
            model.register_forward_hook(self._after),
        ]

    def start_round(self, round_index: int) -> None:
        """Reset the times; the hooks act from now until :meth:`stop`."""
        self.round, self.batch, self.inside = round_index, -1, 0.0
        self.times = dict.fromkeys(self.work, 0.0)
        self._busy = False

    def stop(self) -> None:
        self._busy = True

    def _run(self) -> None:
        self._busy = True  # the work calls the model too: no hooks inside the hooks
        start = time.perf_counter()
        try:
            for name in rotated(list(self.work), self.round + self.batch):
                begin = time.perf_counter()
                self.work[name](self.batch)
                self.times[name] += time.perf_counter() - begin
        finally:
            self.inside += time.perf_counter() - start
            self._busy = False

    def _before(self, module: Any, args: tuple) -> None:
        if self._busy:
            return
        self.batch += 1
        if (self.round + self.batch) % 2 == 0:
            self._run()

    def _after(self, module: Any, args: tuple, output: Any) -> None:
        if not self._busy and (self.round + self.batch) % 2 == 1:
            self._run()

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def sequential_tasks(sigma_b: float) -> dict[str, list[float]]:
    """The radius grids of sequential CERTIFY's three benchmark tasks: one radius (sigma_b / 2,
    a yes/no question), a four-radius curve (sigma_b / 2 to 2 sigma_b) and the default grid
    (0 to 3 sigma_b in steps of sigma_b / 4)."""
    return {
        "one radius": [sigma_b / 2],
        "four radii": [sigma_b / 2, sigma_b, 1.5 * sigma_b, 2 * sigma_b],
        "full grid": [i * sigma_b / 4 for i in range(13)],
    }
