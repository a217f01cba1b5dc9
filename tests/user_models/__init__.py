"""What a user brings, importable by class_path: ``tests.user_models.TinyConvNet``, and the
gates that stop a run at a chosen point so that a test can stop it from outside, certainly
mid-run (``GatedNet`` for certification, ``GateCallback`` for training)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import NoReturn

from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor, nn


class TinyConvNet(nn.Module):
    """conv 3x3 -> ReLU -> 2x2 average pool -> linear."""

    def __init__(self, num_classes: int = 10, channels: int = 3, width: int = 8) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2)
        )
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).flatten(1))


def not_a_network(count: int = 1) -> int:
    """A function that builds no module (a class_path must not name it)."""
    return count


def hold(ready: str | None, note: str) -> NoReturn:
    """Write ``note`` and this process's id to the file ``ready`` (whole, by a rename), then
    sleep until the process is stopped (a signal's exception ends the sleep)."""
    if ready:
        partial = Path(f"{ready}.partial")
        partial.write_text(f"{note} pid={os.getpid()}\n")
        partial.replace(ready)
    while True:
        time.sleep(1.0)


class GatedNet(TinyConvNet):
    """TinyConvNet that, once the results file the environment names (``IDRS_TEST_GATE``) holds
    ``IDRS_TEST_GATE_ROWS`` rows (default 1), holds its forward pass until the process is
    stopped, after writing ``rows=<rows it saw>`` to the file ``IDRS_TEST_GATE_READY`` names
    (if any). A run stopped after that file appears is certainly stopped mid-run, after
    exactly those rows. Without ``IDRS_TEST_GATE`` it is TinyConvNet."""

    def forward(self, x: Tensor) -> Tensor:
        gate = os.environ.get("IDRS_TEST_GATE")
        if gate and Path(gate).is_file():
            rows = len(Path(gate).read_text().splitlines()) - 1  # less the header
            if rows >= int(os.environ.get("IDRS_TEST_GATE_ROWS", "1")):
                hold(os.environ.get("IDRS_TEST_GATE_READY"), f"rows={rows}")
        return super().forward(x)


class GateCallback(Callback):
    """Holds training at the start of epoch ``epoch`` until the process is stopped, after
    writing ``epoch=<epoch>`` to the file the environment names (``IDRS_TEST_GATE_READY``):
    the epochs before it are finished and checkpointed. Without that variable it does nothing
    (a resume that reads the run's config.yaml runs through)."""

    def __init__(self, epoch: int = 1) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        ready = os.environ.get("IDRS_TEST_GATE_READY")
        if ready and trainer.current_epoch == self.epoch:
            hold(ready, f"epoch={self.epoch}")
