"""The figures of a certification run as one frozen, typed value.

:class:`CertificationSummary` holds what :func:`~idrs_lightning.reporting.metrics.
certification_summary` computes from per-input results, the cost of the run where it was
measured (``certify.py``), and the run's name and settings where the run has them (one type,
not a wrapper: a summary of the training callback simply has none). Every reader of a summary
uses its fields and views; ``summary.json`` is :meth:`CertificationSummary.to_json`, and
:meth:`CertificationSummary.from_json` reads it back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from typing import Any

#: The headline figures of a summary: field, label and format, in the order they are shown.
HEADLINE: tuple[tuple[str, str, str], ...] = (
    ("clean_accuracy", "clean accuracy", ".3f"),
    ("abstention_rate", "abstention", ".3f"),
    ("misclassification_rate", "misclassified", ".3f"),
    ("average_certified_radius", "ACR", ".3f"),
    ("class_accuracy_std", "class-wise std", ".4f"),
)


@dataclass(frozen=True)
class CertificationSummary:
    """Every figure a certification run reports (IDRS paper, Section 4).

    Attributes:
        count: number of inputs.
        radii: the grid of the certified-accuracy table.
        certified_accuracy: fraction of inputs correct with radius ``>= R``, one per radius.
        clean_accuracy: fraction predicted correctly by the smoothed classifier.
        abstention_rate: fraction abstained.
        misclassification_rate: fraction predicted wrongly (not abstained).
        average_certified_radius: radius of correct inputs, 0 otherwise, over all inputs.
        per_class_accuracy: clean accuracy by true class (NaN for an absent class).
        class_accuracy_std: its standard deviation over present classes (the paper's
            fairness measure, Tables 3, 7, 9; NaN without inputs).
        forward_passes_mean, forward_passes_total: base-classifier evaluations per input and
            in all; ``None`` where not measured.
        estimation_skipped: inputs whose estimation the evaluation shortcut skipped; ``None``
            where not measured.
        name: the run's label; ``None`` for an unnamed summary.
        settings: how the run was made (the job's settings, data and checkpoint digest);
            ``None`` for a summary without a run.
    """

    count: int
    radii: tuple[float, ...]
    certified_accuracy: tuple[float, ...]
    clean_accuracy: float
    abstention_rate: float
    misclassification_rate: float
    average_certified_radius: float
    per_class_accuracy: tuple[float, ...]
    class_accuracy_std: float
    forward_passes_mean: float | None = None
    forward_passes_total: float | None = None
    estimation_skipped: int | None = None
    name: str | None = None
    settings: Mapping[str, Any] | None = None

    def headline(self) -> tuple[tuple[str, float, str], ...]:
        """``(label, value, format)`` of each headline figure, in display order."""
        return tuple((label, getattr(self, key), spec) for key, label, spec in HEADLINE)

    def accuracy_at(self, radius: float) -> float:
        """Certified accuracy at ``radius``, a radius of the grid.

        Raises:
            KeyError: for a radius not on the grid.
        """
        for at, accuracy in zip(self.radii, self.certified_accuracy, strict=True):
            if math.isclose(at, radius, rel_tol=1e-12, abs_tol=1e-12):
                return accuracy
        raise KeyError(f"radius {radius} is not on the grid {list(self.radii)}")

    def scalars(self, prefix: str) -> dict[str, float]:
        """Flat ``prefix/name`` scalars for loggers: the headline figures,
        ``accuracy_at_<R>`` for each grid radius and ``class_<c>_accuracy`` for each class
        present."""
        values = {f"{prefix}/{key}": float(getattr(self, key)) for key, _, _ in HEADLINE}
        for radius, accuracy in zip(self.radii, self.certified_accuracy, strict=True):
            values[f"{prefix}/accuracy_at_{radius:g}"] = float(accuracy)
        for label, accuracy in enumerate(self.per_class_accuracy):
            if not math.isnan(accuracy):
                values[f"{prefix}/class_{label}_accuracy"] = float(accuracy)
        return values

    def to_json(self) -> dict[str, Any]:
        """The contents of ``summary.json``: every field in order (sequences as lists),
        leaving out those that are ``None``."""
        content = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if value is not None:
                content[field.name] = list(value) if isinstance(value, tuple) else value
        return content

    @classmethod
    def from_json(cls, content: Mapping[str, Any]) -> CertificationSummary:
        """The summary whose :meth:`to_json` is ``content`` (other keys are ignored).

        Raises:
            ValueError: naming the figures that ``content`` lacks.
        """
        known = [field for field in fields(cls) if field.name in content]
        missing = [f.name for f in fields(cls) if f.default is MISSING and f not in known]
        if missing:
            raise ValueError(f"not a certification summary: no {', '.join(missing)}")
        values = {f.name: content[f.name] for f in known}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
