"""CertificationCallback in a real (small) training run."""

import json
from typing import ClassVar

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from callbacks.certification import CertificationCallback
from idrs_lightning.data.datamodule import SmoothingDataModule
from idrs_lightning.reporting.metrics import certification_summary
from idrs_lightning.settings import CertificationSettings, radius_grid
from idrs_lightning.smoothing import Smooth
from idrs_lightning.training.module import BaseClassifierModule

#: The callback's settings in these tests: sequential CERTIFY with at most 128 samples per
#: input, and fixed n with the runner-up bound of Appendix B.5.
SEQUENTIAL = CertificationSettings(n0=16, n=128, batch_size=512, sequential=True)
TWO_SIDED = CertificationSettings(n0=16, n=128, batch_size=512, separate_pb=True)


def _fit(tmp_path, callback: CertificationCallback, epochs: int = 2) -> tuple[pl.Trainer, dict]:
    pl.seed_everything(0)
    datamodule = SmoothingDataModule(
        "digits", root=str(tmp_path / "data"), sigma_b=0.25, r=0.05, k=5, batch_size=128
    )
    module = BaseClassifierModule("lenet", lr=0.05)
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        max_epochs=epochs,
        accelerator="cpu",
        logger=CSVLogger(tmp_path),
        callbacks=[callback],
        enable_progress_bar=False,
        enable_checkpointing=False,
        limit_train_batches=3,
    )
    trainer.fit(module, datamodule)
    return trainer, dict(trainer.callback_metrics)


def test_logs_certification_every_n_epochs(tmp_path) -> None:
    callback = CertificationCallback(
        SEQUENTIAL, every_n_epochs=2, num_examples=20, compare_constant=True
    )
    trainer, metrics = _fit(tmp_path, callback, epochs=2)
    # The same numbers from Smooth on the DataModule's evaluation subset, certified directly.
    datamodule, classifier = trainer.datamodule, trainer.lightning_module.classifier.eval()
    inputs = datamodule.certification_inputs(datamodule.evaluation_subset(20))
    assert inputs.r == 0.05 and len(set(inputs.sigma)) > 1
    smooth = Smooth(classifier, 10, inputs.r, CertificationSettings(16, 128, 0.001, 512, 0))
    certs = smooth.certify_many(inputs.x, inputs.sigma, inputs.indices)
    expected = certification_summary(
        inputs.y,
        [c.prediction for c in certs],
        [c.radius for c in certs],
        radius_grid(None, 0.25),
        10,
    )
    assert float(metrics["certify/clean_accuracy"]) == pytest.approx(expected.clean_accuracy)
    for radius in expected.radii:
        assert float(metrics[f"certify/accuracy_at_{radius:g}"]) == pytest.approx(
            expected.accuracy_at(radius)
        )
    assert float(metrics["certify/class_accuracy_std"]) == pytest.approx(
        expected.class_accuracy_std
    )
    files = sorted((tmp_path / "lightning_logs" / "version_0" / "certification").glob("*.json"))
    assert [f.name for f in files] == ["epoch_1.json", "epoch_1_constant.json"], "2nd epoch only"
    summary = json.loads(files[0].read_text())
    assert summary["count"] == 20
    assert summary["clean_accuracy"] == pytest.approx(float(metrics["certify/clean_accuracy"]))
    figure = files[0].with_suffix(".png")  # IDRS and constant sigma in one figure
    assert figure.exists() and figure.with_suffix(".pdf").exists()
    assert summary["settings"]["epoch"] == 1 and summary["settings"]["r"] == 0.05
    constant = json.loads(files[1].read_text())
    assert constant["count"] == 20
    assert constant["average_certified_radius"] == pytest.approx(
        float(metrics["certify_constant/average_certified_radius"])
    )


def test_deterministic_and_leaves_training_state_alone(tmp_path) -> None:
    callback = CertificationCallback(SEQUENTIAL, num_examples=12)
    _, first = _fit(tmp_path / "a", callback, epochs=1)
    trainer, second = _fit(tmp_path / "b", callback, epochs=1)
    keys = [k for k in first if k.startswith("certify/")]
    assert keys and all(float(first[k]) == float(second[k]) for k in keys)

    # Run it directly on a module in training mode: mode and global RNG stay as they were.
    module = trainer.lightning_module.train()
    rng = torch.get_rng_state()
    grads = [None if p.grad is None else p.grad.clone() for p in module.parameters()]
    summary = callback.certify(trainer, module).summary
    assert summary.count == 12
    assert module.training
    assert torch.equal(rng, torch.get_rng_state())
    for before, p in zip(grads, module.parameters(), strict=True):
        assert (before is None and p.grad is None) or torch.equal(before, p.grad)

    # With the runner-up bound of Appendix B.5 the same counts give other radii (p_a is then
    # taken at alpha / 2, and p_b replaces 1 - p_a).
    two_sided = CertificationCallback(TWO_SIDED, num_examples=12)
    other = two_sided.certify(trainer, module).summary
    assert other.count == 12
    assert other.average_certified_radius != summary.average_certified_radius > 0.0

    # The evaluation shortcut: the same certified accuracy, clean accuracy and ACR.
    shortcut = CertificationCallback(SEQUENTIAL, num_examples=12, skip_misclassified=True)
    quick = shortcut.certify(trainer, module).summary
    assert summary.clean_accuracy < 1.0  # some inputs are skipped
    assert quick.certified_accuracy == summary.certified_accuracy
    assert quick.clean_accuracy == summary.clean_accuracy
    assert quick.average_certified_radius == summary.average_certified_radius


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"every_n_epochs": 0}, "every_n_epochs must be at least 1"),
        ({"num_examples": 0}, "num_examples must be at least 1"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CertificationCallback(**kwargs)


def test_the_default_settings_are_certify_py_s() -> None:
    assert CertificationCallback().certification.settings == CertificationSettings()


def test_more_examples_than_the_validation_split_are_refused_before_training(tmp_path) -> None:
    callback = CertificationCallback(SEQUENTIAL, num_examples=100_000)
    with pytest.raises(ValueError, match=r"num_examples \(100000\) exceeds the validation split"):
        _fit(tmp_path, callback, epochs=1)
    assert not list(tmp_path.glob("lightning_logs/*/certification"))


class _RecordingDataModule(SmoothingDataModule):
    """The real DataModule, noting which splits certification reads."""

    read: ClassVar[list[str]] = []

    def evaluation_subset(self, size=None, split="test"):
        self.read.append(split)
        return super().evaluation_subset(size, split)

    def certification_inputs(self, indices, constant=False, split="test"):
        self.read.append(split)
        return super().certification_inputs(indices, constant, split)


def test_the_callback_certifies_validation_inputs_only(tmp_path) -> None:
    datamodule = _RecordingDataModule("digits", root=str(tmp_path), r=0.05, k=5, batch_size=128)
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        callbacks=[CertificationCallback(SEQUENTIAL, num_examples=12, compare_constant=True)],
        enable_progress_bar=False,
        enable_checkpointing=False,
        limit_train_batches=2,
    )
    trainer.fit(BaseClassifierModule("lenet", lr=0.05), datamodule)
    assert datamodule.read and set(datamodule.read) == {"val"}
    assert "certify/clean_accuracy" in trainer.callback_metrics


def test_the_callback_needs_a_validation_split(tmp_path) -> None:
    datamodule = SmoothingDataModule("digits", root=str(tmp_path), k=5, val_fraction=0)
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        callbacks=[CertificationCallback(SEQUENTIAL, num_examples=12)],
        enable_progress_bar=False,
        enable_checkpointing=False,
    )
    with pytest.raises(ValueError, match="val_fraction is 0"):
        trainer.fit(BaseClassifierModule("lenet", lr=0.05), datamodule)
