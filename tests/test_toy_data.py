"""Appendices A.1 and A.5's sentences as measurable properties of the toy data sets.

The disc (A.1) and its sigma(x), with the ideal sector classifier (class 1 iff the angle is
within the narrow sector) smoothed by Monte Carlo: constant sigma 0.6 misclassifies a
minority of the narrow class (Figure 1: sigma(x) "recover[s] a part of the misclassified data
points"), sigma(x) visibly varies and recovers a part of them, and the wide class is kept.
The cone (A.5) at its calibrated scales: classes close relative to the noise, the sigma(x)
clamp binding only for outliers, the conic region shrinking with sigma."""

from __future__ import annotations

import numpy as np
import pytest

from idrs_lightning.data.datamodule import SmoothingDataModule
from idrs_lightning.data.sources import load_split
from idrs_lightning.paper import calibration
from idrs_lightning.paper.cone_geometry import cone_probability
from idrs_lightning.paper.core import paper_numbers
from idrs_lightning.paper.toy import DISC_OPTIONS, disc_sigma_b

DRAWS = 2000


def _ideal_smoothed(x: np.ndarray, sigma: np.ndarray, sector_deg: float) -> np.ndarray:
    """P(the noisy point lies in the narrow sector), per point."""
    rng = np.random.default_rng(0)
    half = np.deg2rad(sector_deg) / 2
    inside = np.zeros(len(x))
    for _ in range(DRAWS // 100):
        noisy = x[None] + sigma[None, :, None] * rng.standard_normal((100, *x.shape))
        inside += (np.abs(np.arctan2(noisy[..., 1], noisy[..., 0])) <= half).sum(axis=0)
    return inside / DRAWS


@pytest.fixture(scope="module")
def disc() -> dict:
    test = load_split("disc", "test", "unused")
    _, module = disc_sigma_b(0.6)
    sigma = module.certification_inputs(range(module.test_size)).sigma
    constant = _ideal_smoothed(test.x.astype(np.float64), np.full(len(sigma), 0.6), 20.0)
    varying = _ideal_smoothed(test.x.astype(np.float64), sigma, 20.0)
    return {"y": test.y, "sigma": sigma, "constant": constant, "varying": varying}


def test_constant_sigma_loses_a_minority_of_the_narrow_class(disc: dict) -> None:
    narrow = disc["y"] == 1
    lost = float(np.mean(disc["constant"][narrow] < 0.5))
    assert 0.05 < lost < 0.5, lost
    assert float(np.mean(disc["constant"][~narrow] >= 0.5)) < 0.02, "the wide class is kept"


def test_sigma_x_varies_and_recovers_a_part_of_the_narrow_class(disc: dict) -> None:
    sigma, narrow = disc["sigma"], disc["y"] == 1
    assert sigma.max() / sigma.min() > 3, "sigma(x) visibly varies"
    assert sigma[narrow].mean() < sigma[~narrow].mean(), "the narrow class is denser"
    lost_constant = int(np.sum(disc["constant"][narrow] < 0.5))
    lost_varying = int(np.sum(disc["varying"][narrow] < 0.5))
    assert lost_varying < lost_constant - 5, (lost_varying, lost_constant)
    assert float(np.mean(disc["varying"][~narrow] >= 0.5)) < 0.02


def test_the_reproduction_passes_the_generator_defaults_explicitly() -> None:
    """Its checkpoints record these options, so a later change of the defaults cannot pair a
    trained model with other data."""
    explicit = load_split("disc", "test", "unused", **DISC_OPTIONS).identity
    assert explicit == load_split("disc", "test", "unused").identity


# ------------------------------------------------------------------------------------ cone
# Appendix A.5's sentences at the calibrated scales (idrs_lightning/paper/cone_calibration.json).

CONE = calibration.load()
TABLE5 = paper_numbers()["table5"]["rows"]
CONE_SIGMA = {row["dim"]: row["sigma"] for row in TABLE5 if row["r"] == 0}


def _cone(split: str, dim: int):
    return load_split("cone", split, ".", dim=dim, **CONE[dim])


def _nearest_other_class(dim: int) -> float:
    """Median distance from a class-1 test point to the nearest class-0 training point."""
    test, train = _cone("test", dim), _cone("train", dim)
    ones = test.x[test.y == 1].astype(np.float64)
    zeros = train.x[train.y == 0].astype(np.float64)
    squared = ((ones[:, None, :] - zeros[None, :, :]) ** 2).sum(axis=2)
    return float(np.median(np.sqrt(squared.min(axis=1))))


@pytest.mark.parametrize(
    "dim",
    [
        2,
        pytest.param(
            6,
            marks=pytest.mark.xfail(
                strict=True,
                reason="at N = 6 the calibrated scale sets the classes 1.6 noise "
                "norms apart: the sentence does not hold there",
            ),
        ),
        18,
        60,
        180,
        400,
    ],
)
def test_cone_classes_are_close_relative_to_the_noise(dim: int) -> None:
    """ "Samples from different classes are very close to each other" (why the paper trains
    without noise): closer than the noise's typical norm sigma sqrt(N)."""
    assert _nearest_other_class(dim) < CONE_SIGMA[dim] * np.sqrt(dim)


@pytest.mark.parametrize("dim", sorted(CONE))
def test_cone_sigma_clamp_binds_only_for_outliers(dim: int) -> None:
    """ "We have set maximal sigma(x) ... because some samples were outliers": at each IDRS
    row's design (k = 20, m = min or mean) sigma(x) <= 5 sigma_b binds for at most a tenth of
    the test inputs."""
    for row in (r for r in TABLE5 if r["dim"] == dim and r["r"] > 0):
        for m in ("min", "mean"):
            module = SmoothingDataModule(
                dataset="cone",
                dataset_options={"dim": dim, **CONE[dim]},
                sigma_b=row["sigma"],
                r=row["r"],
                k=20,
                m=m,
                sigma_max=5 * row["sigma"],
            )
            module.setup("test")
            sigma = module.certification_inputs(range(module.test_size)).sigma
            assert np.mean(sigma >= 5 * row["sigma"] * (1 - 1e-12)) <= 0.1, (row, m)


@pytest.mark.parametrize("dim", sorted(CONE))
def test_the_conic_region_shrinks_fast_with_sigma(dim: int) -> None:
    """ "The conic decision region will shrink rather fast with increasing sigma": the ideal
    cone classifier's class-1 recall does not grow with sigma, and at Table 5's sigma it keeps
    at most 70 % of the class (nothing from N = 6 on: there the trained network's wider
    class-1 region is what keeps its accuracy above one half)."""
    ones = _cone("test", dim)
    points = ones.x[ones.y == 1].astype(np.float64)
    sigma = CONE_SIGMA[dim]
    recall = [float(np.mean(cone_probability(points, s, 5.0) > 0.5)) for s in (sigma / 4, sigma)]
    assert recall[1] <= recall[0] and recall[1] <= 0.7, recall
