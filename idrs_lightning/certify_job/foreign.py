"""Classifiers from checkpoints not written by ``train.py``: the ones published work compares on.

- **Cohen et al.'s format** (``locuslab/smoothing``, ``code/train.py``): a dict with ``arch``,
  ``state_dict``, ``epoch`` (and ``optimizer``). Their model is ``Sequential(NormalizeLayer,
  network)``; the normalise layer holds no tensors, ``resnet50`` is wrapped in ``DataParallel``,
  so keys read ``1.conv1.weight`` (CIFAR ResNets) or ``1.module.conv1.weight`` (ImageNet). The
  normalisation is the one of their ``code/datasets.py`` for the architecture's data set.
- **A plain state_dict** with ``--arch``: a Cohen architecture, a built-in one, or a
  ``class_path`` specification; either the whole classifier's keys (``0.mean``, ``1.…``) or the
  bare network's, which then gets the data's normalisation in front.
- **TorchScript** files, taken as they are: a classifier of ``[0, 1]`` inputs, its
  normalisation inside (as the models here and Cohen et al.'s are).

Wrapper prefixes (``module.`` of ``DataParallel`` / DDP) are removed where every key has them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
import torchvision
import yaml
from torch import nn

from idrs_lightning.models import MODEL_NAMES, build_classifier
from idrs_lightning.models.class_path import wrap_network
from idrs_lightning.models.resnet import CifarResNet
from idrs_lightning.normalization import (
    COHEN_CIFAR10_MEAN,
    COHEN_CIFAR10_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
)
from idrs_lightning.validation import InvalidSetting

Statistics = tuple[tuple[float, ...], tuple[float, ...]]

#: Cohen et al.'s ``ARCHITECTURES`` (``code/architectures.py``): data set and normalisation.
COHEN_ARCHITECTURES: dict[str, tuple[str, Statistics]] = {
    "cifar_resnet20": ("cifar10", (COHEN_CIFAR10_MEAN, COHEN_CIFAR10_STD)),
    "cifar_resnet110": ("cifar10", (COHEN_CIFAR10_MEAN, COHEN_CIFAR10_STD)),
    "resnet50": ("imagenet", (IMAGENET_MEAN, IMAGENET_STD)),
}
#: What ``--arch`` names without a class_path.
ARCH_NAMES: tuple[str, ...] = (*COHEN_ARCHITECTURES, *(n for n in MODEL_NAMES if n != "mlp"))


def strip_wrapper_prefixes(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys without the ``module.`` of ``DataParallel``/DDP, at the front or after a
    ``Sequential`` index (``1.module.conv1.weight`` -> ``1.conv1.weight``), where every key has
    it at that place; other keys are left alone."""
    keys = list(state)
    for pattern in (r"^module\.", r"^(\d+\.)module\."):
        if keys and all(re.match(pattern, key) for key in keys):
            keys = [re.sub(pattern, r"\1" if "(" in pattern else "", key) for key in keys]
    return dict(zip(keys, state.values(), strict=True))


def _network(arch: str, num_classes: int) -> nn.Module:
    """The bare network of a Cohen architecture."""
    if arch == "resnet50":
        return torchvision.models.resnet50(weights=None, num_classes=num_classes)
    return CifarResNet(int(arch.removeprefix("cifar_resnet")), num_classes)


def _classes_in(state: Mapping[str, torch.Tensor]) -> int:
    """The number of logits: rows of the final linear layer ``fc.weight`` (both ResNets)."""
    rows = [value.shape[0] for key, value in state.items() if key.endswith("fc.weight")]
    if len(rows) != 1:
        raise InvalidSetting("checkpoint", "has no single fc.weight: is it a ResNet?")
    return int(rows[0])


def _load(target: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    try:
        target.load_state_dict(state)
    except RuntimeError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        raise InvalidSetting(
            "checkpoint", f"its weights do not fit {what} ({' '.join(lines[:2])[:300]})"
        ) from None


def cohen_classifier(arch: str, state: Mapping[str, torch.Tensor]) -> nn.Module:
    """``Sequential(Normalize(their statistics), network)`` with the checkpoint's weights.

    Raises:
        InvalidSetting: for an architecture outside :data:`COHEN_ARCHITECTURES` or weights of
            another layout.
    """
    if arch not in COHEN_ARCHITECTURES:
        raise InvalidSetting(
            "arch", f"must be one of {', '.join(COHEN_ARCHITECTURES)} (Cohen et al.), got {arch!r}"
        )
    weights = strip_wrapper_prefixes(state)
    outside = [key for key in weights if not key.startswith("1.")]
    if outside:
        raise InvalidSetting(
            "checkpoint", f"is not in Cohen et al.'s layout (key {outside[0]!r} is not under 1.)"
        )
    body = {key.removeprefix("1."): value for key, value in weights.items()}
    network = _network(arch, _classes_in(body))
    _load(network, body, f"Cohen et al.'s {arch}")
    return wrap_network(network, *COHEN_ARCHITECTURES[arch][1])


def parse_arch(arch: str) -> str | dict[str, Any]:
    """``--arch`` as a name or a class_path specification (YAML, e.g. ``{class_path:
    torchvision.models.resnet18, init_args: {num_classes: 10}}``)."""
    if arch in ARCH_NAMES:
        return arch
    try:
        spec = yaml.safe_load(arch)
    except yaml.YAMLError:
        spec = None
    if isinstance(spec, str) and "." in spec:
        return {"class_path": spec}
    if isinstance(spec, dict) and "class_path" in spec:
        return spec
    raise InvalidSetting(
        "arch",
        f"must be one of {', '.join(ARCH_NAMES)}, a class_path or "
        f"'{{class_path: ..., init_args: {{...}}}}'; got {arch!r}",
    )


def state_dict_classifier(
    arch: str,
    state: Mapping[str, torch.Tensor],
    num_classes: int,
    sample_shape: tuple[int, ...],
    normalization: Statistics,
) -> nn.Module:
    """The classifier ``arch`` with a plain state_dict's weights: the whole classifier's keys
    (normalisation included), or the bare network's behind the data's ``normalization``."""
    spec = parse_arch(arch)
    weights = strip_wrapper_prefixes(state)
    if isinstance(spec, str) and spec in COHEN_ARCHITECTURES:
        if not any(key.startswith("1.") for key in weights):  # the bare network's keys
            weights = {f"1.{key}": value for key, value in weights.items()}
        return cohen_classifier(spec, weights)
    mean, std = normalization
    classifier = build_classifier(spec, num_classes, sample_shape, mean=mean, std=std)
    whole = set(weights) == set(classifier.state_dict())
    if not whole and isinstance(classifier, nn.Sequential):
        _load(classifier[1], weights, f"the network of {arch}")
    else:
        _load(classifier, weights, arch)
    return classifier


def torchscript_classifier(path: str) -> nn.Module:
    """A TorchScript classifier, as saved (its inputs are ``[0, 1]`` pixels)."""
    try:
        return torch.jit.load(path, map_location="cpu")
    except RuntimeError as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InvalidSetting(
            "checkpoint", f"{path} is not a loadable TorchScript file ({reason})"
        ) from None
