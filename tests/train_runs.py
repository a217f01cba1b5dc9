"""train.py runs at their smallest, shared by the tests of real training runs (tests/slow)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
#: One epoch of digits on an MLP, on the CPU.
FAST = (
    "--data.dataset=digits",
    "--data.k=5",
    "--data.batch_size=128",
    "--model.network=mlp",
    "--trainer.max_epochs=1",
    "--trainer.accelerator=cpu",
    "--trainer.enable_progress_bar=false",
)
#: Three batches an epoch, each logged.
HISTORY = ("--trainer.limit_train_batches=3", "--trainer.log_every_n_steps=1")


def train_command(tmp_path: Path, *args: str) -> list[str]:
    """train.py fit at its smallest, its runs and data under ``tmp_path``."""
    command = [sys.executable, str(ROOT / "train.py"), "fit", f"--runs_dir={tmp_path / 'runs'}"]
    return [*command, *FAST, f"--data.root={tmp_path / 'data'}", *args]


def epoch(path: Path) -> int:
    """The epoch a checkpoint was saved in."""
    return int(torch.load(path, weights_only=True)["epoch"])


def metrics(run: Path) -> list[dict[str, str]]:
    """The rows of a run's metrics.csv."""
    with (run / "csv" / "metrics.csv").open() as file:
        return list(csv.DictReader(file))


def files(run: Path) -> dict[Path, bytes]:
    """A run directory's files (but its lock, which names whoever held it last)."""
    return {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"}


def validation_epochs(run: Path) -> list[int]:
    """The epochs with a validation row."""
    return [int(row["epoch"]) for row in metrics(run) if row.get("val/acc_noisy")]
