"""A dual model's experts: ``train.py`` checkpoints of one data set and one split, opened and
checked before any sampling; the router is trained, and recorded, on their data."""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from idrs_lightning.certify_job.checkpoints import TrainedCheckpoint, open_checkpoint
from idrs_lightning.data.datamodule import SmoothingDataModule
from idrs_lightning.training.module import BaseClassifierModule
from idrs_lightning.validation import InvalidSetting

log = logging.getLogger(__name__)

#: What the experts must share: the data, and its split into train and validation parts (the
#: router's targets come from the train part, which must be every expert's).
SHARED_DATA = ("dataset", "dataset_options", "root", "val_fraction", "val_seed")


@dataclass(frozen=True)
class Experts:
    """The experts' files, classifiers (eval mode, on the CPU) and the data they share."""

    paths: tuple[str, ...]
    classifiers: tuple[nn.Module, ...]
    num_classes: int
    sample_shape: tuple[int, ...]
    data_settings: dict[str, Any]
    recorded_sigmas: tuple[float, ...]

    def router_data(self, router_sigma: float, batch_size: int) -> dict[str, Any]:
        """The router's DataModule arguments: the experts' data and split, at the router's
        constant noise level (no kNN sigma(x): ``r = trr = 0``)."""
        noise = {"sigma_b": float(router_sigma), "train_sigma_b": None, "r": 0.0, "trr": 0.0}
        return {**self.data_settings, **noise, "batch_size": int(batch_size)}

    def warn_of_levels(self, sigmas: Sequence[float]) -> None:
        """Log a warning for each expert whose recorded ``sigma_b`` is not its level."""
        for path, recorded, level in zip(self.paths, self.recorded_sigmas, sigmas, strict=True):
            if not math.isclose(recorded, level, rel_tol=1e-9):
                log.warning("%s records sigma_b %g but serves level %g", path, recorded, level)


def open_experts(paths: Sequence[str]) -> Experts:
    """Open the experts' checkpoints and check that they fit together.

    Raises:
        InvalidSetting: naming ``experts``: a file that is absent, damaged or no ``train.py``
            checkpoint, or experts of different data, splits, classes or sample shapes.
    """
    if len(paths) < 2:
        raise InvalidSetting("experts", f"must be two or more checkpoints, got {len(paths)}")
    opened = [_open(path) for path in paths]
    settings = [checkpoint.data_settings() for checkpoint, _ in opened]
    modules = [module for _, module in opened]
    first = paths[0]
    for path, data, module in zip(paths[1:], settings[1:], modules[1:], strict=True):
        for name in SHARED_DATA:
            mine, theirs = _setting(data, name), _setting(settings[0], name)
            if mine != theirs:
                raise InvalidSetting(
                    "experts",
                    f"{path} was trained with {name} = {mine!r} and {first} with {theirs!r}: "
                    "the experts must share their data and its split",
                )
        for name in ("num_classes", "sample_shape"):
            if list(_list(module.hparams[name])) != list(_list(modules[0].hparams[name])):
                raise InvalidSetting(
                    "experts",
                    f"{path} has {name} {module.hparams[name]} and {first} "
                    f"{modules[0].hparams[name]}: the experts must classify the same data",
                )
    return Experts(
        tuple(str(p) for p in paths),
        tuple(module.classifier.eval() for module in modules),
        int(modules[0].hparams.num_classes),
        tuple(modules[0].hparams.sample_shape),
        settings[0],
        tuple(float(data.get("sigma_b", math.nan)) for data in settings),
    )


def _open(path: str) -> tuple[TrainedCheckpoint, BaseClassifierModule]:
    """The checkpoint and its module with its weights."""
    try:
        checkpoint = open_checkpoint(path)
        if not isinstance(checkpoint, TrainedCheckpoint):
            raise InvalidSetting(
                "checkpoint",
                f"{path} is a {checkpoint.name} checkpoint; experts are checkpoints written by "
                "train.py (they record their data and its split)",
            )
        return checkpoint, checkpoint.module()
    except InvalidSetting as error:
        raise InvalidSetting("experts", error.problem) from None


def _setting(data: dict[str, Any], name: str) -> Any:
    """A recorded data setting, its default where unrecorded (``None`` options as ``{}``)."""
    default = inspect.signature(SmoothingDataModule.__init__).parameters[name].default
    value = data.get(name, default)
    return (value or {}) if name == "dataset_options" else value


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]
