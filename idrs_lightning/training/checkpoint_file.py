"""Reading a checkpoint file safely (``weights_only``) and telling its format: ``train.py``'s
own (Lightning's, with hyperparameters), Cohen et al.'s, a plain state_dict or TorchScript.
Resumes of training and the certification job read checkpoints through it."""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from idrs_lightning.validation import InvalidSetting

#: What :func:`read_checkpoint` recognises.
FORMATS: tuple[str, ...] = ("train.py", "cohen", "state_dict", "torchscript")


@dataclass(frozen=True)
class CheckpointFile:
    """A checkpoint as read: its ``format`` (one of :data:`FORMATS`) and content (``None``
    for TorchScript, loaded when the classifier is built)."""

    path: str
    format: str
    content: Any

    @property
    def arch(self) -> str | None:
        """The architecture a Cohen et al. checkpoint names."""
        return str(self.content["arch"]) if self.format == "cohen" else None


def _is_torchscript(file: Path) -> bool:
    """TorchScript archives hold their code (``<name>/code/``); other PyTorch files do not."""
    if not zipfile.is_zipfile(file):
        return False
    with zipfile.ZipFile(file) as archive:
        return any(
            "/code/" in name or name.endswith("constants.pkl") for name in archive.namelist()
        )


def read_checkpoint(path: str) -> CheckpointFile:
    """Read ``path`` with ``weights_only=True`` and tell its format.

    Raises:
        InvalidSetting: naming the file and why it cannot serve: absent, empty, damaged,
            holding objects other than tensors and plain data, or of no known format.
    """
    file = Path(path)
    if file.is_dir():
        raise InvalidSetting("checkpoint", f"{path} is a directory, not a checkpoint file")
    if not file.is_file():
        raise InvalidSetting("checkpoint", f"{path} does not exist")
    if file.stat().st_size == 0:
        raise InvalidSetting("checkpoint", f"{path} is empty")
    if _is_torchscript(file):
        return CheckpointFile(path, "torchscript", None)
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
    if isinstance(state, dict) and {"hyper_parameters", "state_dict"} <= set(state):
        return CheckpointFile(path, "train.py", state)
    if isinstance(state, dict) and {"arch", "state_dict"} <= set(state):
        return CheckpointFile(path, "cohen", state)
    if (
        isinstance(state, dict)
        and state
        and all(isinstance(value, torch.Tensor) for value in state.values())
    ):
        return CheckpointFile(path, "state_dict", state)
    raise InvalidSetting(
        "checkpoint",
        f"{path} is of no known format: certify.py reads train.py checkpoints (with "
        "'hyper_parameters' and 'state_dict'), Cohen et al.'s ('arch', 'state_dict'), a plain "
        "state_dict (with --arch) and TorchScript files",
    )
