"""BaseClassifierModule: built from the DataModule's shape, classes and statistics."""

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from idrs_lightning.data.datamodule import SmoothingDataModule
from idrs_lightning.normalization import FASHION_MNIST_MEAN, FASHION_MNIST_STD
from idrs_lightning.training.cli import default_checkpoints
from idrs_lightning.training.module import BaseClassifierModule, TrainingDiverged


class ShiftedDigits(SmoothingDataModule):
    """Digits with statistics of its own, to see them reach the model's first layer."""

    @property
    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return (0.5,), (0.25,)


def _trainer(folder: Path, **settings: object) -> pl.Trainer:
    """A quiet CPU trainer of one epoch (one validation batch) without loggers."""
    defaults = {"max_epochs": 1, "accelerator": "cpu", "limit_val_batches": 1}
    return pl.Trainer(
        default_root_dir=folder, logger=False, enable_progress_bar=False, **defaults | settings
    )


def test_first_layer_normalises_with_the_datamodules_statistics(tmp_path) -> None:
    datamodule = ShiftedDigits("digits", root=str(tmp_path), sigma_b=0.25, batch_size=256)
    module = BaseClassifierModule("lenet", lr=0.05)
    trainer = _trainer(tmp_path, enable_checkpointing=False, limit_train_batches=1)
    trainer.fit(module, datamodule)
    normalize = module.classifier.normalize
    assert float(normalize.mean) == 0.5 and float(normalize.std) == 0.25
    assert module.hparams.num_classes == 10 and module.hparams.sample_shape == [1, 8, 8]


def test_fashion_mnist_has_statistics_of_its_own(tmp_path) -> None:
    datamodule = SmoothingDataModule("fashion_mnist", root=str(tmp_path))
    assert datamodule.normalization == (FASHION_MNIST_MEAN, FASHION_MNIST_STD)
    assert datamodule.normalization != SmoothingDataModule("mnist").normalization


class PoisonAtEpochEnd(pl.Callback):
    """Turns one weight into NaN at the end of epoch ``epoch``: a loss that stayed finite
    through the epoch's last step, and weights that did not."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            with torch.no_grad():
                next(pl_module.parameters()).view(-1)[0] = float("nan")


def test_non_finite_weights_are_never_saved_and_name_the_epoch(tmp_path) -> None:
    datamodule = SmoothingDataModule("digits", root=str(tmp_path), sigma_b=0.25, val_fraction=0)
    module = BaseClassifierModule("mlp", lr=0.05)
    folder = tmp_path / "checkpoints"
    trainer = _trainer(
        tmp_path,
        max_epochs=3,
        limit_train_batches=2,
        callbacks=[PoisonAtEpochEnd(1), *default_checkpoints(folder, validation=False)],
    )
    with pytest.raises(TrainingDiverged, match=r"diverged in epoch 1 .*weights .* NaN") as error:
        trainer.fit(module, datamodule)
    assert "checkpoints saved before epoch 1 predate it" in str(error.value)
    saved = torch.load(folder / "last.ckpt", weights_only=True)
    assert saved["epoch"] == 0, "the diverged epoch was not saved over the last good one"
    assert all(torch.isfinite(t).all() for t in saved["state_dict"].values())
