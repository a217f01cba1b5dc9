"""Dual randomized smoothing: CERTIFY the router at its own noise level, then the chosen
expert at the level the router chose (the guarantee and the alpha split:
:mod:`idrs_lightning.certification.dual`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from idrs_lightning.certification.dual import (
    ROUTER_SHARE,
    check_levels,
    dual_radius,
    split_alpha,
)
from idrs_lightning.settings import CertificationSettings
from idrs_lightning.smoothing.certificate import ABSTAIN, Certificate
from idrs_lightning.smoothing.core import Smooth
from idrs_lightning.validation import InvalidSetting, check_positive

#: Mixed into the router's noise seed, so that its noise is independent of the experts'.
ROUTER_STREAM = 0x5EED_0001


@dataclass(frozen=True)
class DualCertificate:
    """The dual classifier's certificate for one input, with both stages' certificates.

    ``choice`` is the router's certified choice of noise level (an index into the levels, or
    ``ABSTAIN``), ``sigma`` its noise level (NaN without a choice); ``classifier`` is the
    chosen expert's certificate (``None`` without a choice)."""

    prediction: int
    radius: float
    router: Certificate
    classifier: Certificate | None
    sigma: float

    @property
    def choice(self) -> int:
        return self.router.prediction

    @property
    def router_radius(self) -> float:
        return self.router.radius

    @property
    def classifier_radius(self) -> float:
        return 0.0 if self.classifier is None else self.classifier.radius

    @property
    def samples(self) -> int:
        """Estimation samples of both stages."""
        return self.router.samples + (0 if self.classifier is None else self.classifier.samples)


def router_settings(settings: CertificationSettings, router_share: float) -> CertificationSettings:
    """The router's CERTIFY settings: the run's, at ``alpha_v`` and on its own noise stream."""
    seed = int(np.random.SeedSequence([settings.seed, ROUTER_STREAM]).generate_state(1)[0] >> 1)
    return replace(settings, alpha=split_alpha(settings.alpha, router_share).router, seed=seed)


def expert_settings(settings: CertificationSettings, router_share: float) -> CertificationSettings:
    """An expert's CERTIFY settings: the run's, at ``alpha_c``."""
    return replace(settings, alpha=split_alpha(settings.alpha, router_share).classifier)


class DualSmooth:
    """The dual smoothed classifier ``G(x) = g_{g_v(x)}(x)``.

    Args:
        router: maps a batch to logits over the noise levels (eval mode, normalisation first).
        experts: one base classifier per noise level, in the order of ``sigmas``.
        sigmas: the experts' noise levels, increasing.
        router_sigma: the router's noise level sigma_v.
        num_classes: the experts' classes.
        settings: n0, n, alpha (the certificate's, split between the stages), batch size and
            seed, used by both stages; fixed n only (sequential CERTIFY would need a stopping
            rule over both stages).
        router_share: the router's share of alpha.
        input_range: the data's range of values (see :class:`Smooth`).
    """

    def __init__(
        self,
        router: nn.Module,
        experts: Sequence[nn.Module],
        sigmas: Sequence[float],
        router_sigma: float,
        num_classes: int,
        settings: CertificationSettings = CertificationSettings(),  # noqa: B008 (frozen)
        router_share: float = ROUTER_SHARE,
        input_range: tuple[float, float] | None = None,
    ) -> None:
        levels = check_levels(sigmas, len(experts))
        if settings.sequential or settings.separate_pb:
            raise InvalidSetting("sequential", "dual smoothing certifies with a fixed n only")
        self.sigmas = levels
        self.router_sigma = float(check_positive("router_sigma", router_sigma))
        self.router = Smooth(
            router, len(levels), 0.0, router_settings(settings, router_share), input_range
        )
        self.experts = [
            Smooth(e, num_classes, 0.0, expert_settings(settings, router_share), input_range)
            for e in experts
        ]
        self.num_classes = num_classes
        self.settings = settings

    @property
    def forward_passes(self) -> int:
        """Rows through the router and every expert so far."""
        return self.router.passes.rows + sum(e.passes.rows for e in self.experts)

    def certify_many(
        self,
        xs: torch.Tensor,
        indices: Sequence[int],
        labels: Sequence[int] | np.ndarray | None = None,
    ) -> list[DualCertificate]:
        """Dual CERTIFY for every input of ``xs``: the router's CERTIFY at ``router_sigma``
        for all, then each chosen expert's CERTIFY at its level for the inputs routed to it.

        With probability at least ``1 - alpha``, an input's prediction, if not ``ABSTAIN``,
        is ``G``'s on the ball of radius ``radius`` around it. ``labels`` turns on the
        evaluation shortcut in the experts' stage
        (:func:`~idrs_lightning.smoothing.certify_groups`).
        """
        indices = list(indices)
        routed = self.router.certify_many(xs, [self.router_sigma] * len(xs), indices)
        experts: list[Certificate | None] = [None] * len(xs)
        for level, expert in enumerate(self.experts):
            chosen = [i for i, c in enumerate(routed) if c.prediction == level]
            if not chosen:
                continue
            label = None if labels is None else np.asarray(labels)[chosen]
            certified = expert.certify_many(
                xs[chosen], [self.sigmas[level]] * len(chosen), [indices[i] for i in chosen], label
            )
            for i, certificate in zip(chosen, certified, strict=True):
                experts[i] = certificate
        return [_combine(r, e, self.sigmas) for r, e in zip(routed, experts, strict=True)]


def _combine(
    router: Certificate, expert: Certificate | None, sigmas: list[float]
) -> DualCertificate:
    if expert is None:
        return DualCertificate(ABSTAIN, 0.0, router, None, float("nan"))
    radius = float(dual_radius(router.radius, expert.radius))
    return DualCertificate(expert.prediction, radius, router, expert, sigmas[router.prediction])
