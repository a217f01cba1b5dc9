"""BaseClassifierModule: built from the DataModule's shape, classes and statistics."""

import lightning.pytorch as pl

from idrs_lightning.data.datamodule import SmoothingDataModule
from idrs_lightning.data.statistics import FASHION_MNIST_MEAN, FASHION_MNIST_STD
from idrs_lightning.training import BaseClassifierModule


class ShiftedDigits(SmoothingDataModule):
    """Digits with statistics of its own, to see them reach the model's first layer."""

    @property
    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return (0.5,), (0.25,)


def test_first_layer_normalises_with_the_datamodules_statistics(tmp_path) -> None:
    datamodule = ShiftedDigits("digits", root=str(tmp_path), sigma_b=0.25, batch_size=256)
    module = BaseClassifierModule("lenet", lr=0.05)
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        limit_train_batches=1,
        limit_val_batches=1,
    )
    trainer.fit(module, datamodule)
    normalize = module.classifier.normalize
    assert float(normalize.mean) == 0.5 and float(normalize.std) == 0.25
    assert module.hparams.num_classes == 10 and module.hparams.sample_shape == [1, 8, 8]


def test_fashion_mnist_has_statistics_of_its_own(tmp_path) -> None:
    datamodule = SmoothingDataModule("fashion_mnist", root=str(tmp_path))
    assert datamodule.normalization == (FASHION_MNIST_MEAN, FASHION_MNIST_STD)
    assert datamodule.normalization != SmoothingDataModule("mnist").normalization
