"""Smooth: PREDICT / CERTIFY on a base classifier whose smoothed probabilities are known."""

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from idrs_lightning.certification import cohen_radius
from idrs_lightning.smoothing import ABSTAIN, Smooth


class HalfSpace(nn.Module):
    """f(x) = 1 if x_0 > 0 else 0: the smoothed P(f = 1) at x is Phi(x_0 / sigma) exactly."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = x.reshape(len(x), -1)[:, 0]
        return torch.stack([-first, first], dim=1)


def _point(margin: float, dim: int = 64) -> torch.Tensor:
    x = torch.zeros(dim)
    x[0] = margin
    return x


def test_certificate_is_below_the_true_radius() -> None:
    # The smoothed half-space is constant exactly within distance `margin` of x.
    smooth = Smooth(HalfSpace(), num_classes=2, batch_size=500)
    for margin in (0.1, 0.3, 0.6):
        cert = smooth.certify(_point(margin), sigma=0.25, n0=100, n=20_000, alpha=0.001, index=1)
        true_p_a = stats.norm.cdf(margin / 0.25)
        assert cert.prediction == 1
        assert cert.p_a_lower <= true_p_a
        assert 0 < cert.radius <= margin
        assert cert.radius == pytest.approx(float(cohen_radius(0.25, cert.p_a_lower)))
        assert cert.counts.sum() == 20_000


class ThreeBands(nn.Module):
    """Class 0, 1, 2 on x_0 < -0.524, [-0.524, 0.755), beyond: at x = 0 with sigma = 1 the
    smoothed probabilities are 0.3, 0.475 and 0.225, so the top class is below 1/2."""

    edges = (-0.5244005127080407, 0.7554150263604693)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = x.reshape(len(x), -1)[:, 0]
        band = (first >= self.edges[0]).long() + (first >= self.edges[1]).long()
        return nn.functional.one_hot(band, 3).float()


@pytest.mark.parametrize("rate", [0.0, 0.05])
def test_separate_runner_up_bound_certifies_a_top_class_below_one_half(rate: float) -> None:
    x = torch.zeros(64)
    two_class = Smooth(ThreeBands(), 3, rate=rate).certify(x, 1.0, 100, 20_000, 0.001, index=5)
    assert two_class.prediction == ABSTAIN  # p_a < 1/2
    cert = Smooth(ThreeBands(), 3, rate=rate, separate_pb=True).certify(
        x, 1.0, 100, 20_000, 0.001, index=5
    )
    assert cert.prediction == 1
    assert cert.p_a_lower <= 0.475 and cert.p_b_upper >= 0.3  # bounds hold (alpha = 1e-3)
    # at most the true two-sided radius of these smoothed probabilities (Cohen et al.)
    assert 0.0 < cert.radius <= float(cohen_radius(1.0, 0.475, 0.3))
    assert cert.radius == pytest.approx(
        float(cohen_radius(1.0, cert.p_a_lower, cert.p_b_upper)), rel=0.2 if rate else 1e-12
    )


class ChangesMind(nn.Module):
    """Class 0 on its first forward pass (the selection stage), class 1 ever after."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return nn.functional.one_hot(torch.full((len(x),), int(self.calls > 1)), 2).float()


@pytest.mark.parametrize("separate_pb", [False, True])
@pytest.mark.parametrize("rate", [0.0, 0.05])
def test_selected_class_without_estimation_votes_abstains(rate: float, separate_pb: bool) -> None:
    cert = Smooth(ChangesMind(), 2, rate=rate, separate_pb=separate_pb).certify(
        _point(0.0), 0.25, 100, 1_000, 0.001, index=0
    )
    assert (cert.prediction, cert.radius, cert.p_a_lower) == (ABSTAIN, 0.0, 0.0)


def test_logits_of_the_wrong_width_are_one_clear_error() -> None:
    with pytest.raises(ValueError, match=r"logits of shape \(100, 2\).*expected \(100, 3\)"):
        Smooth(HalfSpace(), 3).certify(_point(0.5), 0.25, 100, 1_000, 0.001, index=0)


def test_input_dependent_radius_is_smaller_than_cohens() -> None:
    constant = Smooth(HalfSpace(), num_classes=2)
    varying = Smooth(HalfSpace(), num_classes=2, rate=0.5)
    x = _point(0.5)
    a = constant.certify(x, 0.25, 100, 10_000, 0.001, index=7)
    b = varying.certify(x, 0.25, 100, 10_000, 0.001, index=7)
    assert a.p_a_lower == b.p_a_lower  # same noise, same counts
    assert 0 < b.radius < a.radius


def test_counts_do_not_depend_on_batch_size_or_restarts() -> None:
    x = _point(0.05)
    counts = [
        Smooth(HalfSpace(), 2, batch_size=size).certify(x, 0.5, 100, 1_050, 0.01, index=3).counts
        for size in (100, 300, 1_000, 5_000)
    ]
    assert all(np.array_equal(counts[0], other) for other in counts[1:])
    again = Smooth(HalfSpace(), 2).certify(x, 0.5, 100, 1_050, 0.01, index=3).counts
    assert np.array_equal(counts[0], again)
    other_input = Smooth(HalfSpace(), 2).certify(x, 0.5, 100, 1_050, 0.01, index=4).counts
    assert not np.array_equal(counts[0], other_input)


def test_predict_abstains_on_the_boundary_and_answers_far_from_it() -> None:
    smooth = Smooth(HalfSpace(), num_classes=2)
    assert smooth.predict(_point(0.0), sigma=0.25, n=1_000, alpha=0.001, index=0) == ABSTAIN
    assert smooth.predict(_point(-1.0), sigma=0.25, n=1_000, alpha=0.001, index=0) == 0


def test_low_confidence_abstains() -> None:
    cert = Smooth(HalfSpace(), 2).certify(_point(0.001), 0.5, 100, 200, 0.001, index=0)
    assert cert.prediction == ABSTAIN and cert.radius == 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n0": 500, "n": 100}, r"n0 \(500\) must not exceed n \(100\)"),
        ({"alpha": 1.5}, r"alpha must lie in \(0, 1\)"),
        ({"sigma": 0.0}, "sigma must be positive"),
    ],
)
def test_bad_sampling_arguments(kwargs: dict, message: str) -> None:
    arguments = {"sigma": 0.25, "n0": 10, "n": 100, "alpha": 0.01, "index": 0} | kwargs
    with pytest.raises(ValueError, match=message):
        Smooth(HalfSpace(), 2).certify(_point(0.1), **arguments)


def test_reduced_precision_and_channels_last_certify_the_classifier_as_evaluated() -> None:
    torch.manual_seed(0)
    conv = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    x = torch.rand(1, 8, 8)
    plain = Smooth(conv, 2).certify(x, 0.25, 100, 2_000, 0.01, index=5)
    fast = Smooth(conv, 2, autocast_dtype=torch.bfloat16, channels_last=True).certify(
        x, 0.25, 100, 2_000, 0.01, index=5
    )
    assert fast.counts.sum() == 2_000
    # bfloat16 may flip a few borderline votes, never many.
    assert np.abs(fast.counts - plain.counts).sum() <= 0.02 * 2_000


def test_several_inputs_in_one_pass_match_one_at_a_time() -> None:
    smooth = Smooth(HalfSpace(), num_classes=2, rate=0.3, batch_size=1_000)
    xs = torch.stack([_point(m) for m in (-0.4, 0.02, 0.3, 0.9)])
    sigmas = [0.2, 0.25, 0.3, 0.35]
    together = smooth.certify_many(xs, sigmas, 50, 250, 0.01, [10, 11, 12, 13])
    for x, sigma, index, cert in zip(xs, sigmas, [10, 11, 12, 13], together, strict=True):
        alone = smooth.certify(x, sigma, 50, 250, 0.01, index)
        assert np.array_equal(cert.counts, alone.counts)
        assert (cert.prediction, cert.radius, cert.p_a_lower) == (
            alone.prediction,
            alone.radius,
            alone.p_a_lower,
        )
