"""A dual model on digits, shared by the tests of its training and certification: two MLP
experts trained with constant noise and the router the training command makes of them."""

from __future__ import annotations

import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest

from idrs_lightning.data.datamodule import SmoothingDataModule
from idrs_lightning.training.module import BaseClassifierModule

ROOT = Path(__file__).resolve().parents[1]
SIGMAS = [0.25, 0.5]


@pytest.fixture(scope="module")
def experts(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two MLP experts on digits, trained with constant noise 0.25 and 0.5 (three epochs),
    as train.py checkpoints."""
    folder = tmp_path_factory.mktemp("experts")
    paths = []
    for sigma in SIGMAS:
        pl.seed_everything(0, verbose=False)
        data = SmoothingDataModule("digits", root=str(folder / "data"), sigma_b=sigma)
        trainer = pl.Trainer(
            max_epochs=3,
            accelerator="cpu",
            logger=False,
            enable_progress_bar=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            limit_val_batches=0,
        )
        trainer.fit(BaseClassifierModule("mlp", lr=0.1), data)
        paths.append(folder / f"expert-{sigma}.ckpt")
        trainer.save_checkpoint(paths[-1])
    return paths


def run_command(commands, experts: list[Path], out: Path, *options: str):
    command = [sys.executable, "-m", "idrs_lightning.dual", "--experts", *map(str, experts)]
    command += ["--sigmas", *map(str, SIGMAS), "--router-sigma", "0.5", "--out", str(out)]
    command += ["--network", "mlp", "--epochs", "1", "--target-inputs", "200", *options]
    return commands.run(command, out.parent)


@pytest.fixture(scope="module")
def router(commands, experts: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The router of the two experts: targets of 200 training inputs, one epoch."""
    out = tmp_path_factory.mktemp("router") / "run"
    done = run_command(commands, experts, out)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "kept" in done.stderr and "best level: sigma 0.25" in done.stderr
    return out


def certify_dual(commands, router: Path, out: Path, *options: str):
    """certify.py --method dual on 12 test inputs of the router's data."""
    command = [sys.executable, str(ROOT / "certify.py"), str(router / "checkpoints" / "last.ckpt")]
    command += [str(out), "--method", "dual", "--N", "300", "--N0", "32", "--indices", "0:12"]
    return commands.run([*command, *options], out.parent)
