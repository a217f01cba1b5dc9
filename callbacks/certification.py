"""Certify a fixed validation subset during training and log the results.

Every ``every_n_epochs`` epochs the callback certifies a class-stratified subset of the
*validation* split (:class:`~idrs_lightning.training.epoch_certification.EpochCertification`;
the test split is never read). Each certified epoch is one record at that epoch's step: the
scalars go to every logger (and to ``callback_metrics`` for checkpoint monitors); W&B gets
them in one row with the curves drawn from the per-input radii, the per-class tables, IDRS
against constant sigma and the curve of every certified epoch so far, ``epoch`` as their
x-axis and best-value summaries
(:class:`~idrs_lightning.reporting.wandb_logging.CertifiedEpochLog`); the log directory gets
``certification/epoch_<e>.json`` (``e`` is Lightning's 0-based epoch; the summary, the
per-input radii and the settings) and one figure ``epoch_<e>.png`` / ``.pdf`` with both curves.
The training state is never touched.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import WandbLogger
from typing_extensions import override

from idrs_lightning.reporting.metrics import CertificationResult
from idrs_lightning.reporting.wandb_logging import CertifiedEpochLog, epoch_charts
from idrs_lightning.settings import CertificationSettings, InvalidSetting
from idrs_lightning.training.epoch_certification import (
    EpochCertification,
    epoch_record,
    evaluated_data,
    write_epoch_files,
)


class CertificationCallback(Callback):
    """Certified accuracy, ACR, abstention and class-wise fairness during training.

    Args:
        settings: how CERTIFY samples and bounds, with the same defaults as ``certify.py``
            (:class:`~idrs_lightning.settings.CertificationSettings`; a nested group in
            configs: ``settings: {n0: 32, n: 10000, sequential: true}``). Sequential CERTIFY
            with at most n = 10,000 estimation samples per input is the cheap choice for
            training: an input stops as soon as its answer at every radius of the grid is
            settled, and the anytime-valid bound still reaches 3.1 sigma at alpha = 1e-3.
        every_n_epochs: certify after the validation of every n-th epoch.
        num_examples: size of the stratified subset of the validation split to certify.
        radii: radii of the certified-accuracy table (default: 0 to 3 sigma_b in sigma_b / 4).
        compare_constant: also certify with constant ``sigma_b`` (Cohen et al.), logged under
            ``certify_constant/``.
        skip_misclassified: the evaluation shortcut: an input whose selected class is not its
            label skips estimation (:func:`~idrs_lightning.smoothing.certify_groups`).
            Certified accuracy, clean accuracy and ACR are unchanged; abstention and
            misclassification rates then count those inputs as misclassified, never abstained.

    Raises:
        ValueError: for ``every_n_epochs < 1`` or ``num_examples < 1``.

    Example::

        settings = CertificationSettings(n0=32, n=10_000, sequential=True)
        trainer = Trainer(callbacks=[CertificationCallback(settings, every_n_epochs=5)])
    """

    def __init__(
        self,
        settings: CertificationSettings = CertificationSettings(),  # noqa: B008 (frozen)
        every_n_epochs: int = 1,
        num_examples: int = 50,
        radii: list[float] | None = None,
        compare_constant: bool = False,
        skip_misclassified: bool = False,
    ) -> None:
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be at least 1, got {every_n_epochs}")
        if num_examples < 1:
            raise ValueError(f"num_examples must be at least 1, got {num_examples}")
        self.certification = EpochCertification(settings, num_examples, radii, skip_misclassified)
        self.every_n_epochs = every_n_epochs
        self.compare_constant = compare_constant
        self._history: list[tuple[int, CertificationResult]] = []  # (epoch, IDRS) of this fit
        self._wandb = CertifiedEpochLog()

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        size = evaluated_data(trainer.datamodule).split_size("val")  # refuses a run without one
        if self.certification.num_examples > size:
            raise InvalidSetting(
                "num_examples",
                f"({self.certification.num_examples}) exceeds the validation split ({size} inputs)",
            )

    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        results = {"certify": self.certify(trainer, pl_module)}
        if self.compare_constant:
            results["certify_constant"] = self.certify(trainer, pl_module, constant=True)
        self._record(trainer, pl_module, results)

    def certify(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, constant: bool = False
    ) -> CertificationResult:
        """Certify the subset now and return the result (identical on every rank); with
        ``constant``, every input uses ``sigma_b`` and Cohen's radius."""
        return self.certification.certify(
            trainer.datamodule, pl_module, trainer.global_rank, trainer.world_size, constant
        )

    def options(self) -> dict[str, object]:
        """Every setting of this callback, as plain values (run configs, epoch records)."""
        return {
            **self.certification.options(),
            "every_n_epochs": self.every_n_epochs,
            "compare_constant": self.compare_constant,
        }

    @override
    def state_dict(self) -> dict[str, object]:
        """The certified epochs' curves and best values, so that a resumed run continues them
        (plain values: each result as its JSON)."""
        return {"history": [(e, r.to_json()) for e, r in self._history], "best": self._wandb.best}

    @override
    def load_state_dict(self, state_dict: dict[str, object]) -> None:
        self._history = [
            (int(e), CertificationResult.from_json(r)) for e, r in state_dict.get("history", [])
        ]
        self._wandb.best = dict(state_dict.get("best", {}))

    def _record(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        results: dict[str, CertificationResult],
    ) -> None:
        """One record per certified epoch: the scalars to every logger at this epoch's step,
        the files in the log directory and, in W&B, the charts in the same row."""
        epoch = trainer.current_epoch
        values = {
            k: v for prefix, r in results.items() for k, v in r.summary.scalars(prefix).items()
        }
        for name, value in values.items():  # for monitors (checkpoints, early stopping)
            pl_module.log(name, value, logger=False, sync_dist=False)
        # trainer.log_dir broadcasts from rank 0: every rank must ask for it.
        folder = Path(trainer.log_dir or trainer.default_root_dir) / "certification"
        if not trainer.is_global_zero:
            return
        record = epoch_record(epoch, evaluated_data(trainer.datamodule), self.options())
        self._history.append((epoch, results["certify"]))
        write_epoch_files(folder, record, self.certification.settings, results)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                charts = epoch_charts(results, self._history, record)
                config = {"certify_callback": self.options()}
                self._wandb.log(logger.experiment, {**values, "epoch": epoch}, charts, config)
            else:
                logger.log_metrics({**values, "epoch": epoch}, step=trainer.global_step)
