"""Certify a fixed validation subset during training and log the results.

Every ``every_n_epochs`` epochs, a class-stratified subset of the DataModule's *validation*
split (its ``eval_seed`` fixes it; the test split is never read here) is certified with the
run's test-time sigma(x) (IDRS radius when its rate is positive, Cohen's otherwise). Under DDP
the subset is sharded across ranks and the metrics are gathered by torchmetrics, so every rank
computes the same numbers. Each certified epoch is one record at that epoch's step: the scalars
go to every logger (and to ``callback_metrics`` for checkpoint monitors); W&B gets them in one
row with the curves drawn from the per-input radii, the per-class tables, IDRS against constant
sigma and the curve of every certified epoch so far, ``epoch`` as their x-axis and best-value
summaries (:mod:`idrs_lightning.reporting.dashboard`); the log directory gets
``certification/epoch_<e>.json`` (``e`` is Lightning's 0-based epoch; the summary, the
per-input radii and the settings) and one figure ``epoch_<e>.png`` / ``.pdf`` with both curves
(:mod:`idrs_lightning.reporting.report`).

The callback never touches the training state: the model is certified in eval mode and its
mode restored, no gradients are computed, and noise comes from its own seeded generators (the
global RNG streams are untouched).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import WandbLogger
from typing_extensions import override

from idrs_lightning.reporting.dashboard import define_certification_metrics, summary_entries
from idrs_lightning.reporting.metrics import CertificationMetrics, default_radii
from idrs_lightning.reporting.report import (
    curve_label,
    epoch_charts,
    figure_title,
    plot_certified_accuracy,
    scalars,
    write_json,
)
from idrs_lightning.settings import CertificationSettings, InvalidSetting
from idrs_lightning.smoothing import Smooth


class CertificationCallback(Callback):
    """Certified accuracy, ACR, abstention and class-wise fairness during training.

    Args:
        every_n_epochs: certify after the validation of every n-th epoch.
        num_examples: size of the stratified subset of the validation split to certify.
        n0, n, alpha, batch_size, seed, separate_pb, sequential: the
            :class:`~idrs_lightning.settings.CertificationSettings`. By default CERTIFY is
            sequential with at most n = 10,000 estimation samples per input: an input stops
            as soon as its answer at every radius of the grid is settled (most stop after a
            few thousand samples), and the anytime-valid bound still reaches 3.1 sigma at
            alpha = 1e-3, beyond the default grid (fixed n = 256 stopped at 1.9 sigma).
            ``separate_pb`` certifies with fixed n (the sequential mode has no runner-up
            bound).
        radii: radii of the certified-accuracy table (default: 0 to 3 sigma_b in sigma_b / 4).
        compare_constant: also certify with constant ``sigma_b`` (Cohen et al.), logged under
            ``certify_constant/``.
        skip_misclassified: the evaluation shortcut: an input whose selected class is not its
            label skips estimation (:func:`~idrs_lightning.smoothing.certify_groups`).
            Certified accuracy, clean accuracy and ACR are unchanged; abstention and
            misclassification rates then count those inputs as misclassified, never abstained.

    Raises:
        ValueError: for ``every_n_epochs < 1`` or ``num_examples < 1``;
            :class:`~idrs_lightning.settings.InvalidSetting` for a setting out of range.

    Example::

        trainer = Trainer(callbacks=[CertificationCallback(every_n_epochs=5, n=1000)])
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        num_examples: int = 50,
        n0: int = 32,
        n: int = 10_000,
        alpha: float = 0.001,
        batch_size: int = 512,
        seed: int = 0,
        radii: list[float] | None = None,
        compare_constant: bool = False,
        separate_pb: bool = False,
        sequential: bool = True,
        skip_misclassified: bool = False,
    ) -> None:
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be at least 1, got {every_n_epochs}")
        if num_examples < 1:
            raise ValueError(f"num_examples must be at least 1, got {num_examples}")
        self.settings = CertificationSettings(
            n0, n, alpha, batch_size, seed, separate_pb, sequential and not separate_pb
        )
        self.every_n_epochs = every_n_epochs
        self.num_examples = num_examples
        self.radii = radii
        self.compare_constant = compare_constant
        self.skip_misclassified = skip_misclassified
        self._history: list[tuple[int, dict]] = []  # (epoch, IDRS summary) of this fit
        self._defined: set[tuple[int, str]] = set()  # (W&B run, scalar) declared
        self._best: dict[str, float] = {}  # best value of each scalar so far (the summary)

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        size = trainer.datamodule.split_size("val")  # refuses a run without validation split
        if self.num_examples > size:
            raise InvalidSetting(
                "num_examples",
                f"({self.num_examples}) exceeds the validation split ({size} inputs)",
            )

    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        summaries = {"certify": self.certify(trainer, pl_module)}
        if self.compare_constant:
            summaries["certify_constant"] = self.certify(trainer, pl_module, constant=True)
        self._log(trainer, pl_module, summaries)

    def certify(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, constant: bool = False
    ) -> dict:
        """Certify the subset now and return the summary (identical on every rank).

        With ``constant``, every input uses ``sigma_b`` and Cohen's radius.
        """
        datamodule = trainer.datamodule
        subset = datamodule.evaluation_subset(self.num_examples, split="val")
        shard = subset[trainer.global_rank :: trainer.world_size].tolist()
        inputs = datamodule.certification_inputs(shard, constant=constant, split="val")
        radii = self.radii or default_radii(float(datamodule.hparams.sigma_b))
        metrics = CertificationMetrics(datamodule.num_classes, radii).to(pl_module.device)
        if shard:
            smooth = Smooth(
                pl_module.classifier,
                datamodule.num_classes,
                inputs.r,
                self.settings,
                getattr(datamodule, "value_range", None),
                radii,
            )
            was_training = pl_module.training
            pl_module.eval()
            try:
                certificates = smooth.certify_many(
                    inputs.x.to(pl_module.device),
                    inputs.sigma,
                    shard,
                    inputs.y if self.skip_misclassified else None,
                )
            finally:
                pl_module.train(was_training)
            metrics.update(
                torch.from_numpy(inputs.y).to(pl_module.device),
                torch.tensor([c.prediction for c in certificates], device=pl_module.device),
                torch.tensor(
                    [c.radius for c in certificates], dtype=torch.float64, device=pl_module.device
                ),
            )
        return metrics.compute()  # gathered across ranks

    @override
    def state_dict(self) -> dict[str, object]:
        """The certified epochs' curves and best values, so that a resumed run continues them."""
        return {"history": self._history, "best": self._best}

    @override
    def load_state_dict(self, state_dict: dict[str, object]) -> None:
        self._history = [(int(e), s) for e, s in state_dict.get("history", [])]
        self._best = dict(state_dict.get("best", {}))

    def config(self) -> dict[str, object]:
        """Every setting of this callback, flat (``certify_callback.<name>``), for run configs."""
        values = {
            **asdict(self.settings),
            "every_n_epochs": self.every_n_epochs,
            "num_examples": self.num_examples,
            "radii": self.radii,
            "compare_constant": self.compare_constant,
            "skip_misclassified": self.skip_misclassified,
        }
        return {f"certify_callback.{name}": value for name, value in values.items()}

    def _log(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, summaries: dict[str, dict]
    ) -> None:
        """One record per certified epoch: the scalars to every logger at this epoch's step
        (W&B: with the curves and tables in the same row, ``epoch`` as x-axis), the JSON
        summaries and the figure (IDRS and constant sigma together) in the log directory."""
        epoch = trainer.current_epoch
        values = {k: v for prefix, s in summaries.items() for k, v in scalars(s, prefix).items()}
        for name, value in values.items():  # for monitors (checkpoints, early stopping)
            pl_module.log(name, value, logger=False, sync_dist=False)
        # trainer.log_dir broadcasts from rank 0: every rank must ask for it.
        folder = Path(trainer.log_dir or trainer.default_root_dir) / "certification"
        if not trainer.is_global_zero:
            return
        datamodule = trainer.datamodule
        settings = {
            "epoch": epoch,
            "sigma_b": float(datamodule.hparams.sigma_b),
            "r": float(datamodule.r),
            **self.config(),
        }
        self._history.append((epoch, summaries["certify"]))
        title = figure_title(settings, len(summaries["certify"]["radius"]))
        for prefix, summary in summaries.items():
            suffix = "" if prefix == "certify" else "_constant"
            write_json(folder / f"epoch_{epoch}{suffix}.json", {**summary, "settings": settings})
        curves = {
            curve_label(prefix, settings): (np.asarray(s["radius"]), np.asarray(s["correct"]))
            for prefix, s in summaries.items()
        }
        plot_certified_accuracy(curves, folder / f"epoch_{epoch}.png", title)
        row = {**values, "epoch": epoch}
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                experiment = logger.experiment
                new = [name for name in values if (id(experiment), name) not in self._defined]
                if new:
                    define_certification_metrics(experiment, new)
                    experiment.config.update(self.config(), allow_val_change=True)
                    self._defined.update((id(experiment), name) for name in new)
                experiment.log({**row, **epoch_charts(summaries, self._history, settings)})
                experiment.summary.update(summary_entries(self._best, values))
            else:
                logger.log_metrics(row, step=trainer.global_step)
