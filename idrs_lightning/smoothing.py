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

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from idrs_lightning.certification import binomial_abstain_test, certified_radius, decide
from idrs_lightning.certification.sequential import (
    SequentialCertifier,
    look_schedule,
    radius_thresholds,
)
from idrs_lightning.noise import (
    ESTIMATION,
    NOISE_BLOCK,
    PREDICTION,
    SELECTION,
    blocks_needed,
    fill_block_noise,
    plan_batches,
)
from idrs_lightning.settings import CertificationSettings
from idrs_lightning.validation import check_non_negative

ABSTAIN = -1
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Certificate:
    """Outcome of :meth:`Smooth.certify` for one input."""

    prediction: int
    radius: float
    p_a_lower: float
    counts: np.ndarray
    sigma: float
    p_b_upper: float  # nan unless the runner-up was bounded separately
    samples: int  # estimation samples drawn (n, or where sequential CERTIFY stopped)

    @property
    def skipped(self) -> bool:
        """Estimation skipped by the evaluation shortcut (:meth:`Smooth.certify_groups`):
        ``prediction`` is the selected class, which is not the label; not a certificate."""
        return self.samples == 0


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
        settings: n0, n, alpha, batch size, seed and the runner-up option.
        input_range: the data's range of values, e.g. ``(0.0, 1.0)`` for pixels; an input
            outside it (normalised twice?) is certified as given, with a warning.
        radii: the radius grid at which sequential CERTIFY (``settings.sequential``) settles
            each input's answer; required in that mode, unused otherwise.
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
        if settings.sequential and not radii:
            raise ValueError("sequential certification needs a radius grid (radii)")
        self.radii = np.asarray(radii if radii is not None else [], dtype=np.float64)
        self.base_classifier = base_classifier
        self.num_classes = num_classes
        self.r = float(check_non_negative("r", r))
        self.settings = settings
        self.input_range = input_range

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
        sigmas: Sequence[float],
        indices: Sequence[int],
        labels: Sequence[int] | None = None,
    ) -> list[Certificate]:
        """:meth:`certify` for every input of ``xs`` (shape ``[k x ...]``); ``labels`` as in
        :meth:`certify_groups`."""
        groups = self.certify_groups(xs, sigmas, indices, labels)
        return [cert for group in groups for cert in group]

    def certify_groups(
        self,
        xs: torch.Tensor,
        sigmas: Sequence[float],
        indices: Sequence[int],
        labels: Sequence[int] | None = None,
    ) -> Iterator[list[Certificate]]:
        """:meth:`certify_many`, yielding the certificates of each group of inputs whose noisy
        samples share forward passes (several inputs per pass when ``n`` is small against the
        batch size); each input's noise and counts are exactly those of :meth:`certify`.

        ``labels`` turns on the evaluation shortcut: an input whose selected class (from the
        ``n0`` selection samples) is not its label skips estimation and comes back
        :attr:`Certificate.skipped` (``samples`` 0, radius 0, ``p_a_lower`` NaN, the selected
        class as prediction). Certified accuracy at every radius, clean accuracy and ACR are
        those of full CERTIFY, which could only abstain or predict that wrong class; such a
        row is not a certificate, and abstention counts it as a prediction.
        """
        if not len(xs) == len(sigmas) == len(indices):
            raise ValueError(
                f"lengths differ: {len(xs)} inputs, {len(sigmas)} sigmas, {len(indices)} indices"
            )
        if labels is not None and len(labels) != len(xs):
            raise ValueError(f"lengths differ: {len(xs)} inputs, {len(labels)} labels")
        sigma = _checked(self, xs, sigmas, indices)
        blocks = blocks_needed(self.settings.n)
        group = max(1, self.settings.blocks_per_batch // blocks)
        for first in range(0, len(xs), group):
            chosen = slice(first, first + group)
            label = None if labels is None else np.asarray(labels[chosen], dtype=np.int64)
            yield self._certify_group(xs[chosen], sigma[chosen], list(indices[chosen]), label)

    def predict(self, x: torch.Tensor, sigma: float, index: int) -> int:
        """Cohen et al.'s PREDICT from ``n`` samples: the top class, or ``ABSTAIN``.

        With probability at least ``1 - alpha`` the returned class (if not ``ABSTAIN``) is
        the smoothed classifier's prediction at ``x``.
        """
        s = self.settings
        sigmas = _checked(self, x.unsqueeze(0), [sigma], [index])
        counts = self._counts(x.unsqueeze(0), sigmas, s.n, [index], PREDICTION)[0]
        top_two = np.argsort(counts)[::-1][:2]
        if binomial_abstain_test(counts[top_two[0]], counts[top_two[1]], s.alpha):
            return ABSTAIN
        return int(top_two[0])

    def _certify_group(
        self, xs: torch.Tensor, sigma: np.ndarray, indices: list[int], labels: np.ndarray | None
    ) -> list[Certificate]:
        selection = self._counts(xs, sigma, self.settings.n0, indices, SELECTION)
        c_a_hat = selection.argmax(axis=1)
        if labels is None or (c_a_hat == labels).all():
            return self._estimate(xs, sigma, indices, c_a_hat)
        certificates = [
            _skipped(int(c), self.num_classes, float(v))
            for c, v in zip(c_a_hat, sigma, strict=True)
        ]
        rows = np.flatnonzero(c_a_hat == labels)
        if rows.size:
            chosen = [indices[i] for i in rows]
            estimated = self._estimate(xs[rows], sigma[rows], chosen, c_a_hat[rows])
            for i, cert in zip(rows, estimated, strict=True):
                certificates[i] = cert
        return certificates

    def _estimate(
        self, xs: torch.Tensor, sigma: np.ndarray, indices: list[int], c_a_hat: np.ndarray
    ) -> list[Certificate]:
        """CERTIFY's estimation and decision for inputs whose class ``c_a_hat`` is selected."""
        s = self.settings
        if s.sequential:
            estimation, samples, p_a_lower = self._estimate_sequentially(
                xs, sigma, indices, c_a_hat
            )
            certified = p_a_lower > 0.5
            p_b_upper = np.full(len(xs), np.nan)
        else:
            estimation = self._counts(xs, sigma, s.n, indices, ESTIMATION)
            rows = np.arange(len(xs))
            others = estimation.copy()
            others[rows, c_a_hat] = -1
            decision = decide(
                estimation[rows, c_a_hat], others.max(axis=1), s.n, s.alpha, s.separate_pb
            )
            certified, p_a_lower = decision.certified, decision.p_a_lower
            p_b_upper, samples = decision.p_b_upper, np.full(len(xs), s.n)
        radius = np.zeros(len(xs))
        if certified.any():  # p_a_lower is 0 where the selected class got no votes
            radius[certified] = certified_radius(
                sigma[certified],
                self.r,
                xs[0].numel(),
                p_a_lower[certified],
                p_b_upper[certified] if s.separate_pb else None,
            )
        return [
            Certificate(
                int(c_a_hat[i]) if certified[i] else ABSTAIN,
                float(radius[i]),
                float(p_a_lower[i]),
                estimation[i],
                float(sigma[i]),
                float(p_b_upper[i]),
                int(samples[i]),
            )
            for i in range(len(xs))
        ]

    def _estimate_sequentially(
        self, xs: torch.Tensor, sigma: np.ndarray, indices: list[int], c_a_hat: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sequential CERTIFY's estimation: draw each input's estimation stream look by look
        (the same samples fixed-n CERTIFY uses first) until its answer at every grid radius
        is settled. Returns the counts, the samples drawn and the anytime-valid lower bound
        at the stop (:class:`~idrs_lightning.certification.SequentialCertifier`)."""
        s = self.settings
        looks = look_schedule(s.n)
        thresholds = radius_thresholds(self.radii, sigma, self.r, xs[0].numel())
        certifier = SequentialCertifier(thresholds, looks, s.alpha)
        counts = np.zeros((len(xs), self.num_classes), dtype=np.int64)
        samples = np.zeros(len(xs), dtype=np.int64)
        rows = np.arange(len(xs))
        while not certifier.finished:
            active = np.flatnonzero(certifier.active)
            target = certifier.next_n
            drawn = int(samples[active[0]])  # active inputs have all reached the same look
            chosen = [indices[i] for i in active]
            counts[active] += self._counts(
                xs[active],
                sigma[active],
                target - drawn,
                chosen,
                ESTIMATION,
                first_block=drawn // NOISE_BLOCK,
            )
            samples[active] = target
            certifier.update(counts[rows, c_a_hat])
        return counts, samples, certifier.result().p_a_lower

    def _counts(
        self,
        xs: torch.Tensor,
        sigma: np.ndarray,
        num: int,
        indices: list[int],
        stage: int,
        first_block: int = 0,
    ) -> np.ndarray:
        """Class counts ``[k x classes]`` of the base classifier on ``num`` noisy copies of
        each input (from noise block ``first_block`` on), whole noise blocks per forward
        pass, counted on the device."""
        counts = torch.zeros((len(xs), self.num_classes), dtype=torch.long, device=xs.device)
        nonfinite = torch.zeros(len(xs), dtype=torch.long, device=xs.device)
        batches = list(plan_batches(len(xs), num, self.settings.blocks_per_batch, first_block))
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
                if logits.shape != (len(batch), self.num_classes):
                    raise ValueError(
                        f"the base classifier returned logits of shape {tuple(logits.shape)} "
                        f"for {len(batch)} inputs; expected ({len(batch)}, {self.num_classes}) "
                        "(num_classes)"
                    )
                predictions = logits.argmax(dim=1)
                broken = ~torch.isfinite(logits).all(dim=1)  # checked once, after the loop
                for i, start, end in plan.segments:
                    counts[i] += torch.bincount(predictions[start:end], minlength=self.num_classes)
                    nonfinite[i] += broken[start:end].sum()
        _refuse_nonfinite(nonfinite.cpu().numpy(), num, indices)
        return counts.cpu().numpy()


def _refuse_nonfinite(nonfinite: np.ndarray, num: int, indices: Sequence[int]) -> None:
    """Votes are the argmax of finite logits only: argmax of NaN is an arbitrary class, and a
    broken model's "votes" would certify every input.

    Raises:
        ValueError: naming the first input with non-finite logits, before any of its votes
            is used.
    """
    if nonfinite.any():
        first = int(np.argmax(nonfinite > 0))
        raise ValueError(
            f"the base classifier's logits are NaN or infinite for input {indices[first]} (on "
            f"{int(nonfinite[first])} of {num} noisy copies): the model is broken (did its "
            "training diverge? under reduced precision, did a logit overflow?), so it gets "
            "no certificate"
        )


def _skipped(prediction: int, num_classes: int, sigma: float) -> Certificate:
    """The evaluation shortcut's row: no estimation samples, no certificate."""
    counts = np.zeros(num_classes, dtype=np.int64)
    return Certificate(prediction, 0.0, float("nan"), counts, sigma, float("nan"), 0)


def _checked(
    smooth: Smooth, xs: torch.Tensor, sigmas: Sequence[float], indices: Sequence[int]
) -> np.ndarray:
    """The sigmas as float64, after refusing what cannot be sampled soundly (and warning of
    inputs outside the data's range)."""
    if smooth.base_classifier.training:
        raise ValueError("the base classifier is in training mode; call .eval() on it first")
    sigma = np.asarray(sigmas, dtype=np.float64)
    bad = ~(np.isfinite(sigma) & (sigma > 0))
    if bad.any():
        raise ValueError(f"every sigma must be positive and finite, got {sigma[bad][0]!r}")
    finite = torch.isfinite(xs).flatten(start_dim=1).all(dim=1).cpu().numpy()
    if not finite.all():
        index = indices[int(np.argmin(finite))]
        raise ValueError(f"input {index} has NaN or infinite entries; it cannot be certified")
    if smooth.input_range is not None and len(xs):
        low, high = smooth.input_range
        flat = xs.flatten(start_dim=1)
        outside = ((flat < low) | (flat > high)).any(dim=1).cpu().numpy()
        if outside.any():
            log.warning(
                "%d input(s), the first %d, have values outside the data's range [%g, %g] "
                "(normalised twice?); they are certified as given",
                int(outside.sum()),
                indices[int(np.argmax(outside))],
                low,
                high,
            )
    return sigma
