"""Certifying a fixed validation subset during training, and recording each certified epoch:
the work behind :class:`callbacks.certification.CertificationCallback`.

A class-stratified subset of the DataModule's *validation* split (its ``eval_seed`` fixes it;
the test split is never read here) is certified with the run's test-time sigma(x) (Theorem 7's
radius when its rate is positive, Cohen's otherwise). Under DDP the subset is sharded across
ranks and the metrics are gathered by torchmetrics, so every rank gets the same numbers. The
model is certified in eval mode and its mode restored, no gradient is computed, and the noise
comes from seeded generators of its own: the training state is never touched.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from idrs_lightning.data.datamodule import SmoothingDataModule
from idrs_lightning.reporting.metrics import CertificationMetrics, CertificationResult
from idrs_lightning.reporting.report import write_epoch_report
from idrs_lightning.reporting.tables import curve_label, figure_title
from idrs_lightning.settings import CertificationSettings
from idrs_lightning.smoothing import certify_groups
from idrs_lightning.smoothing.dual import DualSmooth


@dataclass(frozen=True)
class EpochCertification:
    """What is certified at a certified epoch: ``num_examples`` validation inputs with
    ``settings``, summarised on ``radii`` (default: 0 to 3 sigma_b in steps of sigma_b / 4),
    with the evaluation shortcut where ``skip_misclassified``."""

    settings: CertificationSettings = field(default_factory=CertificationSettings)
    num_examples: int = 50
    radii: list[float] | None = None
    skip_misclassified: bool = False

    def certify(
        self,
        datamodule: SmoothingDataModule,
        module: pl.LightningModule,
        rank: int = 0,
        world: int = 1,
        constant: bool = False,
    ) -> CertificationResult:
        """Certify this rank's share of the subset now and return the result (the same on
        every rank); with ``constant`` every input uses ``sigma_b`` and Cohen's radius. The
        module chooses what is certified (``module.smoothed``: its smoothed classifier, or a
        dual model's router with its experts)."""
        datamodule = evaluated_data(datamodule)
        subset = datamodule.evaluation_subset(self.num_examples, split="val")
        shard = subset[rank::world].tolist()
        inputs = datamodule.certification_inputs(shard, constant=constant, split="val")
        radii = datamodule.radius_grid(self.radii)
        device = module.device
        metrics = CertificationMetrics(datamodule.num_classes, radii).to(device)
        if shard:
            smooth = module.smoothed(datamodule, self.settings, radii, constant)
            was_training = module.training
            module.eval()
            try:
                labels = inputs.y if self.skip_misclassified else None
                xs = inputs.x.to(device)
                if isinstance(smooth, DualSmooth):
                    certificates = smooth.certify_many(xs, shard, labels)
                else:
                    groups = certify_groups(smooth, xs, inputs.sigma, shard, labels)
                    certificates = [c for group in groups for c in group]
            finally:
                module.train(was_training)
            radius = [c.radius for c in certificates]
            metrics.update(
                torch.from_numpy(inputs.y).to(device),
                torch.tensor([c.prediction for c in certificates], device=device),
                torch.tensor(radius, dtype=torch.float64, device=device),
            )
        return metrics.result()  # gathered across ranks

    def options(self) -> dict[str, Any]:
        """These settings as plain values, for run configs and records."""
        return {
            **asdict(self.settings),
            **{k: v for k, v in asdict(self).items() if k != "settings"},
        }


def evaluated_data(datamodule: pl.LightningDataModule) -> SmoothingDataModule:
    """The data whose validation split is certified: the training data, or where the model
    trains on other batches (a dual model's router on soft targets) the data it names as its
    ``evaluation``."""
    return getattr(datamodule, "evaluation", None) or datamodule


def epoch_record(
    epoch: int, datamodule: SmoothingDataModule, options: dict[str, Any]
) -> dict[str, Any]:
    """What a certified epoch's files say of how it was made: the epoch, sigma_b, the rate r
    and the callback's ``options`` (under ``certify_callback``)."""
    return {
        "epoch": epoch,
        "sigma_b": float(datamodule.hparams.sigma_b),
        "r": float(datamodule.r),
        "certify_callback": options,
    }


def write_epoch_files(
    folder: Path,
    record: dict[str, Any],
    settings: CertificationSettings,
    results: dict[str, CertificationResult],
) -> None:
    """``epoch_<e>[_constant].json`` (summary, per-input radii, ``record``) and one figure
    ``epoch_<e>.png`` / ``.pdf`` with every curve of the epoch."""
    count = results["certify"].summary.count
    title = figure_title(record["epoch"], record["sigma_b"], record["r"], settings, count)
    curves = {curve_label(prefix, record): result.curve() for prefix, result in results.items()}
    write_epoch_report(folder, record, results, curves, title)
