"""Models by name or by class_path: :func:`build_model` sizes a built-in classifier and its
normalisation from a sample; :func:`build_classifier` also takes a network a user brings."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from idrs_lightning.models.class_path import (
    check_logits,
    class_path_of,
    instantiate_network,
    wrap_network,
)
from idrs_lightning.models.lenet import LeNet
from idrs_lightning.models.mlp import MLP
from idrs_lightning.models.normalize import Stat
from idrs_lightning.models.resnet import cifar_resnet
from idrs_lightning.normalization import CIFAR10_MEAN, CIFAR10_STD, MNIST_MEAN, MNIST_STD
from idrs_lightning.validation import InvalidSetting, check_choice, is_int

#: Names accepted by :func:`build_model`.
MODEL_NAMES: tuple[str, ...] = ("lenet", "resnet20", "resnet110", "mlp")


def default_normalization(sample_shape: Sequence[int]) -> tuple[Stat, Stat]:
    """Default ``(mean, std)`` for inputs of one sample's shape.

    Single-channel images ``(1, H, W)`` get the MNIST statistics (MNIST, Fashion-MNIST and the
    8x8 digits are all grey-scale digits or garments in ``[0, 1]``), three-channel images
    ``(3, H, W)`` the CIFAR-10 statistics; anything else (vectors, other channel counts) the
    identity ``(0, 1)``. Pass explicit statistics for other data.
    """
    shape = tuple(sample_shape)
    if len(shape) == 3 and shape[0] == 1:
        return MNIST_MEAN, MNIST_STD
    if len(shape) == 3 and shape[0] == 3:
        return CIFAR10_MEAN, CIFAR10_STD
    return 0.0, 1.0


def _statistics(
    mean: Stat | None, std: Stat | None, sample_shape: Sequence[int]
) -> tuple[Stat, Stat]:
    """The given ``(mean, std)``, or :func:`default_normalization`'s for the shape."""
    if (mean is None) != (std is None):
        raise ValueError("give both mean and std, or neither")
    if mean is None or std is None:
        return default_normalization(sample_shape)
    return mean, std


def build_model(
    name: str,
    num_classes: int,
    sample_shape: Sequence[int],
    *,
    mean: Stat | None = None,
    std: Stat | None = None,
) -> nn.Module:
    """Build a base classifier for samples of ``sample_shape`` (without the batch dimension).

    Input sizes come from the shape: ``(C, H, W)`` gives ``in_channels`` and ``image_size``,
    and ``in_features = prod(sample_shape)`` for ``"mlp"``. Normalisation defaults come from
    :func:`default_normalization` unless ``mean`` / ``std`` are given.

    Args:
        name: one of ``"lenet"``, ``"resnet20"``, ``"resnet110"``, ``"mlp"``.
        num_classes: number of output logits, ``>= 2``.
        sample_shape: e.g. ``(1, 28, 28)`` (MNIST), ``(3, 32, 32)`` (CIFAR-10), ``(1, 8, 8)``
            (digits, LeNet adapts its padding), ``(60,)`` (cone data).
        mean, std: override the default input statistics (both or neither).

    Returns:
        A module whose first child is a :class:`Normalize`.

    Raises:
        ValueError: for an unknown name, a shape the model cannot take (LeNet and the ResNets
            need ``(C, H, W)``), or invalid sizes and statistics.
    """
    check_choice("name", name, MODEL_NAMES)
    shape = tuple(sample_shape)
    if not shape or not all(is_int(size) and size >= 1 for size in shape):
        raise ValueError(
            f"sample_shape must be a non-empty tuple of positive integers, got {shape}"
        )
    mean, std = _statistics(mean, std, shape)
    if name == "mlp":
        return MLP(int(math.prod(shape)), num_classes, mean=mean, std=std)
    if len(shape) != 3:
        raise ValueError(
            f"{name} needs image samples of shape (C, H, W), got {shape}; use 'mlp' for vectors"
        )
    channels, height, width = (int(size) for size in shape)
    if name == "lenet":
        return LeNet(num_classes, channels, (height, width), mean=mean, std=std)
    depth = 20 if name == "resnet20" else 110
    return cifar_resnet(depth, num_classes, mean, std, in_channels=channels)


#: What a classifier's network may be: a built-in name, a module, or its class_path spec.
NetworkSpec = str | nn.Module | Mapping[str, Any]


def build_classifier(
    network: NetworkSpec,
    num_classes: int,
    sample_shape: Sequence[int],
    *,
    mean: Stat | None = None,
    std: Stat | None = None,
) -> nn.Module:
    """The classifier for ``network``: a built-in name (:func:`build_model`), or a network a
    user brings (a module, or ``{"class_path", "init_args"}``) behind ``Normalize(mean, std)``
    (defaults: :func:`default_normalization`).

    Raises:
        InvalidSetting: naming ``network``, for an unknown name, a class_path that builds no
            module, or a network whose logits are not ``(batch, num_classes)`` for the data.
    """
    if isinstance(network, str):
        if network not in MODEL_NAMES:
            hint = " (a class_path needs its init_args, e.g. num_classes)" if "." in network else ""
            raise InvalidSetting(
                "network",
                f"must be one of {', '.join(MODEL_NAMES)} or a class_path with init_args; "
                f"got {network!r}{hint}",
            )
        return build_model(network, num_classes, sample_shape, mean=mean, std=std)
    body = network if isinstance(network, nn.Module) else instantiate_network(network)
    classifier = wrap_network(body, *_statistics(mean, std, sample_shape))
    name = class_path_of(body)
    check_logits(classifier, num_classes, tuple(sample_shape), name)
    return classifier
