"""Networks a user brings, named the LightningCLI way: ``{"class_path": ..., "init_args": ...}``.

``class_path`` is the dotted path of a ``torch.nn.Module`` subclass or of a function annotated
to return one (``torchvision.models.resnet18``, ``timm``'s model functions, a user's class).
Such a network is the classifier body; :func:`wrap_network` puts the data's
:class:`~.normalize.Normalize` in front, so that noise is added in pixel space as for the
built-in models. A checkpoint stores the specification (plain data, loadable with
``weights_only=True``) and the weights; :func:`instantiate_network` rebuilds the module from
it, after checking that the path names a module class or a function returning one. Loading a
checkpoint imports that module and calls it with the stored arguments: certify checkpoints whose
class_path you trust, as you would run their code.
"""

from __future__ import annotations

import importlib
import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from idrs_lightning.models.normalize import Normalize, Stat
from idrs_lightning.validation import InvalidSetting


def class_path_of(network: nn.Module) -> str:
    """``module.QualifiedName`` of a network object's class."""
    cls = type(network)
    return f"{cls.__module__}.{cls.__qualname__}"


def _resolve(class_path: str) -> Callable[..., nn.Module]:
    """The class or function ``class_path`` names, if it builds a ``torch.nn.Module``."""
    module_name, _, attribute = class_path.rpartition(".")
    target: Any = None
    if module_name:
        try:
            target = getattr(importlib.import_module(module_name), attribute, None)
        except ImportError as error:
            raise InvalidSetting(
                "network",
                f"class_path {class_path!r} cannot be imported ({error}; is its module on "
                "PYTHONPATH?)",
            ) from None
    if target is None:
        raise InvalidSetting(
            "network", f"class_path {class_path!r} names nothing importable (module.Name)"
        )
    if inspect.isclass(target) and issubclass(target, nn.Module):
        return target
    if inspect.isfunction(target):
        returned = typing.get_type_hints(target).get("return")
        if inspect.isclass(returned) and issubclass(returned, nn.Module):
            return target
    raise InvalidSetting(
        "network",
        f"class_path {class_path!r} is neither a torch.nn.Module class nor a function "
        "annotated to return one",
    )


def instantiate_network(spec: Mapping[str, Any]) -> nn.Module:
    """``class_path(**init_args)`` for a specification ``{"class_path", "init_args"}``.

    Raises:
        InvalidSetting: naming ``network``, for a path that is not importable or builds no
            module, or init arguments it does not take.
    """
    unknown = sorted(set(spec) - {"class_path", "init_args", "dict_kwargs"})
    if "class_path" not in spec or unknown:
        raise InvalidSetting(
            "network", f"must hold 'class_path' and optionally 'init_args', got {dict(spec)!r}"
        )
    if not isinstance(spec.get("init_args") or {}, Mapping):
        raise InvalidSetting("network", f"init_args must be a mapping, got {spec['init_args']!r}")
    factory = _resolve(str(spec["class_path"]))
    arguments = {**(spec.get("init_args") or {}), **(spec.get("dict_kwargs") or {})}
    try:
        network = factory(**arguments)
    except TypeError as error:
        raise InvalidSetting(
            "network", f"{spec['class_path']} does not take init_args {arguments} ({error})"
        ) from None
    if not isinstance(network, nn.Module):
        raise InvalidSetting("network", f"{spec['class_path']} returned a {type(network)}")
    return network


def check_logits(
    classifier: nn.Module, num_classes: int, sample_shape: Sequence[int], name: str
) -> None:
    """One forward pass of two zero samples: the classifier must give ``(2, num_classes)``
    logits, so that a wrong ``num_classes`` or input size fails before training or
    certification starts. Training mode and parameters are left as they were."""
    was_training = classifier.training
    classifier.eval()
    try:
        with torch.no_grad():
            logits = classifier(torch.zeros(2, *sample_shape))
    except RuntimeError as error:
        reason = str(error).splitlines()[0]
        raise InvalidSetting(
            "network", f"{name} cannot take samples of shape {tuple(sample_shape)} ({reason})"
        ) from None
    finally:
        classifier.train(was_training)
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (2, num_classes):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits)
        raise InvalidSetting(
            "network",
            f"{name} gives outputs of shape {shape} for 2 samples of shape "
            f"{tuple(sample_shape)}, but the data has {num_classes} classes: set its number "
            f"of outputs (e.g. init_args.num_classes: {num_classes})",
        )


def wrap_network(network: nn.Module, mean: Stat, std: Stat) -> nn.Sequential:
    """``nn.Sequential(Normalize(mean, std), network)``: the layout of the built-in ResNets
    and of Cohen et al.'s models (index 0 normalises, index 1 is the network)."""
    return nn.Sequential(Normalize(mean, std), network)
