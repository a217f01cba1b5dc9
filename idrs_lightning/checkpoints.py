"""Loading a checkpoint written by ``train.py`` for certification, with ``weights_only``.

The classifier is rebuilt from the saved hyperparameters and its weights; the training run's
data settings come with it, including the ``m`` of Eq. 1 it chose (saved in the DataModule's
state; checkpoints of earlier versions kept it as the hyperparameter ``m_resolved``).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

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
        ValueError: naming the file, for anything that is not a readable checkpoint of ours.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        module = BaseClassifierModule(
            **init_arguments(BaseClassifierModule, state["hyper_parameters"])
        )
        module.load_state_dict(state["state_dict"])
    except Exception as error:  # any unreadable or foreign file gets one clear message
        raise ValueError(f"cannot load checkpoint {path}: {error}") from error
    hparams = dict(state.get("datamodule_hyper_parameters", {}))
    data = init_arguments(SmoothingDataModule, hparams)
    chosen = state.get(SmoothingDataModule.__qualname__, {}).get("m", hparams.get("m_resolved"))
    if chosen is not None:
        data["m"] = chosen  # the training run's choice, not a re-estimate
    return module, data
