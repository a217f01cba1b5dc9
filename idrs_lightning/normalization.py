"""Per-channel input statistics ``(mean, std)`` and value ranges of each data set: the ground
floor under both the data (which checks its inputs' range) and the models (whose first layer
normalises).

Computed on the training images with pixels in ``[0, 1]``; the model normalises its input, so
that the smoothing noise is added to unnormalised pixels (Cohen et al. 2019).
"""

from __future__ import annotations

from collections.abc import Mapping

from idrs_lightning.validation import check_choice

MNIST_MEAN: tuple[float, ...] = (0.1307,)
MNIST_STD: tuple[float, ...] = (0.3081,)
FASHION_MNIST_MEAN: tuple[float, ...] = (0.2860,)
FASHION_MNIST_STD: tuple[float, ...] = (0.3530,)
CIFAR10_MEAN: tuple[float, ...] = (0.4914, 0.4822, 0.4465)
CIFAR10_STD: tuple[float, ...] = (0.2470, 0.2435, 0.2616)
#: ImageNet's statistics as torchvision and Cohen et al. (``code/datasets.py``) use them.
IMAGENET_MEAN: tuple[float, ...] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, ...] = (0.229, 0.224, 0.225)
#: CIFAR-10 as Cohen et al.'s ``code/datasets.py`` normalises it (their released models).
COHEN_CIFAR10_MEAN: tuple[float, ...] = (0.4914, 0.4822, 0.4465)
COHEN_CIFAR10_STD: tuple[float, ...] = (0.2023, 0.1994, 0.2010)

#: The distance unit of the synthetic disc's generator (paper Appendix A.1), by default.
DISC_RADIAL_SCALE = 4.0
_IDENTITY: tuple[tuple[float, ...], tuple[float, ...]] = ((0.0,), (1.0,))
_STATISTICS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": (MNIST_MEAN, MNIST_STD),
    "fashion_mnist": (FASHION_MNIST_MEAN, FASHION_MNIST_STD),
    "cifar10": (CIFAR10_MEAN, CIFAR10_STD),
    "digits": (MNIST_MEAN, MNIST_STD),  # grey-scale digits in [0, 1], as MNIST
    "disc": _IDENTITY,
    "cone": _IDENTITY,
    "imagefolder": (IMAGENET_MEAN, IMAGENET_STD),  # unless its options give mean and std
}


def normalization(
    dataset: str, options: Mapping[str, object] | None = None
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(mean, std)``, one value per channel, of a data set of :data:`.sources.DATASETS`.

    An ``imagefolder`` takes its ``mean`` / ``std`` options, by default ImageNet's. The
    synthetic ``disc`` and ``cone`` points are divided by their ``radial_scale`` option (the
    generator's distance unit), so that the network sees distances of order one at every
    scale.

    Raises
    ------
    ValueError
        Unknown name.
    """
    statistics = _STATISTICS[check_choice("dataset", dataset, tuple(_STATISTICS))]
    if dataset == "imagefolder":
        given = options or {}
        mean, std = given.get("mean", statistics[0]), given.get("std", statistics[1])
        return tuple(map(float, mean)), tuple(map(float, std))  # type: ignore[arg-type]
    if dataset in ("disc", "cone"):
        default = DISC_RADIAL_SCALE if dataset == "disc" else 1.0
        scale = float((options or {}).get("radial_scale", default))  # type: ignore[arg-type]
        return (0.0,), (scale,)
    return statistics


_UNIT_INTERVAL = (0.0, 1.0)
_RANGES: dict[str, tuple[float, float] | None] = {
    "mnist": _UNIT_INTERVAL,
    "fashion_mnist": _UNIT_INTERVAL,
    "cifar10": _UNIT_INTERVAL,
    "digits": _UNIT_INTERVAL,
    "disc": None,  # points in R^d: no range
    "cone": None,
    "imagefolder": _UNIT_INTERVAL,
}


def value_range(dataset: str) -> tuple[float, float] | None:
    """The range of the data set's input values (pixels in ``[0, 1]``), ``None`` for points
    in R^d.

    Raises
    ------
    ValueError
        Unknown name.
    """
    return _RANGES[check_choice("dataset", dataset, tuple(_RANGES))]
