"""Checkpoint formats for certification, read with ``weights_only``: one class per format with
one interface (:class:`CheckpointFormat`), chosen once by :func:`open_checkpoint`.

A ``train.py`` checkpoint rebuilds its classifier from the saved hyperparameters and brings the
training run's data settings, including the ``m`` of Eq. 1 it chose (saved in the DataModule's
state; checkpoints of earlier versions kept it as the hyperparameter ``m_resolved``). Foreign
checkpoints (Cohen et al.'s format, a plain state_dict with ``--arch``, TorchScript; see
:mod:`~idrs_lightning.certify_job.foreign`) bring no data settings but the whole training split
they were trained on: the data comes from the command line.
"""

from __future__ import annotations

import hashlib
import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn

from idrs_lightning.certify_job.foreign import (
    COHEN_ARCHITECTURES,
    Statistics,
    cohen_classifier,
    parse_arch,
    state_dict_classifier,
    torchscript_classifier,
)
from idrs_lightning.data.datamodule import SmoothingDataModule
from idrs_lightning.models.class_path import check_logits
from idrs_lightning.training.checkpoint_file import CheckpointFile, read_checkpoint
from idrs_lightning.training.module import BaseClassifierModule
from idrs_lightning.validation import InvalidSetting


def init_arguments(cls: type, hparams: dict[str, Any]) -> dict[str, Any]:
    """The entries of saved hyperparameters that ``cls.__init__`` takes (LightningCLI adds
    bookkeeping such as ``_instantiator``)."""
    accepted = inspect.signature(cls.__init__).parameters
    return {key: value for key, value in hparams.items() if key in accepted}


@dataclass(frozen=True)
class TargetData:
    """What a foreign network must fit: the data's classes, sample shape and normalisation."""

    num_classes: int
    sample_shape: tuple[int, ...]
    normalization: Statistics

    @classmethod
    def of(cls, datamodule: SmoothingDataModule) -> TargetData:
        shape = tuple(datamodule.sample_shape)
        return cls(datamodule.num_classes, shape, datamodule.normalization)


class CheckpointFormat(ABC):
    """A checkpoint file of one format: the data settings it records and the classifier it
    holds, checked against the data it is certified on."""

    name: ClassVar[str]

    def __init__(self, file: CheckpointFile) -> None:
        self.file = file

    @property
    def path(self) -> str:
        return self.file.path

    @abstractmethod
    def data_settings(self) -> dict[str, Any]:
        """The DataModule arguments the training run used, as far as the file knows them."""

    @abstractmethod
    def missing_dataset(self) -> str:
        """Why ``--dataset`` must be given, where the file names no data set."""

    @abstractmethod
    def classifier(
        self, arch: str | None, datamodule: SmoothingDataModule
    ) -> tuple[nn.Module, int]:
        """The classifier to certify on ``datamodule``'s data and its number of classes.

        Raises:
            InvalidSetting: naming ``arch`` or the checkpoint, where they do not fit the data.
        """


class TrainedCheckpoint(CheckpointFormat):
    """A checkpoint written by ``train.py``: its model, weights and data settings."""

    name = "train.py"

    def module(self) -> BaseClassifierModule:
        """The :class:`BaseClassifierModule` with its weights."""
        hparams = dict(self.file.content["hyper_parameters"])
        if "model" in hparams and "network" not in hparams:  # before class_path networks
            hparams["network"] = hparams.pop("model")
        try:
            module = BaseClassifierModule(**init_arguments(BaseClassifierModule, hparams))
            module.load_state_dict(self.file.content["state_dict"])
        except InvalidSetting as error:
            raise InvalidSetting("checkpoint", f"{self.path}: {error}") from None
        except (RuntimeError, TypeError, ValueError) as error:
            reason = str(error).splitlines()[0]
            raise InvalidSetting(
                "checkpoint", f"{self.path}: its weights do not fit its model ({reason})"
            ) from None
        return module

    def data_settings(self) -> dict[str, Any]:
        """The recorded DataModule arguments (``m`` as chosen). One that records no
        validation split (written before splits existed) was trained, and sigma(x) built, on
        the whole training split: ``val_fraction = 0``."""
        state = self.file.content
        hparams = dict(state.get("datamodule_hyper_parameters", {}))
        hparams.setdefault("val_fraction", 0.0)
        data = init_arguments(SmoothingDataModule, hparams)
        _check_recorded_types(self.path, data)
        qualname = SmoothingDataModule.__qualname__
        chosen = state.get(qualname, {}).get("m", hparams.get("m_resolved"))
        if chosen is not None:
            data["m"] = chosen  # the training run's choice, not a re-estimate
        return data

    def missing_dataset(self) -> str:
        return ""  # a train.py checkpoint always names its data set

    def classifier(
        self, arch: str | None, datamodule: SmoothingDataModule
    ) -> tuple[nn.Module, int]:
        if arch is not None:
            raise InvalidSetting(
                "arch", "is for foreign checkpoints; a train.py checkpoint names its model"
            )
        module = self.module()
        expected, shape = tuple(module.hparams.sample_shape), tuple(datamodule.sample_shape)
        if shape != expected:
            raise InvalidSetting(
                "checkpoint",
                f"{self.path} was trained on samples of shape {expected}, but the data "
                f"({datamodule.hparams.dataset}) has shape {shape}",
            )
        return module.classifier, int(module.hparams.num_classes)


class ForeignCheckpoint(CheckpointFormat):
    """A checkpoint trained elsewhere, on the whole training split; its network is built for
    the data's classes and sample shape and checked with one forward pass."""

    def data_settings(self) -> dict[str, Any]:
        return {"val_fraction": 0.0}

    def missing_dataset(self) -> str:
        return f"{self.path} is a {self.name} checkpoint, which holds no data settings"

    @abstractmethod
    def network(self, arch: str | None, data: TargetData) -> nn.Module:
        """The network for ``data`` (its classes and sample shape; its normalisation serves
        a bare network)."""

    def classifier(
        self, arch: str | None, datamodule: SmoothingDataModule
    ) -> tuple[nn.Module, int]:
        data = TargetData.of(datamodule)
        network = self.network(arch, data)
        try:
            check_logits(network, data.num_classes, data.sample_shape, f"the {self.name} model")
        except InvalidSetting as error:
            raise InvalidSetting("checkpoint", f"{self.path}: {error.problem}") from None
        return network, data.num_classes


class CohenCheckpoint(ForeignCheckpoint):
    """Cohen et al.'s ``{arch, state_dict}``; their CIFAR architectures name the data set."""

    name = "cohen"

    def data_settings(self) -> dict[str, Any]:
        dataset = COHEN_ARCHITECTURES.get(self.file.arch or "", ("",))[0]
        return super().data_settings() | ({"dataset": dataset} if dataset == "cifar10" else {})

    def network(self, arch: str | None, data: TargetData) -> nn.Module:
        if arch is not None and arch != self.file.arch:
            raise InvalidSetting(
                "arch", f"{arch!r} contradicts the checkpoint's arch {self.file.arch!r}"
            )
        return cohen_classifier(str(self.file.arch), self.file.content["state_dict"])


class StateDictCheckpoint(ForeignCheckpoint):
    """A plain state_dict: ``--arch`` names its network."""

    name = "state_dict"

    def missing_dataset(self) -> str:
        return f"{super().missing_dataset()} (nor its model: give --arch)"

    def network(self, arch: str | None, data: TargetData) -> nn.Module:
        if arch is None:
            raise InvalidSetting(
                "arch", f"is needed: {self.path} is a plain state_dict, which names no model"
            )
        parse_arch(arch)
        return state_dict_classifier(
            arch, self.file.content, data.num_classes, data.sample_shape, data.normalization
        )


class TorchScriptCheckpoint(ForeignCheckpoint):
    """A TorchScript file: network and weights in one, loaded as they are."""

    name = "torchscript"

    def network(self, arch: str | None, data: TargetData) -> nn.Module:
        return torchscript_classifier(self.path)


_FORMATS: dict[str, type[CheckpointFormat]] = {
    cls.name: cls
    for cls in (TrainedCheckpoint, CohenCheckpoint, StateDictCheckpoint, TorchScriptCheckpoint)
}


def open_checkpoint(path: str) -> CheckpointFormat:
    """The checkpoint at ``path``, read safely, as its format.

    Raises:
        InvalidSetting: naming the file where it is absent, damaged or of no known format.
    """
    file = read_checkpoint(path)
    return _FORMATS[file.format](file)


def load_checkpoint(path: str) -> tuple[BaseClassifierModule, dict[str, Any]]:
    """The classifier module and the training run's DataModule arguments of a ``train.py``
    checkpoint.

    Raises:
        InvalidSetting: naming the file, for anything else.
    """
    checkpoint = open_checkpoint(path)
    if not isinstance(checkpoint, TrainedCheckpoint):
        raise InvalidSetting(
            "checkpoint",
            f"{path} is a {checkpoint.name} checkpoint; this needs one written by train.py",
        )
    return checkpoint.module(), checkpoint.data_settings()


def _check_recorded_types(path: str, data: dict[str, Any]) -> None:
    """Each recorded data setting has the kind of value its default has (a number where the
    default is a number, text where it is text).

    Raises:
        InvalidSetting: naming the checkpoint and the setting, for an edited or damaged file.
    """
    defaults = inspect.signature(SmoothingDataModule.__init__).parameters
    for name, value in data.items():
        default = defaults[name].default
        if default is None or value is None:
            continue
        if isinstance(default, bool):
            fits = isinstance(value, bool)
        elif isinstance(default, int | float):
            fits = isinstance(value, int | float) and not isinstance(value, bool)
        else:
            fits = isinstance(value, type(default)) or name == "m"
        if not fits:
            raise InvalidSetting(
                "checkpoint",
                f"{path} records the data setting {name} = {value!r}, which is not a "
                f"{type(default).__name__} (the file was edited or damaged)",
            )


def file_digest(path: str) -> str:
    """SHA-256 of a file's content (what a run certified, whatever its path)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
