"""CERTIFY's estimation step, a strategy chosen by the settings: a fixed number of samples
(Cohen et al. 2019) or sequential sampling that stops each input once its answer at every
radius of a grid is settled (an anytime-valid confidence sequence).

Each strategy turns the inputs' selected classes into estimation counts, the samples drawn and
the bounds CERTIFY decides on; :class:`~idrs_lightning.smoothing.Smooth` draws the samples and
computes the radius.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from idrs_lightning.certification import decide
from idrs_lightning.certification.sequential import (
    SequentialCertifier,
    look_schedule,
    radius_thresholds,
)
from idrs_lightning.noise import ESTIMATION, NOISE_BLOCK, Work, blocks_needed, samples_per_input
from idrs_lightning.settings import CertificationSettings
from idrs_lightning.validation import InvalidSetting

if TYPE_CHECKING:
    from idrs_lightning.smoothing.core import Smooth


@dataclass(frozen=True)
class Estimate:
    """The estimation step's outcome for ``k`` inputs (arrays of length ``k``)."""

    counts: np.ndarray  # [k x classes] estimation counts
    samples: np.ndarray  # estimation samples drawn per input
    certified: np.ndarray  # the abstain rule passed (p_A's lower bound above the threshold)
    p_a_lower: np.ndarray
    p_b_upper: np.ndarray  # nan unless the runner-up is bounded separately


@dataclass(frozen=True)
class Selected:
    """Inputs ``xs`` ``[k x ...]`` at noise levels ``sigma``, with their data set ``indices``
    (which seed their noise) and the class ``c_a_hat`` that CERTIFY's selection chose."""

    xs: torch.Tensor
    sigma: np.ndarray
    indices: list[int]
    c_a_hat: np.ndarray


class Estimation(Protocol):
    """How CERTIFY estimates p_A for inputs whose class ``c_a_hat`` is selected."""

    def estimate(self, smooth: Smooth, selected: Selected) -> Estimate: ...

    def inputs_per_group(self) -> int:
        """Inputs estimated together, so that their samples fill whole forward passes."""
        ...


@dataclass(frozen=True)
class FixedSampleEstimation:
    """``n`` samples per input, then :func:`~idrs_lightning.certification.decide`: the
    Clopper-Pearson bound on p_A at level ``1 - alpha`` (and on p_B with ``separate_pb``)."""

    settings: CertificationSettings

    def estimate(self, smooth: Smooth, selected: Selected) -> Estimate:
        s, c_a_hat = self.settings, selected.c_a_hat
        counts = smooth.counts(selected.xs, selected.sigma, s.n, selected.indices, ESTIMATION)
        rows = np.arange(len(counts))
        others = counts.copy()
        others[rows, c_a_hat] = -1
        decision = decide(counts[rows, c_a_hat], others.max(axis=1), s.n, s.alpha, s.separate_pb)
        samples = np.full(len(counts), s.n)
        return Estimate(counts, samples, decision.certified, decision.p_a_lower, decision.p_b_upper)

    def inputs_per_group(self) -> int:
        return max(1, self.settings.blocks_per_batch // blocks_needed(self.settings.n))


#: Forward passes that a group's first look fills in sequential CERTIFY: inputs leave the group
#: at different looks, and the rest must still fill the passes.
SEQUENTIAL_GROUP_PASSES = 4


@dataclass(frozen=True)
class SequentialEstimation:
    """Each input's estimation stream (the samples fixed-n CERTIFY draws first), look by look,
    until its answer at every radius of ``radii`` is settled or ``n`` samples are drawn; the
    bound is :class:`~idrs_lightning.certification.SequentialCertifier`'s confidence sequence,
    valid at the look where the input stopped (level ``1 - alpha`` over all looks).

    Inputs move through the looks independently: every forward pass is filled with the next
    noise blocks of whichever inputs are still active, so passes stay full while enough
    samples are outstanding, whatever look each input is at."""

    settings: CertificationSettings
    radii: np.ndarray

    @property
    def looks(self) -> np.ndarray:
        """The schedule: looks on whole noise blocks, up to ``n``."""
        return look_schedule(self.settings.n, step=NOISE_BLOCK)

    def estimate(self, smooth: Smooth, selected: Selected) -> Estimate:
        s, xs, sigma, indices = self.settings, selected.xs, selected.sigma, selected.indices
        thresholds = radius_thresholds(self.radii, sigma, smooth.r, xs[0].numel())
        certifier = SequentialCertifier(thresholds, self.looks, s.alpha)
        counts = np.zeros((len(xs), smooth.num_classes), dtype=np.int64)
        drawn = np.zeros(len(xs), dtype=np.int64)
        while not certifier.finished:
            work = outstanding_blocks(drawn, certifier.next_n, certifier.active)
            if len(work) > s.blocks_per_batch:  # whole passes now, the rest with the next look
                work = work[: len(work) // s.blocks_per_batch * s.blocks_per_batch]
            counts += smooth.block_counts(xs, sigma, indices, ESTIMATION, work)
            drawn += samples_per_input(work, len(xs))
            reached = np.flatnonzero(certifier.active & (drawn == certifier.next_n))
            certifier.update(reached, counts[reached, selected.c_a_hat[reached]])
        p_a_lower = certifier.result().p_a_lower
        return Estimate(counts, drawn, p_a_lower > 0.5, p_a_lower, np.full(len(xs), np.nan))

    def inputs_per_group(self) -> int:
        first = blocks_needed(int(self.looks[0]))
        return max(1, SEQUENTIAL_GROUP_PASSES * self.settings.blocks_per_batch // first)


def outstanding_blocks(drawn: np.ndarray, target: np.ndarray, active: np.ndarray) -> list[Work]:
    """The noise blocks that take each active input from ``drawn`` samples (a whole number of
    blocks) to ``target``, input after input."""
    work: list[Work] = []
    for i in np.flatnonzero(active):
        for block in range(int(drawn[i]) // NOISE_BLOCK, blocks_needed(int(target[i]))):
            work.append((int(i), block, min(NOISE_BLOCK, int(target[i]) - block * NOISE_BLOCK)))
    return work


def estimation_for(settings: CertificationSettings, radii: Sequence[float] | None) -> Estimation:
    """The settings' strategy: sequential (which needs the radius grid it settles) or fixed n.

    Raises:
        InvalidSetting: sequential without radii.
    """
    if not settings.sequential:
        return FixedSampleEstimation(settings)
    if radii is None or len(radii) == 0:
        raise InvalidSetting("radii", "must be given: sequential certification needs a radius grid")
    return SequentialEstimation(settings, np.asarray(radii, dtype=np.float64))
