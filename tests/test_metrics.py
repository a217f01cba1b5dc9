"""Certification metrics against figures worked out by hand."""

import numpy as np
import pytest
import torch

from idrs_lightning.reporting.metrics import (
    CertificationMetrics,
    certification_summary,
    certified_accuracy,
)

# Six inputs, three classes: correct with radius 0.5 / 0.2 / 0.0; wrong; abstain; correct 1.0.
LABELS = [0, 0, 1, 1, 2, 2]
PREDICTIONS = [0, 0, 1, 0, -1, 2]
RADIUS = [0.5, 0.2, 0.0, 0.3, 0.0, 1.0]
AT = [0.0, 0.25, 0.5, 0.75, 1.0]


def test_certified_accuracy_counts_radius_at_least_r() -> None:
    correct = np.array(PREDICTIONS) == np.array(LABELS)
    got = certified_accuracy(RADIUS, correct, AT)
    np.testing.assert_allclose(got, [4 / 6, 2 / 6, 2 / 6, 1 / 6, 1 / 6])


def test_summary_figures() -> None:
    summary = certification_summary(LABELS, PREDICTIONS, RADIUS, AT, num_classes=3)
    assert summary.clean_accuracy == pytest.approx(4 / 6)
    assert summary.abstention_rate == pytest.approx(1 / 6)
    assert summary.misclassification_rate == pytest.approx(1 / 6)
    # ACR counts only correct inputs: (0.5 + 0.2 + 0.0 + 1.0) / 6.
    assert summary.average_certified_radius == pytest.approx(1.7 / 6)
    assert summary.per_class_accuracy == pytest.approx((1.0, 0.5, 0.5))
    assert summary.class_accuracy_std == pytest.approx(np.std([1.0, 0.5, 0.5]))


def test_metric_equals_functional_across_updates() -> None:
    metric = CertificationMetrics(num_classes=3, at_radii=AT)
    for part in (slice(0, 2), slice(2, 6)):
        metric.update(
            torch.tensor(LABELS[part]),
            torch.tensor(PREDICTIONS[part]),
            torch.tensor(RADIUS[part], dtype=torch.float64),
        )
    computed = metric.result()
    assert computed.summary == certification_summary(LABELS, PREDICTIONS, RADIUS, AT, 3)
    assert computed.radius == tuple(RADIUS)
    assert computed.correct == tuple(p == y for p, y in zip(PREDICTIONS, LABELS, strict=True))
    metric.reset()
    metric.update(torch.tensor([1]), torch.tensor([1]), torch.tensor([0.4]))
    assert metric.result().summary.count == 1
    assert metric.compute()["labels"].tolist() == [1]


def test_absent_class_is_nan_and_left_out_of_the_std() -> None:
    summary = certification_summary([0, 0], [0, -1], [0.1, 0.0], AT, num_classes=3)
    assert np.isnan(summary.per_class_accuracy[1])
    assert summary.class_accuracy_std == 0.0
