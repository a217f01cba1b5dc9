"""Reading checkpoints for certification, with ``weights_only``: ``train.py``'s and foreign ones.

A ``train.py`` checkpoint rebuilds its classifier from the saved hyperparameters and brings the
training run's data settings, including the ``m`` of Eq. 1 it chose (saved in the DataModule's
state; checkpoints of earlier versions kept it as the hyperparameter ``m_resolved``). Foreign
checkpoints (Cohen et al.'s format, a plain state_dict with ``--arch``, TorchScript; see
:mod:`.foreign`) bring no data settings: the data comes from the command line.
"""

from __future__ import annotations

import hashlib
import inspect
from typing import Any

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
from idrs_lightning.training.checkpoint_file import CheckpointFile, read_checkpoint
from idrs_lightning.training.module import BaseClassifierModule
from idrs_lightning.validation import InvalidSetting


def init_arguments(cls: type, hparams: dict[str, Any]) -> dict[str, Any]:
    """The entries of saved hyperparameters that ``cls.__init__`` takes (LightningCLI adds
    bookkeeping such as ``_instantiator``)."""
    accepted = inspect.signature(cls.__init__).parameters
    return {key: value for key, value in hparams.items() if key in accepted}


def classifier_module(checkpoint: CheckpointFile) -> BaseClassifierModule:
    """The :class:`BaseClassifierModule` of a ``train.py`` checkpoint, with its weights."""
    hparams = dict(checkpoint.content["hyper_parameters"])
    if "model" in hparams and "network" not in hparams:  # written before class_path networks
        hparams["network"] = hparams.pop("model")
    try:
        module = BaseClassifierModule(**init_arguments(BaseClassifierModule, hparams))
        module.load_state_dict(checkpoint.content["state_dict"])
    except InvalidSetting as error:
        raise InvalidSetting("checkpoint", f"{checkpoint.path}: {error}") from None
    except (RuntimeError, TypeError, ValueError) as error:
        reason = str(error).splitlines()[0]
        raise InvalidSetting(
            "checkpoint", f"{checkpoint.path}: its weights do not fit its model ({reason})"
        ) from None
    return module


def training_data(checkpoint: CheckpointFile) -> dict[str, Any]:
    """The DataModule arguments of the training run (``m`` as chosen). A checkpoint that
    records no validation split (foreign formats, train.py's before it carved one) was trained
    on the whole training split, which is then sigma(x)'s reference: ``val_fraction = 0``.
    Foreign checkpoints name no data set, except Cohen et al.'s CIFAR architectures."""
    if checkpoint.format != "train.py":  # trained elsewhere, on the whole training split
        dataset = COHEN_ARCHITECTURES.get(checkpoint.arch or "", ("",))[0]
        return {"val_fraction": 0.0} | ({"dataset": dataset} if dataset == "cifar10" else {})
    state = checkpoint.content
    hparams = dict(state.get("datamodule_hyper_parameters", {}))
    # written before validation splits existed: trained, and sigma(x) built, on the whole split
    hparams.setdefault("val_fraction", 0.0)
    data = init_arguments(SmoothingDataModule, hparams)
    _check_recorded_types(checkpoint.path, data)
    chosen = state.get(SmoothingDataModule.__qualname__, {}).get("m", hparams.get("m_resolved"))
    if chosen is not None:
        data["m"] = chosen  # the training run's choice, not a re-estimate
    return data


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


def foreign_classifier(
    checkpoint: CheckpointFile,
    arch: str | None,
    num_classes: int,
    sample_shape: tuple[int, ...],
    normalization: Statistics,
) -> nn.Module:
    """The classifier of a foreign checkpoint for data of ``num_classes`` and ``sample_shape``
    (whose ``normalization`` serves a bare network's state_dict).

    Raises:
        InvalidSetting: naming ``arch`` where a plain state_dict has none or a Cohen et al.
            checkpoint names another, or naming the checkpoint where weights do not fit.
    """
    if checkpoint.format == "torchscript":
        return torchscript_classifier(checkpoint.path)
    if checkpoint.format == "cohen":
        if arch is not None and arch != checkpoint.arch:
            raise InvalidSetting(
                "arch", f"{arch!r} contradicts the checkpoint's arch {checkpoint.arch!r}"
            )
        return cohen_classifier(str(checkpoint.arch), checkpoint.content["state_dict"])
    if arch is None:
        raise InvalidSetting(
            "arch", f"is needed: {checkpoint.path} is a plain state_dict, which names no model"
        )
    parse_arch(arch)
    return state_dict_classifier(arch, checkpoint.content, num_classes, sample_shape, normalization)


def load_checkpoint(path: str) -> tuple[BaseClassifierModule, dict[str, Any]]:
    """The classifier module and the training run's DataModule arguments of a ``train.py``
    checkpoint.

    Raises:
        InvalidSetting: naming the file, for anything else.
    """
    checkpoint = read_checkpoint(path)
    if checkpoint.format != "train.py":
        raise InvalidSetting(
            "checkpoint",
            f"{path} is a {checkpoint.format} checkpoint; this needs one written by train.py",
        )
    return classifier_module(checkpoint), training_data(checkpoint)


def file_digest(path: str) -> str:
    """SHA-256 of a file's content (what a run certified, whatever its path)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
