"""Certify a fixed validation subset during training and log the results.

Every ``every_n_epochs`` epochs, a class-stratified subset of the test split (fixed by its
seed) is certified with the run's test-time sigma(x) (IDRS radius when its rate is positive,
Cohen's otherwise). Under DDP the subset is sharded across ranks and the metrics are gathered
by torchmetrics, so every rank computes the same numbers; they are logged through
``pl_module.log`` (to every attached logger), additionally as a line plot and tables to W&B,
and written to ``<log dir>/certification/epoch_<e>.json`` and ``.png``.

The callback never touches the training state: the model's mode is restored, no gradients are
computed, and noise comes from its own seeded generators (the global RNG streams are untouched).
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import WandbLogger
from typing_extensions import override

from idrs_lightning.data.subsets import stratified_subset
from idrs_lightning.metrics import CertificationMetrics, default_radii
from idrs_lightning.report import plot_summary_curve
from idrs_lightning.smoothing import Smooth


class CertificationCallback(Callback):
    """Certified accuracy, ACR, abstention and class-wise fairness during training.

    Args:
        every_n_epochs: certify after the validation of every n-th epoch.
        num_examples: size of the stratified subset of the test split.
        n0, n, alpha: CERTIFY's selection samples, estimation samples and failure probability.
            The defaults (50 inputs, n = 256: radii up to 1.9 sigma at alpha = 1e-3) cost
            about a tenth of a Fashion-MNIST LeNet epoch on a 2-core CPU
            (``bench/callback_cost.py``); raise ``n`` for tighter certificates.
        batch_size: noisy samples per forward pass.
        seed: fixes the subset and the noise.
        radii: radii of the certified-accuracy table (default: 0 to 3 sigma_b in sigma_b / 4).
        compare_constant: also certify with constant ``sigma_b`` (Cohen et al.), logged under
            ``certify_constant/``.
        separate_pb: bound the runner-up class separately (Appendix B.5; see
            :class:`~idrs_lightning.smoothing.Smooth`).

    Raises:
        ValueError: for ``every_n_epochs < 1``, ``num_examples < 1``, ``n0 > n`` or ``alpha``
            outside (0, 1).

    Example::

        trainer = Trainer(callbacks=[CertificationCallback(every_n_epochs=5, n=1000)])
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        num_examples: int = 50,
        n0: int = 32,
        n: int = 256,
        alpha: float = 0.001,
        batch_size: int = 512,
        seed: int = 0,
        radii: list[float] | None = None,
        compare_constant: bool = False,
        separate_pb: bool = False,
    ) -> None:
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be at least 1, got {every_n_epochs}")
        if num_examples < 1:
            raise ValueError(f"num_examples must be at least 1, got {num_examples}")
        if not 1 <= n0 <= n:
            raise ValueError(f"need 1 <= n0 <= n, got n0={n0}, n={n}")
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
        self.every_n_epochs = every_n_epochs
        self.num_examples = num_examples
        self.n0, self.n, self.alpha = n0, n, alpha
        self.batch_size = batch_size
        self.seed = seed
        self.radii = radii
        self.compare_constant = compare_constant
        self.separate_pb = separate_pb

    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        self._log(trainer, pl_module, self.certify(trainer, pl_module), "certify")
        if self.compare_constant:
            summary = self.certify(trainer, pl_module, constant=True)
            self._log(trainer, pl_module, summary, "certify_constant")

    def certify(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, constant: bool = False
    ) -> dict:
        """Certify the subset now and return the summary (identical on every rank).

        With ``constant``, every input uses ``sigma_b`` and Cohen's radius.
        """
        datamodule = trainer.datamodule
        dataset = datamodule.datasets["test"]
        sigma_b = float(datamodule.hparams.sigma_b)
        radii = self.radii or default_radii(sigma_b)
        indices = stratified_subset(
            datamodule.labels["test"], min(self.num_examples, len(dataset)), self.seed
        )
        shard = indices[trainer.global_rank :: trainer.world_size]
        metrics = CertificationMetrics(datamodule.num_classes, radii).to(pl_module.device)
        smooth = Smooth(
            pl_module.classifier,
            datamodule.num_classes,
            0.0 if constant else datamodule.rate,
            self.batch_size,
            self.seed,
            separate_pb=self.separate_pb,
        )
        was_training = pl_module.training
        try:
            if len(shard):
                xs, labels, sigmas = dataset.batch(shard.tolist())
                certificates = smooth.certify_many(
                    xs.to(pl_module.device),
                    [sigma_b] * len(shard) if constant else sigmas.tolist(),
                    self.n0,
                    self.n,
                    self.alpha,
                    shard.tolist(),
                )
                metrics.update(
                    labels.to(pl_module.device),
                    torch.tensor([c.prediction for c in certificates], device=pl_module.device),
                    torch.tensor(
                        [c.radius for c in certificates],
                        dtype=torch.float64,
                        device=pl_module.device,
                    ),
                )
            summary = metrics.compute()  # gathered across ranks
        finally:
            pl_module.train(was_training)
        return summary

    def _log(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, summary: dict, prefix: str
    ) -> None:
        scalars = {
            f"{prefix}/{key}": summary[key]
            for key in (
                "clean_accuracy",
                "abstention_rate",
                "misclassification_rate",
                "average_certified_radius",
                "class_accuracy_std",
            )
        }
        for radius, accuracy in zip(summary["radii"], summary["certified_accuracy"], strict=True):
            scalars[f"{prefix}/accuracy_at_{radius:g}"] = accuracy
        for label, accuracy in enumerate(summary["per_class_accuracy"]):
            if not np.isnan(accuracy):
                scalars[f"{prefix}/class_{label}_accuracy"] = accuracy
        for name, value in scalars.items():
            pl_module.log(name, float(value), sync_dist=False)
        # trainer.log_dir broadcasts from rank 0: every rank must ask for it.
        folder = Path(trainer.log_dir or trainer.default_root_dir) / "certification"
        if trainer.is_global_zero:
            epoch = trainer.current_epoch
            folder.mkdir(parents=True, exist_ok=True)
            suffix = "" if prefix == "certify" else "_constant"
            (folder / f"epoch_{epoch}{suffix}.json").write_text(json.dumps(summary, indent=2))
            plot_summary_curve(
                summary, f"{prefix}, epoch {epoch}", folder / f"epoch_{epoch}{suffix}.png"
            )
            for logger in trainer.loggers:
                if isinstance(logger, WandbLogger):
                    _log_wandb_curves(logger, summary, epoch, prefix)


def _log_wandb_curves(logger: WandbLogger, summary: dict, epoch: int, prefix: str) -> None:
    import wandb

    curve = wandb.Table(
        columns=["radius", "certified_accuracy"],
        data=list(zip(summary["radii"], summary["certified_accuracy"], strict=True)),
    )
    logger.experiment.log(
        {
            f"{prefix}/curve": wandb.plot.line(
                curve, "radius", "certified_accuracy", title=f"{prefix}: certified accuracy"
            ),
            f"{prefix}/curve_table": curve,
            f"{prefix}/per_class": wandb.Table(
                columns=["class", "accuracy"],
                data=[[c, a] for c, a in enumerate(summary["per_class_accuracy"])],
            ),
            "epoch": epoch,
        }
    )
