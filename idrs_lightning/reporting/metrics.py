"""Certification metrics (IDRS paper, Section 4): a functional core and a torchmetrics Metric.

Per input: the label, the prediction (``-1`` = abstain) and the certified radius. An input is
certified at radius ``R`` if it is predicted correctly with radius at least ``R`` (Cohen et al.
count ``radius >= R``; the radius of an abstention is 0 and never counts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from idrs_lightning.reporting.summary import CertificationSummary
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
) -> CertificationSummary:
    """Every figure a run reports, from its per-input labels, predictions and radii
    (:class:`~idrs_lightning.reporting.summary.CertificationSummary` says what each is)."""
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
    return CertificationSummary(
        count=len(labels),
        radii=tuple(np.asarray(at_radii, dtype=np.float64).tolist()),
        certified_accuracy=tuple(certified_accuracy(radius, correct, at_radii).tolist()),
        clean_accuracy=float(correct.sum() / count),
        abstention_rate=float(abstained.sum() / count),
        misclassification_rate=float((~correct & ~abstained).sum() / count),
        average_certified_radius=float(np.where(correct, radius, 0.0).sum() / count),
        per_class_accuracy=tuple(per_class.tolist()),
        class_accuracy_std=float(present.std()) if present.size else float("nan"),
    )


@dataclass(frozen=True)
class CertificationResult:
    """A summary with the per-input ``radius`` and ``correct`` it was computed from (in
    gathering order), from which curves are drawn exactly."""

    summary: CertificationSummary
    radius: tuple[float, ...]
    correct: tuple[bool, ...]

    def curve(self) -> tuple[np.ndarray, np.ndarray]:
        """``radius`` and ``correct`` as arrays, as the plots and charts take them."""
        return np.asarray(self.radius, dtype=np.float64), np.asarray(self.correct, dtype=bool)

    def to_json(self) -> dict[str, object]:
        """The summary's JSON followed by ``radius`` and ``correct`` (lists)."""
        return self.summary.to_json() | {"radius": list(self.radius), "correct": list(self.correct)}

    @classmethod
    def from_json(cls, content: Mapping[str, Any]) -> CertificationResult:
        """The result whose :meth:`to_json` is ``content``."""
        return cls(
            CertificationSummary.from_json(content),
            tuple(content["radius"]),
            tuple(content["correct"]),
        )


class CertificationMetrics(Metric):
    """torchmetrics front end of :func:`certification_summary`, synchronised across processes.

    ``update(labels, predictions, radius)`` with 1-D tensors (prediction ``-1`` = abstain);
    ``compute()`` returns the gathered inputs and ``result()`` their
    :class:`CertificationResult`.

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

    def compute(self) -> dict[str, np.ndarray]:
        """The gathered inputs' ``labels``, ``predictions`` and ``radius``, in gathering
        order."""
        return {
            "labels": dim_zero_cat(self.labels).cpu().numpy(),
            "predictions": dim_zero_cat(self.predictions).cpu().numpy(),
            "radius": dim_zero_cat(self.radius).cpu().numpy(),
        }

    def result(self) -> CertificationResult:
        """The summary of the gathered inputs, with their radii and correctness (a method
        beside :meth:`compute`, as torchmetrics refuses frozen dataclasses from it)."""
        gathered = self.compute()
        labels, predictions, radius = (gathered[k] for k in ("labels", "predictions", "radius"))
        summary = certification_summary(
            labels, predictions, radius, self.at_radii, self.num_classes
        )
        return CertificationResult(
            summary, tuple(radius.tolist()), tuple((predictions == labels).tolist())
        )
