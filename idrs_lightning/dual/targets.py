"""The router's soft targets: which noise level certifies a training input best (Sun, Mao,
Vechev, "Dual Randomized Smoothing: Beyond Global Noise Variance", ICLR 2026, Section 5.2).

For a training input ``x`` with label ``y`` and each level ``sigma_k`` with its expert ``f_k``,
``n`` noisy copies ``x + sigma_k eps`` give the count ``n_y`` of expert votes for ``y``; its
Clopper-Pearson lower bound ``p_k`` at level ``1 - alpha`` gives Cohen's radius

    R_k = sigma_k Phi^{-1}(p_k)  if p_k > 1/2,  else 0

(Cohen et al. 2019, CERTIFY with the label as the selected class: a wrong or uncertain majority
has radius 0). The soft target is ``softmax_k(R_k)`` (temperature 1); an input with ``R_k = 0``
at every level teaches the router nothing and is dropped.

These radii are labels, not certificates: ``n`` is small (the paper's 100) and ``alpha``
(:data:`TARGET_ALPHA`, the certification runs' 0.001 by default) only sets how much evidence a
level needs before it earns a radius. Every level's copies of an input share one noise stream
(``eps`` scaled by ``sigma_k``: common random numbers, so that the levels are compared on the
same draws), a stream of its own (:func:`target_seed`) that no certification draws, so the
router's choice never depends on the noise that certifies it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from idrs_lightning.certification import clopper_pearson_lower, cohen_radius
from idrs_lightning.certification.dual import check_levels
from idrs_lightning.noise import ESTIMATION
from idrs_lightning.settings import CertificationSettings
from idrs_lightning.smoothing import Smooth
from idrs_lightning.smoothing.checks import checked_sigmas
from idrs_lightning.validation import InvalidSetting, check_float, check_int

log = logging.getLogger(__name__)

#: The paper's noise samples per input and level for the targets.
TARGET_SAMPLES = 100
#: Confidence of the target radii (a setting of the labels, not a certificate's guarantee).
TARGET_ALPHA = 0.001
#: Inputs certified per call of the counting loop (bounds the memory on the device).
TARGET_CHUNK = 1024
#: Mixed into the targets' noise seed: the router learns from noise that no certification
#: draws (a test input's index can equal a training input's).
TARGET_STREAM = 0x5EED_0002


def target_seed(seed: int) -> int:
    """The noise seed of the targets for the run seed ``seed``."""
    return int(np.random.SeedSequence([seed, TARGET_STREAM]).generate_state(1)[0] >> 1)


def level_radii(
    experts: Sequence[nn.Module],
    sigmas: Sequence[float],
    x: torch.Tensor,
    y: Sequence[int] | np.ndarray,
    indices: Sequence[int],
    samples: int = TARGET_SAMPLES,
    alpha: float = TARGET_ALPHA,
    *,
    num_classes: int,
    seed: int = 0,
    batch_size: int = 1000,
    input_range: tuple[float, float] | None = None,
) -> NDArray[np.float64]:
    """Each input's radius ``R_k`` at each level ``[inputs x levels]`` (see the module).

    Args:
        experts: one base classifier per level (eval mode, on the device of the counting).
        sigmas: the levels, increasing.
        x: the inputs, on the CPU or the experts' device (moved there chunk by chunk).
        y: their labels.
        indices: their indices in the training split (they seed the noise, with ``seed``).
        samples, alpha: ``n`` and the Clopper-Pearson level of the radii.
        num_classes: the experts' classes.
        batch_size: noisy samples per forward pass.
        input_range: the data's range of values (inputs outside it are warned of).

    Raises:
        InvalidSetting: for levels that do not fit the experts, bad counts or lengths.
    """
    levels = check_levels(sigmas, len(experts))
    check_int("samples", samples, 1)
    check_float("alpha", alpha, 0.0, 1.0)
    labels = np.asarray(y, dtype=np.int64)
    rows = list(indices)
    if not len(x) == len(labels) == len(rows):
        raise InvalidSetting(
            "y",
            f"and indices must have one entry per input ({len(x)}), got {len(labels)} and "
            f"{len(rows)}",
        )
    outside = labels[(labels < 0) | (labels >= num_classes)]
    if len(outside):
        raise InvalidSetting("y", f"must be classes in [0, {num_classes}), got {outside[0]}")
    settings = CertificationSettings(
        n0=samples, n=samples, alpha=alpha, batch_size=batch_size, seed=target_seed(seed)
    )
    device = _device(experts)
    radii = np.zeros((len(labels), len(levels)))
    for start in range(0, len(labels), TARGET_CHUNK):
        part = slice(start, start + TARGET_CHUNK)
        chunk, chunk_rows = x[part].to(device), rows[part]
        for level, (expert, sigma) in enumerate(zip(experts, levels, strict=True)):
            smooth = Smooth(expert, num_classes, 0.0, settings, input_range)
            sigma_each = checked_sigmas(smooth, chunk, [sigma] * len(chunk), chunk_rows)
            counts = smooth.counts(chunk, sigma_each, samples, chunk_rows, ESTIMATION)
            votes = counts[np.arange(len(chunk)), labels[part]]
            radii[part, level] = _radius(votes, samples, alpha, sigma)
        done = min(start + TARGET_CHUNK, len(labels))
        if done * 10 // len(labels) > start * 10 // len(labels):  # about every tenth
            log.info("targets: %d of %d inputs", done, len(labels))
    return radii


def soft_targets(radii: NDArray[np.float64]) -> tuple[torch.Tensor, NDArray[np.bool_]]:
    """``softmax_k(R_k)`` per input (float32 ``[inputs x levels]``) and the mask of inputs
    with a positive radius at some level (the others are to be dropped)."""
    values = torch.from_numpy(np.asarray(radii, dtype=np.float64))
    return torch.softmax(values, dim=1).float(), (values > 0).any(dim=1).numpy()


def _radius(votes: np.ndarray, samples: int, alpha: float, sigma: float) -> np.ndarray:
    """Cohen's radius from the label's votes; 0 where its lower bound is at most 1/2."""
    p_lower = clopper_pearson_lower(votes, samples, alpha)
    radius = np.zeros(len(votes))
    certified = p_lower > 0.5
    if certified.any():
        radius[certified] = cohen_radius(sigma, p_lower[certified])
    return radius


def _device(experts: Sequence[nn.Module]) -> torch.device:
    """Where the experts' weights are (the CPU for experts without any)."""
    for expert in experts:
        for tensor in (*expert.parameters(), *expert.buffers()):
            return tensor.device
    return torch.device("cpu")


def level_weights(targets: torch.Tensor) -> torch.Tensor:
    """Per input, the paper's class-rebalancing weight ``1 / (K q_k)``: ``k`` the level its
    target favours, ``q_k`` the share of inputs favouring it, ``K`` the number of levels
    (weights average 1). Without it the router learns the commonest level and sends every
    input there (measured: Fashion-MNIST, 4,190 kept inputs, 58 % favouring sigma = 1.0, every
    test input routed to 1.0)."""
    favoured = targets.argmax(dim=1)
    share = torch.bincount(favoured, minlength=targets.shape[1]).double() / len(favoured)
    return (1.0 / (targets.shape[1] * share[favoured])).float()
