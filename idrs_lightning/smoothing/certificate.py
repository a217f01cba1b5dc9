"""What CERTIFY returns for one input."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The prediction of an input on which the smoothed classifier abstains.
ABSTAIN = -1


@dataclass(frozen=True)
class Certificate:
    """Outcome of :meth:`~idrs_lightning.smoothing.Smooth.certify` for one input."""

    prediction: int
    radius: float
    p_a_lower: float
    counts: np.ndarray
    sigma: float
    p_b_upper: float  # nan unless the runner-up was bounded separately
    samples: int  # estimation samples drawn (n, or where sequential CERTIFY stopped)

    @property
    def skipped(self) -> bool:
        """Estimation skipped by the evaluation shortcut
        (:func:`~idrs_lightning.smoothing.groups.certify_groups`): ``prediction`` is the
        selected class, which is not the label; not a certificate."""
        return self.samples == 0

    @classmethod
    def skipped_for(cls, prediction: int, num_classes: int, sigma: float) -> Certificate:
        """The evaluation shortcut's row: no estimation samples, no certificate."""
        counts = np.zeros(num_classes, dtype=np.int64)
        return cls(prediction, 0.0, float("nan"), counts, sigma, float("nan"), 0)
