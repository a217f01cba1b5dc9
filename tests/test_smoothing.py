"""Smooth: PREDICT / CERTIFY on a base classifier whose smoothed probabilities are known."""

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from idrs_lightning.certification import cohen_radius
from idrs_lightning.certify_job.evaluation import EvaluatedClassifier
from idrs_lightning.settings import CertificationSettings, InvalidSetting
from idrs_lightning.smoothing import ABSTAIN, Smooth, certify_groups


class HalfSpace(nn.Module):
    """f(x) = 1 if x_0 > 0 else 0: the smoothed P(f = 1) at x is Phi(x_0 / sigma) exactly."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = x.reshape(len(x), -1)[:, 0]
        return torch.stack([-first, first], dim=1)


def _smooth(model: nn.Module, num_classes: int, r: float = 0.0, **settings: object) -> Smooth:
    return Smooth(model.eval(), num_classes, r, CertificationSettings(**settings))


def _point(margin: float, dim: int = 64) -> torch.Tensor:
    x = torch.zeros(dim)
    x[0] = margin
    return x


def test_certificate_is_below_the_true_radius() -> None:
    # The smoothed half-space is constant exactly within distance `margin` of x.
    smooth = _smooth(HalfSpace(), 2, n0=100, n=20_000, alpha=0.001, batch_size=500)
    for margin in (0.1, 0.3, 0.6):
        cert = smooth.certify(_point(margin), sigma=0.25, index=1)
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


@pytest.mark.parametrize("r", [0.0, 0.05])
def test_separate_runner_up_bound_certifies_a_top_class_below_one_half(r: float) -> None:
    x = torch.zeros(64)
    settings = {"n0": 100, "n": 20_000, "alpha": 0.001}
    two_class = _smooth(ThreeBands(), 3, r, **settings).certify(x, 1.0, index=5)
    assert two_class.prediction == ABSTAIN  # p_a < 1/2
    cert = _smooth(ThreeBands(), 3, r, separate_pb=True, **settings).certify(x, 1.0, index=5)
    assert cert.prediction == 1
    assert cert.p_a_lower <= 0.475 and cert.p_b_upper >= 0.3  # bounds hold (alpha = 1e-3)
    # at most the true two-sided radius of these smoothed probabilities (Cohen et al.)
    assert 0.0 < cert.radius <= float(cohen_radius(1.0, 0.475, 0.3))
    assert cert.radius == pytest.approx(
        float(cohen_radius(1.0, cert.p_a_lower, cert.p_b_upper)), rel=0.2 if r else 1e-12
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
@pytest.mark.parametrize("r", [0.0, 0.05])
def test_selected_class_without_estimation_votes_abstains(r: float, separate_pb: bool) -> None:
    smooth = _smooth(ChangesMind(), 2, r, n0=100, n=1_000, separate_pb=separate_pb)
    cert = smooth.certify(_point(0.0), 0.25, index=0)
    assert (cert.prediction, cert.radius, cert.p_a_lower) == (ABSTAIN, 0.0, 0.0)


def test_logits_of_the_wrong_width_are_one_clear_error() -> None:
    with pytest.raises(ValueError, match=r"logits of shape \(100, 2\).*expected \(100, 3\)"):
        _smooth(HalfSpace(), 3, n0=100, n=1_000).certify(_point(0.5), 0.25, index=0)


def test_input_dependent_radius_is_smaller_than_cohens() -> None:
    x = _point(0.5)
    a = _smooth(HalfSpace(), 2, n0=100, n=10_000).certify(x, 0.25, index=7)
    b = _smooth(HalfSpace(), 2, 0.5, n0=100, n=10_000).certify(x, 0.25, index=7)
    assert a.p_a_lower == b.p_a_lower  # same noise, same counts
    assert 0 < b.radius < a.radius


def test_counts_do_not_depend_on_batch_size_or_restarts() -> None:
    x = _point(0.05)
    settings = {"n0": 100, "n": 1_050, "alpha": 0.01}
    counts = [
        _smooth(HalfSpace(), 2, batch_size=size, **settings).certify(x, 0.5, index=3).counts
        for size in (100, 300, 1_000, 5_000)
    ]
    assert all(np.array_equal(counts[0], other) for other in counts[1:])
    again = _smooth(HalfSpace(), 2, **settings).certify(x, 0.5, index=3).counts
    assert np.array_equal(counts[0], again)
    other_input = _smooth(HalfSpace(), 2, **settings).certify(x, 0.5, index=4).counts
    assert not np.array_equal(counts[0], other_input)
    other_seed = _smooth(HalfSpace(), 2, seed=1, **settings).certify(x, 0.5, index=3).counts
    assert not np.array_equal(counts[0], other_seed)


def test_predict_abstains_on_the_boundary_and_answers_far_from_it() -> None:
    smooth = _smooth(HalfSpace(), 2, n0=1, n=1_000, alpha=0.001)
    assert smooth.predict(_point(0.0), sigma=0.25, index=0) == ABSTAIN
    assert smooth.predict(_point(-1.0), sigma=0.25, index=0) == 0


def test_low_confidence_abstains() -> None:
    cert = _smooth(HalfSpace(), 2, n0=100, n=200).certify(_point(0.001), 0.5, index=0)
    assert cert.prediction == ABSTAIN and cert.radius == 0.0


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"n0": 500, "n": 100}, r"n0 must not exceed n \(100\), got 500"),
        ({"n0": 0}, "n0 must be an integer >= 1, got 0"),
        ({"n": 2.5}, "n must be an integer >= 1, got 2.5"),
        ({"alpha": 1.5}, r"alpha must be a number in \(0.0, 1.0\), got 1.5"),
        ({"batch_size": 99}, "batch_size must be an integer >= 100, got 99"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
    ],
)
def test_bad_settings_fail_on_construction(settings: dict, message: str) -> None:
    with pytest.raises(InvalidSetting, match=message) as error:
        CertificationSettings(**settings)
    assert error.value.setting == next(iter(settings))
    assert error.value.for_option("--X").startswith("--X must")


@pytest.mark.parametrize("sigma", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_sigma_is_refused_before_sampling(sigma: float) -> None:
    model = ChangesMind()
    with pytest.raises(ValueError, match="every sigma must be positive and finite"):
        _smooth(model, 2, n0=10, n=100).certify(_point(0.1), sigma, index=0)
    with pytest.raises(ValueError, match="every sigma must be positive and finite"):
        _smooth(model, 2, n0=10, n=100).predict(_point(0.1), sigma, index=0)
    assert model.calls == 0


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_inputs_are_refused_before_sampling(value: float) -> None:
    model = ChangesMind()
    xs = torch.stack([_point(0.1), _point(0.2)])
    xs[1, 5] = value  # one bad entry in the second input
    with pytest.raises(ValueError, match="input 8 has NaN or infinite entries"):
        _smooth(model, 2, n0=10, n=100).certify_many(xs, [0.25, 0.25], [7, 8])
    assert model.calls == 0


def test_a_model_in_training_mode_is_refused_and_left_alone() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2), nn.BatchNorm1d(2))
    smooth = Smooth(model, 2, 0.0, CertificationSettings(n0=10, n=100))
    with pytest.raises(ValueError, match=r"training mode; call \.eval\(\)"):
        smooth.certify(_point(0.1), 0.25, index=0)
    assert model.training


def test_reduced_precision_and_channels_last_certify_the_classifier_as_evaluated() -> None:
    torch.manual_seed(0)
    conv = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    x = torch.rand(1, 8, 8)
    settings = CertificationSettings(n0=100, n=2_000, alpha=0.01)
    plain = Smooth(conv.eval(), 2, 0.0, settings).certify(x, 0.25, index=5)
    fast_model = EvaluatedClassifier(conv, precision="bf16", channels_last=True).eval()
    fast = Smooth(fast_model, 2, 0.0, settings).certify(x, 0.25, index=5)
    assert fast.counts.sum() == 2_000
    # bfloat16 may flip a few borderline votes, never many.
    assert np.abs(fast.counts - plain.counts).sum() <= 0.02 * 2_000
    # The wrapper does evaluate in bfloat16, with channels-last weights.
    assert fast_model(torch.rand(3, 1, 8, 8)).dtype == torch.bfloat16
    assert conv[0].weight.is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(ValueError, match="precision must be one of"):
        EvaluatedClassifier(conv, precision="8")


@pytest.mark.parametrize("batch_size", [100, 1_000, 2_000])
def test_several_inputs_in_one_pass_match_one_at_a_time(batch_size: int) -> None:
    smooth = _smooth(HalfSpace(), 2, 0.3, n0=50, n=250, alpha=0.01, batch_size=batch_size)
    xs = torch.stack([_point(m) for m in (-0.4, 0.02, 0.3, 0.9, 0.5)])
    sigmas = [0.2, 0.25, 0.3, 0.35, 0.4]
    indices = [10, 11, 12, 13, 14]
    groups = list(certify_groups(smooth, xs, sigmas, indices))
    assert [len(g) for g in groups] == {100: [1] * 5, 1_000: [3, 2], 2_000: [5]}[batch_size]
    for x, sigma, index, cert in zip(
        xs, sigmas, indices, [cert for group in groups for cert in group], strict=True
    ):
        alone = smooth.certify(x, sigma, index)
        assert np.array_equal(cert.counts, alone.counts)
        assert (cert.prediction, cert.radius, cert.p_a_lower) == (
            alone.prediction,
            alone.radius,
            alone.p_a_lower,
        )


def test_no_inputs_give_no_certificates() -> None:
    smooth = _smooth(HalfSpace(), 2, n0=10, n=100)
    assert smooth.certify_many(torch.zeros((0, 64)), [], []) == []


def test_inputs_outside_the_data_range_are_certified_with_a_warning(caplog) -> None:
    settings = CertificationSettings(n0=10, n=100)
    smooth = Smooth(HalfSpace().eval(), 2, 0.0, settings, input_range=(0.0, 1.0))
    inside = torch.full((2, 64), 0.5)
    with caplog.at_level("WARNING"):
        smooth.certify_many(inside, [0.25, 0.25], [0, 1])
    assert not caplog.records
    normalised = (inside - 0.9) / 0.2  # normalised before the model's own Normalize layer
    with caplog.at_level("WARNING"):
        certs = smooth.certify_many(normalised, [0.25, 0.25], [4, 5])
    assert len(certs) == 2
    assert "2 input(s), the first 4, have values outside the data's range [0, 1]" in caplog.text


class BrokenOnFar(nn.Module):
    """The half-space, with NaN (or inf) logits for noisy copies whose x_0 exceeds 1: a model
    that is broken for some inputs only, and for some of their noisy copies only."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = HalfSpace()(x)
        far = x.reshape(len(x), -1)[:, 0] > 1
        return torch.where(far[:, None], torch.full_like(logits, self.value), logits)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("sequential", [False, True])
def test_non_finite_logits_give_no_certificate(value: float, sequential: bool) -> None:
    smooth = Smooth(
        BrokenOnFar(value).eval(),
        2,
        0.0,
        CertificationSettings(n0=20, n=200, batch_size=100, sequential=sequential),
        radii=[0.1],
    )
    fine = smooth.certify_many(torch.stack([_point(0.3), _point(-0.3)]), [0.1, 0.1], [4, 5])
    assert [c.prediction for c in fine] == [1, 0], "finite logits certify as before"
    # input 8 lies at 1.1: most of its noisy copies (sigma 0.25) have broken logits; input 7,
    # at -0.5, has none (6 sigma away)
    inputs = torch.stack([_point(-0.5), _point(1.1)])
    with pytest.raises(ValueError, match=r"NaN or infinite for input 8 \(on \d+ of 20 noisy"):
        smooth.certify_many(inputs, [0.25, 0.25], [7, 8])
    with pytest.raises(ValueError, match="for input 8"):
        smooth.predict(_point(1.1), 0.25, 8)
