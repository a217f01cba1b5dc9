"""The data set registry: :func:`load_split` by name, in the space where the noise is added.

Every source returns an :class:`ArraySplit`: features, labels, the number of classes and an
``identity`` string that determines the data exactly (used as a cache key, e.g. for the kNN
distances behind sigma(x) of the IDRS paper, Eq. 1).

Images are unnormalised pixels scaled to ``[0, 1]``, shape ``(n, C, H, W)``: normalisation is the
model's first layer, so that noise and certified radii live in pixel space (Cohen et al. 2019).
The synthetic data sets of the paper's Appendix A.1 and A.5 are points in ``R^d``, shape
``(n, d)``; the ``[0, 1]`` range does not apply to them.

======================  =========================  ==========================  ===========
name                    source                     shape of ``x``              classes
======================  =========================  ==========================  ===========
``"mnist"``             torchvision ``MNIST``      (60000 | 10000, 1, 28, 28)  10
``"fashion_mnist"``     Debian files or            (60000 | 10000, 1, 28, 28)  10
                        torchvision
``"cifar10"``           torchvision ``CIFAR10``    (50000 | 10000, 3, 32, 32)  10
``"digits"``            scikit-learn               (1297 | 500, 1, 8, 8)       10
``"disc"``              Appendix A.1 (2-D)         (2 * per_class, 2)          2
``"cone"``              Appendix A.5 (N-D)         (2 * per_class, dim)        2
``"imagefolder"``       ``root/{train,val}/<c>/``  (files, 3, crop, crop)      folders
======================  =========================  ==========================  ===========

``"imagefolder"`` (ImageNet's layout or any other) is not held in memory: it returns a
:class:`~.folders.FolderSplit` of file names and labels whose images are decoded per batch.

The loaders live in :mod:`.vision`, :mod:`.digits` and :mod:`.synthetic`; :func:`normalization`
gives each data set's ``(mean, std)`` for the model's first layer.

References
----------
P. Sukenik, A. Kuvshinov, S. Guennemann, "Intriguing properties of input-dependent randomized
smoothing", ICML 2022 (Appendix A.1, toy example; Appendix A.5, high-dimensional toy data set).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from idrs_lightning.data.arrays import SPLITS, ArraySplit
from idrs_lightning.data.digits import DIGITS_SPLIT_SEED, DIGITS_TEST_SIZE, load_digits
from idrs_lightning.data.folders import TRAIN_CROPS, FolderSplit, load_folder_split
from idrs_lightning.data.synthetic import (
    CONE_DIM_RANGE,
    DISC_DEFAULTS,
    generate_cone,
    generate_disc,
)
from idrs_lightning.data.vision import FASHION_MNIST_SYSTEM_DIR, load_vision
from idrs_lightning.normalization import IMAGENET_MEAN, IMAGENET_STD, normalization
from idrs_lightning.validation import check_choice

__all__ = [
    "CONE_DIM_RANGE",
    "DATASETS",
    "DIGITS_SPLIT_SEED",
    "DIGITS_TEST_SIZE",
    "FASHION_MNIST_SYSTEM_DIR",
    "SPLITS",
    "ArraySplit",
    "FolderSplit",
    "Split",
    "default_options",
    "load_split",
    "normalization",
]

DATASETS: tuple[str, ...] = (
    "mnist",
    "fashion_mnist",
    "cifar10",
    "digits",
    "disc",
    "cone",
    "imagefolder",
)
#: What a source returns: arrays in memory, or an image folder read per batch.
Split = ArraySplit | FolderSplit


def load_split(
    name: str,
    split: str,
    root: str | os.PathLike[str],
    *,
    download: bool = False,
    **options: Any,
) -> Split:
    """Load one split of a data set.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`.
    split : {"train", "test"}
    root : str or path
        Directory of the torchvision data sets (``<root>/MNIST/raw``, ``<root>/FashionMNIST/raw``,
        ``<root>/cifar-10-batches-py``). Unused by ``digits``, ``disc`` and ``cone``.
    download : bool
        Let torchvision download MNIST, Fashion-MNIST or CIFAR-10 into ``root`` when absent.
    **options
        Per data set (defaults in brackets):

        - ``fashion_mnist``: ``system_dir`` [:data:`FASHION_MNIST_SYSTEM_DIR`], or ``None`` to
          use only ``root``.
        - ``disc`` (Appendix A.1): ``per_class_train`` [500], ``per_class_test`` [100],
          ``sector_angle_deg`` [20.0], ``radial_df`` [2.0], ``radial_scale`` [4.0], ``seed`` [0].
        - ``cone`` (Appendix A.5): ``dim`` [60], ``half_angle_deg`` [5.0],
          ``per_class_train`` [500], ``per_class_test`` [100], ``radial_df`` [2.0],
          ``radial_scale`` [1.0], ``seed`` [0].
        - ``imagefolder`` (``root/train/<class>/``, ``root/val/<class>/``): ``resize`` [256]
          and ``crop`` [224] of the evaluation view, ``train_crop`` ["random_resized"; or
          "padded", "center"] of training batches, ``mean`` and ``std`` of the model's first
          layer [ImageNet's].

    Returns
    -------
    ArraySplit

    Raises
    ------
    ValueError
        Unknown name, split or option, or an option out of range.
    FileNotFoundError
        Vision files absent (and not downloadable); the message says which files go where.
    RuntimeError
        Vision files present but failing torchvision's checksum.

    Notes
    -----
    ``digits`` is scikit-learn's ``load_digits()`` (1,797 8x8 images, values 0..16 divided by
    16). Its test split is ``stratified_subset(labels, 500, seed=0)`` and its train split the
    other 1,297 images, both in the original order.

    ``disc`` and ``cone`` are deterministic functions of their options; train and test come
    from independent streams (``numpy.random.default_rng([seed, dataset tag, split index])``).
    See :func:`.synthetic.generate_disc` and :func:`.synthetic.generate_cone` for the
    distributions.
    """
    check_choice("name", name, DATASETS)
    check_choice("split", split, SPLITS)
    settings = _resolve_options(name, options)
    if name == "disc":
        return generate_disc(split, **settings)
    if name == "cone":
        return generate_cone(split, **settings)
    if name == "digits":
        return load_digits(split)
    if name == "imagefolder":
        return load_folder_split(root, split, settings["resize"], settings["crop"])
    return load_vision(name, split, Path(root), download, **settings)


def default_options(name: str) -> dict[str, Any]:
    """The options :func:`load_split` uses for data set ``name`` where the caller gives none (a
    new dict: the caller may change it)."""
    synthetic = {"per_class_train": 500, "per_class_test": 100, "radial_df": 2.0, "seed": 0}
    return {
        "mnist": {},
        "fashion_mnist": {"system_dir": FASHION_MNIST_SYSTEM_DIR},
        "cifar10": {},
        "digits": {},
        "disc": {**synthetic, **DISC_DEFAULTS},
        "cone": {**synthetic, "dim": 60, "half_angle_deg": 5.0, "radial_scale": 1.0},
        "imagefolder": {
            "resize": 256,
            "crop": 224,
            "train_crop": "random_resized",
            "mean": IMAGENET_MEAN,
            "std": IMAGENET_STD,
        },
    }[name]


def _resolve_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    defaults = default_options(name)
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        allowed = ", ".join(sorted(defaults)) or "none"
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for {name!r}; allowed: {allowed}")
    settings = {**defaults, **options}
    if name == "imagefolder":
        _check_folder_options(settings)
    if name == "imagefolder" and settings["train_crop"] not in TRAIN_CROPS:
        raise ValueError(
            f"train_crop must be one of {', '.join(TRAIN_CROPS)}; got {settings['train_crop']!r}"
        )
    return settings


def _check_folder_options(settings: dict[str, Any]) -> None:
    """``resize`` and ``crop`` whole numbers >= 1, ``mean`` and ``std`` three numbers each."""
    for size in ("resize", "crop"):
        value = settings[size]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{size} must be a whole number of pixels >= 1, got {value!r}")
    for statistic in ("mean", "std"):
        value = settings[statistic]
        numbers = isinstance(value, list | tuple) and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value
        )
        if not numbers or len(value) != 3:
            raise ValueError(f"{statistic} must be three numbers (R, G, B), got {value!r}")
