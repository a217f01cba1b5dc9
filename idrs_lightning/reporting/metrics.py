"""Certification metrics (IDRS paper, Section 4): a functional core and a torchmetrics Metric.

Per input: the label, the prediction (``-1`` = abstain) and the certified radius. An input is
certified at radius ``R`` if it is predicted correctly with radius at least ``R`` (Cohen et al.
count ``radius >= R``; the radius of an abstention is 0 and never counts).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from idrs_lightning.smoothing import ABSTAIN


def certified_accuracy(
    radius: ArrayLike, correct: ArrayLike, at_radii: ArrayLike
) -> NDArray[np.float64]:
    """Fraction of inputs predicted correctly with certified radius ``>= R``, for each R."""
    radius = np.asarray(radius, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    at = np.asarray(at_radii, dtype=np.float64)
    if radius.size == 0:
        return np.full(at.shape, np.nan)
    return ((radius[None, :] >= at[:, None]) & correct[None, :]).mean(axis=1)


def dense_radii(radii: Sequence[ArrayLike]) -> np.ndarray:
    """400 radii from 0 past the largest certified radius among the arrays ``radii``: the grid
    on which a curve drawn from per-input radii is exact up to its resolution."""
    largest = max((float(np.max(r, initial=0.0)) for r in radii), default=0.0)
    return np.linspace(0.0, max(largest * 1.05, 1e-3), 400)


def certification_summary(
    labels: ArrayLike,
    predictions: ArrayLike,
    radius: ArrayLike,
    at_radii: ArrayLike,
    num_classes: int,
) -> dict[str, object]:
    """Every figure a run reports.

    Returns a dict with ``certified_accuracy`` (list, one per ``at_radii``), ``clean_accuracy``
    (correct predictions of the smoothed classifier), ``abstention_rate``,
    ``misclassification_rate`` (wrong, not abstained), ``average_certified_radius`` (radius of
    correct inputs, 0 otherwise, averaged over all), ``per_class_accuracy`` (clean accuracy
    by true class; NaN for absent classes) and ``class_accuracy_std`` (its standard deviation
    over present classes: the paper's fairness measure, Tables 3, 7, 9).
    """
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    radius = np.asarray(radius, dtype=np.float64)
    correct = predictions == labels
    abstained = predictions == ABSTAIN
    per_class = np.array(
        [correct[labels == c].mean() if np.any(labels == c) else np.nan for c in range(num_classes)]
    )
    present = per_class[~np.isnan(per_class)]
    count = max(len(labels), 1)
    return {
        "count": len(labels),
        "radii": np.asarray(at_radii, dtype=np.float64).tolist(),
        "certified_accuracy": certified_accuracy(radius, correct, at_radii).tolist(),
        "clean_accuracy": float(correct.sum() / count),
        "abstention_rate": float(abstained.sum() / count),
        "misclassification_rate": float((~correct & ~abstained).sum() / count),
        "average_certified_radius": float(np.where(correct, radius, 0.0).sum() / count),
        "per_class_accuracy": per_class.tolist(),
        "class_accuracy_std": float(present.std()) if present.size else float("nan"),
    }


class CertificationMetrics(Metric):
    """torchmetrics front end of :func:`certification_summary`, synchronised across processes.

    ``update(labels, predictions, radius)`` with 1-D tensors (prediction ``-1`` = abstain);
    ``compute()`` returns the summary dict plus the gathered inputs' ``radius`` and ``correct``
    (lists, in gathering order), from which curves are drawn exactly.

    Args:
        num_classes: number of classes.
        at_radii: radii of the certified-accuracy table.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, num_classes: int, at_radii: ArrayLike, **kwargs: object) -> None:
        super().__init__(**kwargs)
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.num_classes = num_classes
        self.at_radii = np.asarray(at_radii, dtype=np.float64)
        self.add_state("labels", default=[], dist_reduce_fx="cat")
        self.add_state("predictions", default=[], dist_reduce_fx="cat")
        self.add_state("radius", default=[], dist_reduce_fx="cat")

    def update(self, labels: torch.Tensor, predictions: torch.Tensor, radius: torch.Tensor) -> None:
        self.labels.append(labels.long().flatten())
        self.predictions.append(predictions.long().flatten())
        self.radius.append(radius.double().flatten())

    def compute(self) -> dict[str, object]:
        labels = dim_zero_cat(self.labels).cpu().numpy()
        predictions = dim_zero_cat(self.predictions).cpu().numpy()
        radius = dim_zero_cat(self.radius).cpu().numpy()
        summary = certification_summary(
            labels, predictions, radius, self.at_radii, self.num_classes
        )
        return summary | {"radius": radius.tolist(), "correct": (predictions == labels).tolist()}
