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
from idrs_lightning.noise import ESTIMATION, NOISE_BLOCK
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


@dataclass(frozen=True)
class SequentialEstimation:
    """Each input's estimation stream (the samples fixed-n CERTIFY draws first), look by look,
    until its answer at every radius of ``radii`` is settled or ``n`` samples are drawn; the
    bound is :class:`~idrs_lightning.certification.SequentialCertifier`'s confidence sequence,
    valid at the look where the input stopped (level ``1 - alpha`` over all looks)."""

    settings: CertificationSettings
    radii: np.ndarray

    def estimate(self, smooth: Smooth, selected: Selected) -> Estimate:
        s, xs, sigma, indices = self.settings, selected.xs, selected.sigma, selected.indices
        thresholds = radius_thresholds(self.radii, sigma, smooth.r, xs[0].numel())
        certifier = SequentialCertifier(thresholds, look_schedule(s.n), s.alpha)
        counts = np.zeros((len(xs), smooth.num_classes), dtype=np.int64)
        samples = np.zeros(len(xs), dtype=np.int64)
        rows = np.arange(len(xs))
        while not certifier.finished:
            active = np.flatnonzero(certifier.active)
            target = certifier.next_n
            drawn = int(samples[active[0]])  # active inputs have all reached the same look
            chosen = [indices[i] for i in active]
            first_block = drawn // NOISE_BLOCK
            counts[active] += smooth.counts(
                xs[active], sigma[active], target - drawn, chosen, ESTIMATION, first_block
            )
            samples[active] = target
            certifier.update(counts[rows, selected.c_a_hat])
        p_a_lower = certifier.result().p_a_lower
        return Estimate(counts, samples, p_a_lower > 0.5, p_a_lower, np.full(len(xs), np.nan))


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
