"""Dual randomized smoothing's certificate against analytic truth.

A half-space router ``h(z) = 1[w.z > b]`` smoothed at ``sigma_v`` chooses level 1 with
probability ``Phi((w.x - b) / (sigma_v |w|))``; its smoothed choice is constant exactly on the
ball whose radius is the distance from ``x`` to the hyperplane. Half-space experts likewise.
So the radius the guarantee promises (the smaller of the two distances, with the class of the
expert the true router chooses) is known without sampling, and every certificate can be judged
against it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from idrs_lightning.certification.dual import dual_radius, split_alpha
from idrs_lightning.settings import CertificationSettings
from idrs_lightning.smoothing import ABSTAIN
from idrs_lightning.smoothing.dual import DualSmooth
from idrs_lightning.validation import InvalidSetting


class HalfSpace(nn.Module):
    """Two logits whose argmax is ``1[w.z > b]``."""

    def __init__(self, w: np.ndarray, b: float) -> None:
        super().__init__()
        self.w = torch.tensor(w, dtype=torch.float64)
        self.b = b

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        score = z.double() @ self.w - self.b
        return torch.stack([torch.zeros_like(score), score], dim=1)

    def side(self, x: np.ndarray) -> np.ndarray:
        return (x @ self.w.numpy() > self.b).astype(int)

    def distance(self, x: np.ndarray) -> np.ndarray:
        return np.abs(x @ self.w.numpy() - self.b) / np.linalg.norm(self.w.numpy())


ROUTER = HalfSpace(np.array([1.0, 0.0]), 0.0).eval()
EXPERTS = [
    HalfSpace(np.array([0.0, 1.0]), 0.1).eval(),
    HalfSpace(np.array([1.0, 1.0]), -0.2).eval(),
]
SIGMAS, ROUTER_SIGMA = [0.25, 0.5], 0.3


def truth(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """G's class at each input and the radius the guarantee promises there."""
    choice = ROUTER.side(x)
    expert_class = np.choose(choice, [e.side(x) for e in EXPERTS])
    expert_distance = np.choose(choice, [e.distance(x) for e in EXPERTS])
    return expert_class, np.minimum(ROUTER.distance(x), expert_distance)


def certify(x: np.ndarray, alpha: float, n: int = 1000, seed: int = 0) -> list:
    settings = CertificationSettings(n0=100, n=n, alpha=alpha, batch_size=1000, seed=seed)
    dual = DualSmooth(ROUTER, EXPERTS, SIGMAS, ROUTER_SIGMA, 2, settings)
    return dual.certify_many(torch.tensor(x), list(range(len(x))))


def inputs_near_the_boundaries(count: int, seed: int) -> np.ndarray:
    """Inputs within about one noise level of the router's or an expert's hyperplane."""
    return np.random.default_rng(seed).uniform(-0.6, 0.6, size=(count, 2))


def wrong(certificates: list, x: np.ndarray, combine=min) -> np.ndarray:
    """Certificates that claim a class other than G's or a radius beyond the guarantee's."""
    true_class, true_radius = truth(x)
    claims = []
    for c, label, radius in zip(certificates, true_class, true_radius, strict=True):
        if c.prediction == ABSTAIN:
            claims.append(False)
            continue
        claimed = combine(c.router_radius, c.classifier_radius)
        claims.append(c.prediction != label or claimed > radius)
    return np.array(claims)


def test_certificates_are_wrong_at_most_at_the_alpha_rate() -> None:
    """At alpha = 0.2 over 400 inputs near the boundaries: the rate of wrong certificates is
    below alpha (a one-sided binomial test at level 1e-4), and most inputs are certified."""
    alpha, count = 0.2, 400
    x = inputs_near_the_boundaries(count, seed=1)
    certificates = certify(x, alpha)
    failures = int(wrong(certificates, x).sum())
    assert stats.binom.sf(failures - 1, count, alpha) > 1e-4, f"{failures} of {count} wrong"
    assert sum(c.prediction != ABSTAIN for c in certificates) > count / 2


def test_the_check_catches_the_larger_radius() -> None:
    """The same check turns red for a certificate that took the larger of the two radii:
    the minimum is what the guarantee allows."""
    alpha, count = 0.2, 400
    x = inputs_near_the_boundaries(count, seed=1)
    failures = int(wrong(certify(x, alpha), x, combine=max).sum())
    assert stats.binom.sf(failures - 1, count, alpha) < 1e-4


def test_radii_approach_the_truth_with_many_samples() -> None:
    """With n = 100,000 the certified radius is within a few percent of the guarantee's
    wherever it is not tiny: the bounds are tight, so the soundness check has power."""
    x = np.array([[0.4, 0.5], [-0.3, -0.4], [0.2, -0.5], [-0.5, 0.35]])
    true_class, true_radius = truth(x)
    certificates = certify(x, alpha=0.001, n=100_000)
    for c, label, radius in zip(certificates, true_class, true_radius, strict=True):
        assert c.prediction == label
        assert 0.9 * radius < c.radius <= radius


def test_router_choice_sets_the_sigma_and_the_expert() -> None:
    x = np.array([[0.5, 0.5], [-0.5, 0.5]])
    first, second = certify(x, alpha=0.001, n=10_000)
    assert (first.choice, first.sigma) == (1, 0.5)
    assert (second.choice, second.sigma) == (0, 0.25)
    assert first.samples == second.samples == 20_000
    assert first.radius == min(first.router_radius, first.classifier_radius)


def test_a_router_without_a_majority_abstains() -> None:
    """On the router's hyperplane both levels are equally likely: no level is certified, so
    the dual classifier abstains and no expert is sampled."""
    x = np.array([[0.0, 0.5]])
    (certificate,) = certify(x, alpha=0.001, n=10_000)
    assert certificate.prediction == ABSTAIN and certificate.radius == 0.0
    assert certificate.classifier is None and np.isnan(certificate.sigma)


def test_alpha_is_split_into_parts_that_sum_to_it() -> None:
    split = split_alpha(0.001, 0.25)
    assert split.router == pytest.approx(0.00025) and split.router + split.classifier == 0.001
    assert dual_radius([0.3, 0.0], [0.2, 0.5]).tolist() == [0.2, 0.0]
    with pytest.raises(ValueError):
        split_alpha(0.001, 1.0)


def test_levels_must_match_the_experts_and_increase() -> None:
    settings = CertificationSettings(n0=100, n=100)
    with pytest.raises(InvalidSetting, match="sigmas"):
        DualSmooth(ROUTER, EXPERTS, [0.5, 0.25], ROUTER_SIGMA, 2, settings)
    with pytest.raises(InvalidSetting, match="sigmas"):
        DualSmooth(ROUTER, EXPERTS, [0.25], ROUTER_SIGMA, 2, settings)
    sequential = CertificationSettings(n0=100, n=1000, sequential=True)
    with pytest.raises(InvalidSetting, match="fixed n"):
        DualSmooth(ROUTER, EXPERTS, SIGMAS, ROUTER_SIGMA, 2, sequential)


def test_each_stage_bounds_at_its_share_of_alpha_on_its_own_noise() -> None:
    settings = CertificationSettings(n0=100, n=1000, alpha=0.01, seed=3)
    dual = DualSmooth(ROUTER, EXPERTS, SIGMAS, ROUTER_SIGMA, 2, settings, router_share=0.25)
    assert dual.router.settings.alpha == pytest.approx(0.0025)
    assert [e.settings.alpha for e in dual.experts] == [pytest.approx(0.0075)] * 2
    assert dual.router.settings.seed != settings.seed  # the router's noise is its own
    assert {e.settings.seed for e in dual.experts} == {settings.seed}
