"""Loading a checkpoint written by ``train.py`` for certification, with ``weights_only``.

The classifier is rebuilt from the saved hyperparameters and its weights; the training run's
data settings come with it, including the ``m`` of Eq. 1 it chose (saved in the DataModule's
state; checkpoints of earlier versions kept it as the hyperparameter ``m_resolved``).
"""

from __future__ import annotations

import hashlib
import inspect
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from ._validation import InvalidSetting
from .data.datamodule import SmoothingDataModule
from .training import BaseClassifierModule


def init_arguments(cls: type, hparams: dict[str, Any]) -> dict[str, Any]:
    """The entries of saved hyperparameters that ``cls.__init__`` takes (LightningCLI adds
    bookkeeping such as ``_instantiator``)."""
    accepted = inspect.signature(cls.__init__).parameters
    return {key: value for key, value in hparams.items() if key in accepted}


def load_checkpoint(path: str) -> tuple[BaseClassifierModule, dict[str, Any]]:
    """The classifier and the training run's DataModule arguments (``m`` as chosen).

    Raises:
        InvalidSetting: naming the file and why it cannot serve, for anything that is not a
            readable checkpoint written by ``train.py``.
    """
    file = Path(path)
    if file.is_dir():
        raise InvalidSetting("checkpoint", f"{path} is a directory, not a checkpoint file")
    if not file.is_file():
        raise InvalidSetting("checkpoint", f"{path} does not exist")
    if file.stat().st_size == 0:
        raise InvalidSetting("checkpoint", f"{path} is empty")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if not zipfile.is_zipfile(file):  # not even a PyTorch archive
            raise InvalidSetting("checkpoint", f"{path} is damaged or not a PyTorch file") from None
        raise InvalidSetting(
            "checkpoint",
            f"{path} holds objects other than tensors and plain data, which are not loaded "
            "(they could run code); use a checkpoint written by train.py",
        ) from None
    except (RuntimeError, EOFError, OSError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InvalidSetting(
            "checkpoint", f"{path} is damaged or not a PyTorch file ({reason})"
        ) from None
    missing = ["hyper_parameters", "state_dict"]
    if isinstance(state, dict):
        missing = [key for key in missing if key not in state]
    if missing:
        raise InvalidSetting(
            "checkpoint",
            f"{path} has no {' or '.join(map(repr, missing))}: certify.py needs a checkpoint "
            "written by train.py (a plain state_dict is not enough)",
        )
    try:
        module = BaseClassifierModule(
            **init_arguments(BaseClassifierModule, state["hyper_parameters"])
        )
        module.load_state_dict(state["state_dict"])
    except (RuntimeError, TypeError, ValueError) as error:
        reason = str(error).splitlines()[0]
        raise InvalidSetting(
            "checkpoint", f"{path}: its weights do not fit its model ({reason})"
        ) from None
    hparams = dict(state.get("datamodule_hyper_parameters", {}))
    data = init_arguments(SmoothingDataModule, hparams)
    chosen = state.get(SmoothingDataModule.__qualname__, {}).get("m", hparams.get("m_resolved"))
    if chosen is not None:
        data["m"] = chosen  # the training run's choice, not a re-estimate
    return module, data


def file_digest(path: str) -> str:
    """SHA-256 of a file's content (what a run certified, whatever its path)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
