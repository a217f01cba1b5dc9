"""The noise level sigma(x) of the IDRS paper, Eq. 1, from the mean kNN distance.

:class:`KnnSigma` maps a per-sample statistic (the mean distance to the ``k`` nearest training
points, see :mod:`idrs_lightning.sigma.knn`) to a per-sample standard deviation; its ``r`` is the
semi-elasticity certification must use (Theorem 7 needs
``|log sigma(x) - log sigma(y)| <= r * ||x - y||``), and ``r = 0`` is constant ``sigma_b``.

Eq. 1: ``sigma(x) = sigma_b * exp(r * (mean_{x_i in N_k(x)} ||x - x_i|| - m))``. The mean kNN
distance is 1-Lipschitz, so sigma is r-semi-elastic (Theorem 8); clamping to
``[sigma_min, sigma_max]`` is 1-Lipschitz in log space and keeps that property.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal, TypeVar

import numpy as np
import torch

from idrs_lightning.validation import InvalidSetting

Statistic = TypeVar("Statistic", np.ndarray, torch.Tensor)
MChoice = float | Literal["min", "mean"]


@dataclass(frozen=True)
class KnnSigma:
    """Eq. 1 of the IDRS paper, optionally clamped to ``[sigma_min, sigma_max]``.

    Args:
        sigma_b: base standard deviation, ``> 0``.
        r: semi-elasticity (the test rate for evaluation, the train rate ``trr`` for training),
            ``>= 0``.
        k: number of nearest training neighbours, ``>= 1``.
        m: the normalisation constant, a number, or ``"min"`` / ``"mean"`` of the training set's
            mean kNN distances (Appendix E.1: sigma_b is then the smallest / a typical value);
            resolve it with :meth:`with_m_from` before use.
        sigma_min, sigma_max: optional clamp (the paper's toy runs use ``sigma_max = 5 sigma_b``).

    Example::

        sigma = KnnSigma(sigma_b=0.12, r=0.01, k=20, m="mean").with_m_from(train_distances)
        sigma(test_distances)
    """

    sigma_b: float
    r: float
    k: int = 20
    m: MChoice = "mean"
    sigma_min: float | None = None
    sigma_max: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.sigma_b) and self.sigma_b > 0):
            raise InvalidSetting("sigma_b", f"must be a positive number, got {self.sigma_b!r}")
        if not (math.isfinite(self.r) and self.r >= 0):
            raise InvalidSetting("r", f"must be a non-negative number, got {self.r!r}")
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise InvalidSetting("k", f"must be a positive integer, got {self.k!r}")
        if isinstance(self.m, str):
            if self.m not in ("min", "mean"):
                raise InvalidSetting("m", f"must be a number, 'min' or 'mean', got {self.m!r}")
        elif not math.isfinite(self.m):
            raise InvalidSetting("m", f"must be finite, got {self.m!r}")
        for name in ("sigma_min", "sigma_max"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise InvalidSetting(name, f"must be a positive number or None, got {value!r}")
        if (
            self.sigma_min is not None
            and self.sigma_max is not None
            and self.sigma_min > self.sigma_max
        ):
            raise InvalidSetting(
                "sigma_min", f"({self.sigma_min}) must not exceed sigma_max ({self.sigma_max})"
            )

    def with_m_from(self, train_mean_distances: np.ndarray) -> KnnSigma:
        """A copy with ``m`` resolved from the training set's mean kNN distances."""
        if not isinstance(self.m, str):
            return self
        distances = np.asarray(train_mean_distances, dtype=np.float64)
        if distances.size == 0:
            raise ValueError("cannot choose m from an empty training set")
        value = float(distances.min() if self.m == "min" else distances.mean())
        return replace(self, m=value)

    def __call__(self, mean_distance: Statistic) -> Statistic:
        if isinstance(self.m, str):
            raise ValueError(f"m is still {self.m!r}: resolve it with with_m_from(...) first")
        if isinstance(mean_distance, torch.Tensor):
            sigma = self.sigma_b * torch.exp(self.r * (mean_distance - self.m))
            return sigma.clamp(min=self.sigma_min, max=self.sigma_max)
        distance = np.asarray(mean_distance, dtype=np.float64)
        with np.errstate(over="ignore", under="ignore"):
            sigma = self.sigma_b * np.exp(self.r * (distance - self.m))
        low = -np.inf if self.sigma_min is None else self.sigma_min
        high = np.inf if self.sigma_max is None else self.sigma_max
        sigma = np.clip(sigma, low, high)
        usable = np.isfinite(sigma) & (sigma > 0)
        if not usable.all():
            raise InvalidSetting(
                "m",
                f"= {self.m:g} puts sigma(x) = sigma_b * exp(r * (d - m)) out of floating-point "
                f"range ({sigma[~usable][0]:g} at mean kNN distance d = "
                f"{distance[~usable][0]:.4g}, r = {self.r:g}): choose m near the mean kNN "
                "distances (or 'mean'), or bound sigma with sigma_min / sigma_max",
            )
        return sigma
