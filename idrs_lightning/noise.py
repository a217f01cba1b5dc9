"""Seeded noise blocks and the plan that packs them into forward passes.

Every input's noise is cut into blocks of :data:`NOISE_BLOCK` samples, each drawn from its own
generator seeded by ``(seed, index, stage, block)``. A block is always drawn whole, so the
samples of an input do not depend on how many of them are used, on the batch size, the device
count or restarts; a batch holds whole blocks, possibly of several inputs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

NOISE_BLOCK = 100
#: Noise streams of one input: CERTIFY's selection and estimation samples, PREDICT's samples.
SELECTION, ESTIMATION, PREDICTION = 0, 1, 2


def blocks_needed(num: int) -> int:
    """Blocks that hold ``num`` samples."""
    return -(-num // NOISE_BLOCK)


def block_seed(seed: int, index: int, stage: int, block: int) -> int:
    """A 63-bit seed from the tuple, via numpy's SeedSequence (well mixed, platform-stable)."""
    return int(
        np.random.SeedSequence([seed, index, stage, block]).generate_state(1, np.uint64)[0] >> 1
    )


def fill_block_noise(out: torch.Tensor, seed: int, index: int, stage: int, block: int) -> None:
    """Fill ``out`` (``[rows x ...]``, ``rows <= NOISE_BLOCK``) with the first rows of this
    block's standard normal stream, drawn on ``out``'s device."""
    generator = torch.Generator(device=out.device)
    generator.manual_seed(block_seed(seed, index, stage, block))
    if len(out) == NOISE_BLOCK:
        torch.randn(out.shape, generator=generator, out=out)
    else:  # draw the whole block, so the stream does not depend on how much is used
        full = torch.randn(
            (NOISE_BLOCK, *out.shape[1:]), generator=generator, device=out.device, dtype=out.dtype
        )
        out.copy_(full[: len(out)])


@dataclass(frozen=True)
class NoiseBatch:
    """One forward pass: ``blocks`` are ``(input, block, first row, end row)``, ``segments``
    the rows ``(input, first row, end row)`` of each input (consecutive blocks merged)."""

    rows: int
    blocks: list[tuple[int, int, int, int]]
    segments: list[tuple[int, int, int]]


@dataclass
class PassCount:
    """Forward passes made and the noisy rows they held: ``rows / (passes * batch size)`` is
    how full the passes were."""

    passes: int = 0
    rows: int = 0

    def record(self, rows: int) -> None:
        self.passes += 1
        self.rows += rows


#: ``(input, block, rows)``: the first ``rows`` samples of one noise block of one input.
Work = tuple[int, int, int]


def block_work(num_inputs: int, num: int, first_block: int = 0) -> list[Work]:
    """``num`` samples of each of ``num_inputs`` inputs from block ``first_block`` on, input
    after input (the last block of an input holds the remainder)."""
    blocks = blocks_needed(num)
    tail = num - (blocks - 1) * NOISE_BLOCK
    return [
        (i, first_block + b, tail if b == blocks - 1 else NOISE_BLOCK)
        for i in range(num_inputs)
        for b in range(blocks)
    ]


def samples_per_input(work: Sequence[Work], num_inputs: int) -> np.ndarray:
    """Noisy samples that ``work`` draws for each of ``num_inputs`` inputs (int64)."""
    drawn = np.zeros(num_inputs, dtype=np.int64)
    for i, _, rows in work:
        drawn[i] += rows
    return drawn


def plan_batches(work: Sequence[Work], blocks_per_batch: int) -> Iterator[NoiseBatch]:
    """The ``work`` in order, in batches of at most ``blocks_per_batch`` blocks."""
    for first in range(0, len(work), blocks_per_batch):
        placed: list[tuple[int, int, int, int]] = []
        segments: list[tuple[int, int, int]] = []
        offset = 0
        for i, b, size in work[first : first + blocks_per_batch]:
            placed.append((i, b, offset, offset + size))
            if segments and segments[-1][0] == i and segments[-1][2] == offset:
                segments[-1] = (i, segments[-1][1], offset + size)
            else:
                segments.append((i, offset, offset + size))
            offset += size
        yield NoiseBatch(offset, placed, segments)
