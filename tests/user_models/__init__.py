"""A network a user brings, importable as ``tests.user_models.TinyConvNet``."""

from __future__ import annotations

import os
import time
from pathlib import Path

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


class GatedNet(TinyConvNet):
    """TinyConvNet that, while the environment names a results file (``IDRS_TEST_GATE``)
    holding a row, blocks in every forward pass until the process is stopped: a run stopped
    from outside is certainly stopped mid-run, after its first row."""

    def forward(self, x: Tensor) -> Tensor:
        gate = Path(os.environ.get("IDRS_TEST_GATE") or "/nonexistent")
        while gate.is_file() and len(gate.read_text().splitlines()) > 1:
            time.sleep(0.05)
        return super().forward(x)
