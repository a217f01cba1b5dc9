"""The smoothed classifier: Monte Carlo PREDICT and CERTIFY (Cohen et al. 2019, IDRS App. D).

``g(x) = argmax_c P(f(x + sigma(x) eps) = c)`` with ``eps ~ N(0, I)``. Noise is drawn on the
input's device from generators seeded by ``(seed, index, stage, block)``: every block of
:data:`NOISE_BLOCK` samples of an input has its own stream, so counts do not depend on the
batch size, the device count or restarts (batches hold whole blocks). The certified radius is
Cohen's for constant noise (``rate = 0``) and Theorem 7's for an r-semi-elastic sigma(x),
either with ``p_b = 1 - p_a`` or with a separate upper bound on the runner-up (Appendix B.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .certification import (
    binomial_abstain_test,
    clopper_pearson_lower,
    clopper_pearson_upper,
    cohen_radius,
    idrs_radius,
)

ABSTAIN = -1
NOISE_BLOCK = 100
_SELECTION, _ESTIMATION, _PREDICTION = 0, 1, 2


@dataclass(frozen=True)
class Certificate:
    """Outcome of :meth:`Smooth.certify` for one input."""

    prediction: int
    radius: float
    p_a_lower: float
    counts: np.ndarray
    sigma: float
    p_b_upper: float  # nan unless the runner-up was bounded separately


class Smooth:
    """A smoothed classifier around a base classifier.

    Args:
        base_classifier: maps a batch ``(b, *shape)`` to logits ``(b, num_classes)``; it is
            used in eval mode, and normalisation must be its first layer (noise lives in
            input space).
        num_classes: number of classes.
        rate: the semi-elasticity r of the sigma(x) that produced the per-input sigma
            (0 for constant noise).
        batch_size: noisy samples per forward pass (rounded down to whole noise blocks).
        seed: run seed; with the input's index it determines all noise.
        autocast_dtype: run the base classifier under ``torch.autocast`` with this dtype
            (e.g. ``torch.float16`` on CUDA, ``torch.bfloat16`` on CPU). The certificate is
            for the classifier as evaluated, so reduced precision is sound, only different.
        channels_last: feed image batches in channels-last memory format (faster convolutions
            on recent GPUs).
        separate_pb: bound the runner-up class separately (IDRS paper, Appendix B.5): from the
            same estimation counts, ``p_a`` is the lower and ``p_b`` the upper Clopper-Pearson
            bound of the top and the largest other count, each at ``alpha / 2`` (so both hold
            with probability ``1 - alpha``), and the input is certified when ``p_a > p_b``.
            Inputs with ``p_a <= 1/2`` are certified too, and a runner-up well below
            ``1 - p_a`` enlarges the radius, which matters for many classes; with two
            classes, or a runner-up near ``1 - p_a``, the radius is slightly smaller than
            without the option, as ``p_a`` is then taken at ``alpha / 2``.
    """

    def __init__(
        self,
        base_classifier: nn.Module,
        num_classes: int,
        rate: float = 0.0,
        batch_size: int = 1000,
        seed: int = 0,
        autocast_dtype: torch.dtype | None = None,
        channels_last: bool = False,
        separate_pb: bool = False,
    ) -> None:
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        if not rate >= 0:
            raise ValueError(f"rate must be non-negative, got {rate!r}")
        if batch_size < NOISE_BLOCK:
            raise ValueError(f"batch_size must be at least {NOISE_BLOCK}, got {batch_size}")
        self.base_classifier = base_classifier
        self.num_classes = num_classes
        self.rate = rate
        self.blocks_per_batch = batch_size // NOISE_BLOCK
        self.seed = seed
        self.autocast_dtype = autocast_dtype
        self.channels_last = channels_last
        self.separate_pb = separate_pb
        if channels_last:
            base_classifier.to(memory_format=torch.channels_last)

    def certify(
        self, x: torch.Tensor, sigma: float, n0: int, n: int, alpha: float, index: int
    ) -> Certificate:
        """Cohen et al.'s CERTIFY with the radius of Theorem 7 when ``rate > 0``.

        With probability at least ``1 - alpha`` over the noise, if the prediction is not
        ``ABSTAIN`` then the smoothed classifier predicts it within ``radius`` of ``x``.

        Args:
            x: one input, shape ``[channel x height x width]`` (or ``[features]``).
            sigma: the noise level at ``x``, ``sigma(x)``.
            n0: noise samples to select the top class.
            n: noise samples to estimate its probability.
            alpha: failure probability.
            index: the input's index in its data set (seeds the noise).
        """
        return self.certify_many(x.unsqueeze(0), [sigma], n0, n, alpha, [index])[0]

    def certify_many(
        self,
        xs: torch.Tensor,
        sigmas: list[float],
        n0: int,
        n: int,
        alpha: float,
        indices: list[int],
    ) -> list[Certificate]:
        """:meth:`certify` for several inputs ``xs`` (shape ``[k x ...]``) at once.

        Noisy samples of different inputs share forward passes (worthwhile when ``n`` is small
        against the batch size) and the radii are computed in one vectorised call; each
        input's noise and counts are exactly those of :meth:`certify`.
        """
        for sigma in sigmas:
            _check_sampling(sigma, n0, n, alpha)
        selection = self._counts(xs, sigmas, n0, indices, _SELECTION)
        estimation = self._counts(xs, sigmas, n, indices, _ESTIMATION)
        c_a_hat = selection.argmax(axis=1)
        rows = np.arange(len(xs))
        n_a = estimation[rows, c_a_hat]
        sigma = np.asarray(sigmas, dtype=np.float64)
        if self.separate_pb:
            others = estimation.copy()
            others[rows, c_a_hat] = -1
            p_a_lower = clopper_pearson_lower(n_a, n, alpha / 2)
            # 1 - p_a bounds the runner-up too (the Clopper-Pearson bounds may overlap)
            p_b_upper = np.minimum(
                clopper_pearson_upper(others.max(axis=1), n, alpha / 2), 1.0 - p_a_lower
            )
            certified = p_a_lower > p_b_upper
        else:
            p_a_lower = clopper_pearson_lower(n_a, n, alpha)
            p_b_upper = np.full(len(xs), np.nan)
            certified = p_a_lower > 0.5
        radius = np.zeros(len(xs))
        if certified.any():  # p_a_lower is 0 where the selected class got no votes
            radius[certified] = self.radii(
                xs[0].numel(),
                sigma[certified],
                p_a_lower[certified],
                p_b_upper[certified] if self.separate_pb else None,
            )
        return [
            Certificate(
                int(c_a_hat[i]) if certified[i] else ABSTAIN,
                float(radius[i]),
                float(p_a_lower[i]),
                estimation[i],
                float(sigmas[i]),
                float(p_b_upper[i]),
            )
            for i in range(len(xs))
        ]

    def radii(
        self,
        dim: int,
        sigma: np.ndarray,
        p_a_lower: np.ndarray,
        p_b_upper: np.ndarray | None = None,
    ) -> np.ndarray:
        """Certified radii: Cohen's for ``rate = 0``, else Theorem 7 at this rate; with
        ``p_b_upper`` the two-sided forms (Cohen et al.'s and Appendix B.5's), where a
        ``p_b_upper`` above ``1 - p_a_lower`` is lowered to it (that bounds the runner-up too)."""
        if p_b_upper is not None:
            p_b_upper = np.minimum(p_b_upper, 1.0 - p_a_lower)
        if self.rate == 0:
            return cohen_radius(sigma, p_a_lower, p_b_upper)
        return idrs_radius(sigma, self.rate, dim, p_a_lower, p_b_upper)

    def predict(self, x: torch.Tensor, sigma: float, n: int, alpha: float, index: int) -> int:
        """Cohen et al.'s PREDICT: the top class, or ``ABSTAIN``.

        With probability at least ``1 - alpha`` the returned class (if not ``ABSTAIN``) is
        the smoothed classifier's prediction at ``x``.
        """
        _check_sampling(sigma, 1, n, alpha)
        counts = self._counts(x.unsqueeze(0), [sigma], n, [index], _PREDICTION)[0]
        top_two = np.argsort(counts)[::-1][:2]
        n_a, n_b = counts[top_two[0]], counts[top_two[1]]
        if binomial_abstain_test(n_a, n_b, alpha):
            return ABSTAIN
        return int(top_two[0])

    def _counts(
        self, xs: torch.Tensor, sigmas: list[float], num: int, indices: list[int], stage: int
    ) -> np.ndarray:
        """Class counts ``[k x classes]`` of the base classifier on ``num`` noisy copies of
        each input, whole noise blocks per forward pass, counted on the device."""
        self.base_classifier.eval()
        blocks = -(-num // NOISE_BLOCK)
        tail = num - (blocks - 1) * NOISE_BLOCK  # samples used from each input's last block
        work = [(i, b) for i in range(len(xs)) for b in range(blocks)]
        counts = torch.zeros((len(xs), self.num_classes), dtype=torch.long, device=xs.device)
        autocast = torch.autocast(
            xs.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None
        )
        rows = min(self.blocks_per_batch, len(work)) * NOISE_BLOCK
        buffer = torch.empty((rows, *xs.shape[1:]), device=xs.device, dtype=xs.dtype)
        with torch.no_grad(), autocast:
            for first in range(0, len(work), self.blocks_per_batch):
                chunk = work[first : first + self.blocks_per_batch]
                sizes = [tail if b == blocks - 1 else NOISE_BLOCK for _, b in chunk]
                batch = buffer[: sum(sizes)]  # one allocation per call, refilled every batch
                segments: list[list[int]] = []  # [input, first row, end row] of each input
                offset = 0
                for (i, b), size in zip(chunk, sizes, strict=True):
                    self._block_noise(xs[i], indices[i], stage, b, batch[offset : offset + size])
                    if segments and segments[-1][0] == i:
                        segments[-1][2] = offset + size
                    else:
                        segments.append([i, offset, offset + size])
                    offset += size
                for i, start, end in segments:  # one pass per input, not per block
                    batch[start:end].mul_(sigmas[i]).add_(xs[i])
                if self.channels_last and batch.ndim == 4:
                    batch = batch.contiguous(memory_format=torch.channels_last)
                logits = self.base_classifier(batch)
                if logits.shape != (len(batch), self.num_classes):
                    raise ValueError(
                        f"the base classifier returned logits of shape {tuple(logits.shape)} "
                        f"for {len(batch)} inputs; expected ({len(batch)}, {self.num_classes}) "
                        "(num_classes)"
                    )
                predictions = logits.argmax(dim=1)
                for i, start, end in segments:
                    counts[i] += torch.bincount(predictions[start:end], minlength=self.num_classes)
        return counts.cpu().numpy()

    def _block_noise(
        self, x: torch.Tensor, index: int, stage: int, block: int, out: torch.Tensor
    ) -> None:
        """Fill ``out`` with the first ``len(out)`` samples of this block's noise stream."""
        generator = torch.Generator(device=x.device)
        generator.manual_seed(_block_seed(self.seed, index, stage, block))
        if len(out) == NOISE_BLOCK:
            torch.randn(out.shape, generator=generator, out=out)
        else:  # always draw the whole block, so the stream does not depend on how much is used
            full = torch.randn((NOISE_BLOCK, *x.shape), generator=generator, device=x.device)
            out.copy_(full[: len(out)])


def _block_seed(seed: int, index: int, stage: int, block: int) -> int:
    """A 63-bit seed from the tuple, via numpy's SeedSequence (well mixed, platform-stable)."""
    return int(
        np.random.SeedSequence([seed, index, stage, block]).generate_state(1, np.uint64)[0] >> 1
    )


def _check_sampling(sigma: float, n0: int, n: int, alpha: float) -> None:
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma!r}")
    if n0 < 1 or n < 1:
        raise ValueError(f"n0 and n must be at least 1, got n0={n0}, n={n}")
    if n0 > n:
        raise ValueError(f"n0 ({n0}) must not exceed n ({n})")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
