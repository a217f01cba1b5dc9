"""The smoothed classifier: Monte Carlo PREDICT and CERTIFY (Cohen et al. 2019, IDRS App. D).

``g(x) = argmax_c P(f(x + sigma(x) eps) = c)`` with ``eps ~ N(0, I)``. Noise comes in seeded
blocks (:mod:`idrs_lightning.noise`), so counts do not depend on the batch size, the device
count or restarts. The bounds, the abstain rule and the radius (Cohen's for constant noise,
Theorem 7's for an r-semi-elastic sigma(x)) are :mod:`idrs_lightning.certification`'s.

Each noisy sample ``x + sigma(x) eps`` is formed in float64 from the float64 ``sigma(x)`` and
rounded once to the input's dtype, a deterministic function of the sample that belongs to the
base classifier. The noise level drawn is thus sigma(x) as Eq. 1 evaluates it in float64, which
is r-semi-elastic up to ``|log|`` errors of about 1e-15 (float32 sigmas, off by up to 2^-24 in
log, would overstate Theorem 7's radius by up to 1e-5 relative at N = 150,528); Theorem 7's
radius stays sound for errors up to 1e-12, which its 1e-7 probability slack absorbs
(``tests/test_radius.py`` checks this at N = 150,528 against mpmath).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from idrs_lightning.certification import binomial_abstain_test, certified_radius
from idrs_lightning.noise import (
    PREDICTION,
    SELECTION,
    PassCount,
    Work,
    block_work,
    fill_block_noise,
    plan_batches,
    samples_per_input,
)
from idrs_lightning.settings import CertificationSettings
from idrs_lightning.smoothing.certificate import ABSTAIN, Certificate
from idrs_lightning.smoothing.checks import check_logits, checked_sigmas, refuse_nonfinite
from idrs_lightning.smoothing.estimation import Selected, estimation_for
from idrs_lightning.smoothing.groups import certify_groups
from idrs_lightning.validation import check_non_negative


class Smooth:
    """A smoothed classifier around a base classifier.

    Args:
        base_classifier: maps a batch ``(b, *shape)`` to logits ``(b, num_classes)``; it must
            be in eval mode, with normalisation as its first layer (noise lives in input
            space). Wrap it in
            :class:`~idrs_lightning.certify_job.evaluation.EvaluatedClassifier` for mixed
            precision or channels-last batches.
        num_classes: number of classes.
        r: the semi-elasticity of the sigma(x) that produced the per-input sigmas (0 for
            constant noise).
        settings: n0, n, alpha, batch size, seed, the runner-up option and the estimation
            (fixed n or sequential: :mod:`~idrs_lightning.smoothing.estimation`).
        input_range: the data's range of values, e.g. ``(0.0, 1.0)`` for pixels; an input
            outside it (normalised twice?) is certified as given, with a warning.
        radii: the radius grid at which sequential CERTIFY settles each input's answer;
            required in that mode, unused otherwise.
    """

    def __init__(
        self,
        base_classifier: nn.Module,
        num_classes: int,
        r: float = 0.0,
        settings: CertificationSettings = CertificationSettings(),  # noqa: B008 (frozen)
        input_range: tuple[float, float] | None = None,
        radii: Sequence[float] | None = None,
    ) -> None:
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.estimation = estimation_for(settings, radii)
        self.base_classifier = base_classifier
        self.num_classes = num_classes
        self.r = float(check_non_negative("r", r))
        self.settings = settings
        self.input_range = input_range
        self.passes = PassCount()

    def certify(self, x: torch.Tensor, sigma: float, index: int) -> Certificate:
        """Cohen et al.'s CERTIFY, with the radius of Theorem 7 when ``r > 0``.

        With probability at least ``1 - alpha`` over the noise, if the prediction is not
        ``ABSTAIN`` then the smoothed classifier predicts it within ``radius`` of ``x``; in
        sequential mode the bound is a confidence sequence and the guarantee holds at the
        look where the input stopped.

        Args:
            x: one input, shape ``[channel x height x width]`` (or ``[features]``).
            sigma: the noise level at ``x``, ``sigma(x)``.
            index: the input's index in its data set (seeds the noise).
        """
        return self.certify_many(x.unsqueeze(0), [sigma], [index])[0]

    def certify_many(
        self,
        xs: torch.Tensor,
        sigmas: Sequence[float] | np.ndarray,
        indices: Sequence[int],
        labels: Sequence[int] | np.ndarray | None = None,
    ) -> list[Certificate]:
        """:meth:`certify` for every input of ``xs``, several per forward pass; ``labels``
        turns on the evaluation shortcut (:func:`~idrs_lightning.smoothing.certify_groups`)."""
        return [c for group in certify_groups(self, xs, sigmas, indices, labels) for c in group]

    def predict(self, x: torch.Tensor, sigma: float, index: int) -> int:
        """Cohen et al.'s PREDICT from ``n`` samples: the top class, or ``ABSTAIN``.

        With probability at least ``1 - alpha`` the returned class (if not ``ABSTAIN``) is
        the smoothed classifier's prediction at ``x``.
        """
        s = self.settings
        sigmas = checked_sigmas(self, x.unsqueeze(0), [sigma], [index])
        counts = self.counts(x.unsqueeze(0), sigmas, s.n, [index], PREDICTION)[0]
        top_two = np.argsort(counts)[::-1][:2]
        if binomial_abstain_test(counts[top_two[0]], counts[top_two[1]], s.alpha):
            return ABSTAIN
        return int(top_two[0])

    def select(self, xs: torch.Tensor, sigma: np.ndarray, indices: list[int]) -> np.ndarray:
        """CERTIFY's selection: each input's top class on ``n0`` noisy copies."""
        return self.counts(xs, sigma, self.settings.n0, indices, SELECTION).argmax(axis=1)

    def certify_selected(
        self, xs: torch.Tensor, sigma: np.ndarray, indices: list[int], c_a_hat: np.ndarray
    ) -> list[Certificate]:
        """CERTIFY's estimation (the settings' strategy), abstain rule and radius for inputs
        whose selected class is ``c_a_hat``."""
        estimate = self.estimation.estimate(self, Selected(xs, sigma, indices, c_a_hat))
        certified, radius = estimate.certified, np.zeros(len(xs))
        if certified.any():  # p_a_lower is 0 where the selected class got no votes
            p_b_upper = estimate.p_b_upper[certified] if self.settings.separate_pb else None
            radius[certified] = certified_radius(
                sigma[certified], self.r, xs[0].numel(), estimate.p_a_lower[certified], p_b_upper
            )
        return [
            Certificate(
                int(c_a_hat[i]) if certified[i] else ABSTAIN,
                float(radius[i]),
                float(estimate.p_a_lower[i]),
                estimate.counts[i],
                float(sigma[i]),
                float(estimate.p_b_upper[i]),
                int(estimate.samples[i]),
            )
            for i in range(len(xs))
        ]

    def counts(
        self, xs: torch.Tensor, sigma: np.ndarray, num: int, indices: list[int], stage: int
    ) -> np.ndarray:
        """Class counts ``[k x classes]`` of the base classifier on the first ``num`` noisy
        copies of each input."""
        return self.block_counts(xs, sigma, indices, stage, block_work(len(xs), num))

    def block_counts(
        self, xs: torch.Tensor, sigma: np.ndarray, indices: list[int], stage: int, work: list[Work]
    ) -> np.ndarray:
        """Class counts ``[k x classes]`` of the base classifier on the noise blocks ``work``
        (``(input, block, rows)``, in order), whole blocks per forward pass, counted on the
        device; :attr:`passes` records each pass."""
        counts = torch.zeros((len(xs), self.num_classes), dtype=torch.long, device=xs.device)
        nonfinite = torch.zeros(len(xs), dtype=torch.long, device=xs.device)
        batches = list(plan_batches(work, self.settings.blocks_per_batch))
        buffer = torch.empty(
            (max(b.rows for b in batches), *xs.shape[1:]), device=xs.device, dtype=xs.dtype
        )
        inputs = xs.double()  # once per call, not once per batch
        with torch.no_grad():
            for plan in batches:
                batch = buffer[: plan.rows]  # one allocation per call, refilled every batch
                for i, block, start, end in plan.blocks:
                    fill_block_noise(batch[start:end], self.settings.seed, indices[i], stage, block)
                for i, start, end in plan.segments:  # one pass per input, not per block
                    noise = batch[start:end]
                    # x + sigma * eps in float64, rounded once: the noise level is sigma(x)
                    # itself, not a float32 rounding of it (see the module docstring)
                    noise.copy_(torch.add(inputs[i], noise.double(), alpha=float(sigma[i])))
                logits = self.base_classifier(batch)
                self.passes.record(plan.rows)
                check_logits(logits, len(batch), self.num_classes)
                predictions = logits.argmax(dim=1)
                broken = ~torch.isfinite(logits).all(dim=1)  # checked once, after the loop
                for i, start, end in plan.segments:
                    counts[i] += torch.bincount(predictions[start:end], minlength=self.num_classes)
                    nonfinite[i] += broken[start:end].sum()
        refuse_nonfinite(nonfinite.cpu().numpy(), samples_per_input(work, len(xs)), indices)
        return counts.cpu().numpy()
