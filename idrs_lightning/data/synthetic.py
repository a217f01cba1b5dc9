"""The synthetic two-class data sets: the 2-D disc (Appendix A.1) and N-D cone (A.5) of IDRS.

Both are deterministic functions of their options; train and test come from independent
streams, ``numpy.random.default_rng([seed, dataset tag, split index])``.

References
----------
P. Sukenik, A. Kuvshinov, S. Guennemann, "Intriguing properties of input-dependent randomized
smoothing", ICML 2022 (Appendix A.1, toy example; Appendix A.5, high-dimensional toy data set).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from idrs_lightning.data.arrays import SPLITS, ArraySplit, split_identity
from idrs_lightning.normalization import DISC_RADIAL_SCALE
from idrs_lightning.validation import check_float, check_int

#: Admissible dimensions of the cone data set (the paper evaluates N = 2, 6, 18, 60, 180, 400).
CONE_DIM_RANGE = (2, 400)

_STREAM_TAGS = {"disc": 1, "cone": 2}
#: The disc's generator options by default (Appendix A.1 as read in :func:`generate_disc`).
DISC_DEFAULTS: dict[str, float] = {"sector_angle_deg": 20.0, "radial_scale": DISC_RADIAL_SCALE}


def generate_disc(split: str, **options: Any) -> ArraySplit:
    """The 2-D toy data set of Appendix A.1 (Figures 1 and 5).

    Appendix A.1, sentence by sentence, and how it is read (each measurable property is
    tested in ``tests/test_toy_data.py``):

    - "generated in polar coordinates, having uniform angle": the angle is uniform within the
      class's sector.
    - "the distance distributed as a square root of suitable chi-square distribution": the
      distance from the origin is ``radial_scale * sqrt(chi2(radial_df))``; with the default
      ``radial_df = 2`` each class is a Gaussian restricted to its sector.
    - "The classes are positioned in circle sectors, one in a sector with a very sharp angle":
      class 1 in ``|angle| <= sector_angle_deg / 2`` around the positive first axis (default
      20 degrees, an eighteenth of the circle), class 0 in the complementary sector.
    - "500 [training samples] for each class, 100 [test samples]": ``per_class_train``,
      ``per_class_test``; rows are shuffled.
    - Figure 1 (constant sigma 0.6; sigma(x) "recover[s] a part of the misclassified data
      points"): the data's scale is free in the text, and only ``sigma / radial_scale``
      matters, so ``radial_scale`` (default 4) is set where constant sigma 0.6 misclassifies a
      minority of the narrow class (about a fifth for the ideal sector classifier), not where it
      erases the class (at scale 1, 97 % of it).
    """
    per_class, radial_df, seed = _check_synthetic(options, split)
    sector = check_float("sector_angle_deg", options["sector_angle_deg"], 0.0, 180.0)
    scale = check_float("radial_scale", options["radial_scale"], 0.0, float("inf"))
    rng = _split_rng("disc", split, seed)
    half = np.deg2rad(sector) / 2
    angle = np.concatenate(
        [rng.uniform(half, 2 * np.pi - half, per_class), rng.uniform(-half, half, per_class)]
    )
    distance = scale * np.sqrt(rng.chisquare(radial_df, 2 * per_class))
    points = distance[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    points, labels = _shuffled(rng, points, per_class)
    params = (
        f"per_class={per_class},radial_df={radial_df!r},sector_angle_deg={sector!r},"
        f"radial_scale={scale!r},seed={seed}"
    )
    return _synthetic_split("disc", split, points, labels, params)


def generate_cone(split: str, **options: Any) -> ArraySplit:
    """The N-dimensional toy data set of Appendix A.5 (Figure 10, Table 5).

    Class 1 lies in the cone of half-angle ``half_angle_deg`` around the first coordinate axis,
    apex at the origin: its direction is uniform over the cone's spherical cap and its distance
    from the apex is ``radial_scale * sqrt(chi2(radial_df))``, so the density peaks at the
    apex. Class 0 has a uniform direction and the same distance law, with points that fall in
    the cone rejected. In ``dim`` dimensions its density is proportional to
    ``|x|^(radial_df - dim) exp(-|x|^2 / (2 radial_scale^2))``: more peaked at the centre than
    a Gaussian (the Gaussian is ``radial_df = dim``), as the paper asks. For ``dim = 2`` this is
    the disc data set with sector angle ``2 * half_angle_deg``. In high dimension a uniform
    direction in the cap lies
    close to the cone's boundary, as most of the cap's area does.
    """
    per_class, radial_df, seed = _check_synthetic(options, split)
    low, high = CONE_DIM_RANGE
    dim = check_int("dim", options["dim"], low, high)
    half_angle = check_float("half_angle_deg", options["half_angle_deg"], 0.0, 90.0)
    scale = check_float("radial_scale", options["radial_scale"], 0.0, float("inf"))
    rng = _split_rng("cone", split, seed)
    theta = np.deg2rad(half_angle)
    directions = np.concatenate(
        [
            _directions_outside_cone(rng, per_class, dim, theta),
            _directions_in_cone(rng, per_class, dim, theta),
        ]
    )
    distance = scale * np.sqrt(rng.chisquare(radial_df, 2 * per_class))
    points, labels = _shuffled(rng, distance[:, None] * directions, per_class)
    params = (
        f"dim={dim},half_angle_deg={half_angle!r},per_class={per_class},"
        f"radial_df={radial_df!r},radial_scale={scale!r},seed={seed}"
    )
    return _synthetic_split("cone", split, points, labels, params)


def _split_rng(name: str, split: str, seed: int) -> np.random.Generator:
    """Independent streams per data set and split, all derived from one seed."""
    return np.random.default_rng([seed, _STREAM_TAGS[name], SPLITS.index(split)])


def _check_synthetic(options: dict[str, Any], split: str) -> tuple[int, float, int]:
    """Validated (samples per class of this split, radial_df, seed)."""
    train = check_int("per_class_train", options["per_class_train"], 1)
    test = check_int("per_class_test", options["per_class_test"], 1)
    radial_df = check_float("radial_df", options["radial_df"], 0.0, float("inf"))
    seed = check_int("seed", options["seed"], 0)
    return (train if split == "train" else test), radial_df, seed


def _synthetic_split(
    name: str, split: str, points: NDArray[np.float64], labels: NDArray[np.int64], params: str
) -> ArraySplit:
    x = points.astype(np.float32)
    identity = split_identity(name, split, x, labels, params)
    return ArraySplit(x=x, y=labels, num_classes=2, identity=identity)


def _shuffled(
    rng: np.random.Generator, points: NDArray[np.float64], per_class: int
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Rows ``[class 0 ..., class 1 ...]`` with labels, in a seeded random order."""
    labels = np.repeat(np.arange(2, dtype=np.int64), per_class)
    order = rng.permutation(len(labels))
    return points[order], labels[order]


def _uniform_directions(rng: np.random.Generator, n: int, dim: int) -> NDArray[np.float64]:
    gaussian = rng.standard_normal((n, dim))
    return gaussian / np.linalg.norm(gaussian, axis=1, keepdims=True)


def _directions_outside_cone(
    rng: np.random.Generator, n: int, dim: int, theta: float
) -> NDArray[np.float64]:
    """Uniform unit vectors at an angle of at least ``theta`` from the first axis (rejection)."""
    kept: list[NDArray[np.float64]] = []
    count = 0
    while count < n:
        batch = _uniform_directions(rng, 2 * (n - count) + 16, dim)
        batch = batch[batch[:, 0] < np.cos(theta)]
        kept.append(batch[: n - count])
        count += len(kept[-1])
    return np.concatenate(kept)


def _directions_in_cone(
    rng: np.random.Generator, n: int, dim: int, theta: float
) -> NDArray[np.float64]:
    """Unit vectors uniform over the cap of half-angle ``theta < pi/2`` around the first axis.

    For a uniform direction, ``s = sin^2(angle to the axis)`` has the Beta((dim-1)/2, 1/2)
    density ``s^(a-1) (1-s)^(-1/2)``, ``a = (dim-1)/2``. On the cap, ``s <= S = sin^2(theta)``:
    propose ``s = S U^(1/a)`` (density ``s^(a-1)``) and accept with probability
    ``sqrt((1-S) / (1-s))``, at least ``cos(theta)``. The component orthogonal to the axis has a
    uniform direction in the remaining ``dim - 1`` coordinates.
    """
    a = (dim - 1) / 2
    cap = np.sin(theta) ** 2
    accepted: list[NDArray[np.float64]] = []
    count = 0
    while count < n:
        proposal = cap * rng.uniform(size=2 * (n - count) + 16) ** (1 / a)
        keep = rng.uniform(size=proposal.size) < np.sqrt((1 - cap) / (1 - proposal))
        accepted.append(proposal[keep][: n - count])
        count += len(accepted[-1])
    s = np.concatenate(accepted)
    across = _uniform_directions(rng, n, dim - 1)
    return np.concatenate([np.sqrt(1 - s)[:, None], np.sqrt(s)[:, None] * across], axis=1)
