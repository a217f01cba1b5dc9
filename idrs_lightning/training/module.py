"""Training of base classifiers under (input-dependent) Gaussian data augmentation.

Each batch is ``(x, y, sigma)`` (see :class:`~idrs_lightning.data.datamodule.SmoothingDataModule`);
the classifier sees ``x + sigma * eps`` with ``eps ~ N(0, I)`` and one sigma per sample: constant
(Cohen et al. 2019), the kNN sigma(x) at the train rate ``trr`` (IDRS paper, Appendix E.4), or no
noise. Normalisation is the model's first layer, so noise is added in ``[0, 1]`` pixel space.
Optimiser and schedule default to Cohen et al.'s recipe (SGD, momentum 0.9, weight decay 1e-4,
learning rate x0.1 every 30 epochs).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import lightning.pytorch as pl
import torch
from torch import nn
from torch.nn import functional as F
from torchmetrics.classification import MulticlassAccuracy

from idrs_lightning.data.datamodule import SmoothingDataModule
from idrs_lightning.models import build_classifier, class_path_of
from idrs_lightning.settings import CertificationSettings
from idrs_lightning.smoothing import Smooth
from idrs_lightning.smoothing.dual import DualSmooth
from idrs_lightning.validation import InvalidSetting, check_float, check_int

log = logging.getLogger(__name__)


#: The optimiser's settings: a resume applies those it is given (:meth:`on_train_start`).
OPTIMISER_SETTINGS = ("lr", "momentum", "weight_decay", "lr_step", "lr_gamma")


class TrainingDiverged(ValueError):
    """The loss or the weights became NaN or infinite."""


def add_gaussian_noise(
    x: torch.Tensor, sigma: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``x + sigma * eps`` with one standard deviation per sample (``sigma`` of shape (n,))."""
    eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + sigma.to(x.dtype).view(-1, *([1] * (x.ndim - 1))) * eps


class BaseClassifierModule(pl.LightningModule):
    """A base classifier trained for randomized smoothing.

    Args:
        network: a built-in architecture ("lenet", "resnet20", "resnet110", "mlp"), or any
            ``torch.nn.Module`` (on the command line by ``class_path`` and ``init_args``, e.g.
            ``torchvision.models.resnet18`` with ``num_classes: 10``), which gets the data's
            normalisation as its first layer (:func:`~idrs_lightning.models.build_classifier`).
            Checkpoints record the class_path and init_args, so they load with
            ``weights_only=True``; a module passed as an object records only its class.
        augment: add Gaussian noise with the batch's per-sample sigma during training.
        lr, momentum, weight_decay: SGD settings.
        lr_step, lr_gamma: step schedule (multiply by ``lr_gamma`` every ``lr_step`` epochs).
        num_classes, sample_shape: taken from the datamodule when not given; stored with the
            checkpoint so that it loads on its own. The first layer normalises with the
            datamodule's ``normalization`` statistics.

    Raises:
        ValueError: for non-positive ``lr``, negative ``momentum`` or ``weight_decay``, or a
            non-positive ``lr_step`` / ``lr_gamma``.
    """

    def __init__(
        self,
        network: str | nn.Module = "lenet",
        augment: bool = True,
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        lr_step: int = 30,
        lr_gamma: float = 0.1,
        num_classes: int | None = None,
        sample_shape: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        check_float("lr", lr, 0.0, math.inf)
        check_float("lr_gamma", lr_gamma, 0.0, math.inf)
        for name, value in (("momentum", momentum), ("weight_decay", weight_decay)):
            if not (math.isfinite(value) and value >= 0):
                raise InvalidSetting(name, f"must be a non-negative number, got {value!r}")
        check_int("lr_step", lr_step, 1)
        self.save_hyperparameters()
        # a module given as an object is built into the classifier once the data is known; it is
        # held outside the module tree until then, and its hyperparameter is its class alone
        self._network_object: tuple[nn.Module, ...] = ()
        if isinstance(network, nn.Module):
            self._network_object = (network,)
            if isinstance(self.hparams.network, nn.Module):
                self.hparams.network = {"class_path": class_path_of(network)}
        self.classifier: nn.Module | None = None
        if num_classes is not None and sample_shape is not None:
            self._build(num_classes, tuple(sample_shape))

    def _build(
        self,
        num_classes: int,
        sample_shape: tuple[int, ...],
        normalization: tuple[Sequence[float], Sequence[float]] | None = None,
    ) -> None:
        """The classifier; its first layer normalises with the data's statistics (restored
        from the state dict when loading a checkpoint, so the shape's default serves there)."""
        mean, std = normalization if normalization is not None else (None, None)
        network = self._network_object[0] if self._network_object else self.hparams.network
        self.classifier = build_classifier(network, num_classes, sample_shape, mean=mean, std=std)
        self.hparams.num_classes = num_classes
        self.hparams.sample_shape = list(sample_shape)
        # what loggers receive (hparams_initial) is the model as built, not its null defaults
        self.save_hyperparameters(dict(self.hparams), logger=True)
        self.val_clean = MulticlassAccuracy(num_classes, average="micro")
        self.val_noisy = MulticlassAccuracy(num_classes, average="micro")

    def configure_model(self) -> None:
        """Build the classifier for the data unless it was given (or restored)."""
        if self.classifier is not None:
            return
        datamodule = self.trainer.datamodule
        self._build(
            datamodule.num_classes,
            tuple(datamodule.sample_shape),
            getattr(datamodule, "normalization", None),
        )

    def on_fit_start(self) -> None:
        """Record what the data decided (classes and their names, sample shape, the chosen
        ``m``) with the run."""
        derived = {
            "num_classes": self.hparams.num_classes,
            "sample_shape": self.hparams.sample_shape,
        }
        m = getattr(self.trainer.datamodule, "resolved_m", None)
        if m is not None:
            derived["m_resolved"] = m  # Eq. 1's m as chosen from the data
        names = getattr(self.trainer.datamodule, "class_names", None)
        if names is not None:
            derived["class_names"] = list(names)  # an image folder's class folders
        for logger in self.trainer.loggers:
            logger.log_hyperparams(derived)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x)

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        x, y, sigma = batch
        if self.hparams.augment:
            x = add_gaussian_noise(x, sigma)
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        if not self._all_finite(loss):
            raise self._diverged(f"the training loss is {loss.item()} (on at least one process)")
        accuracy = (logits.argmax(dim=1) == y).float().mean()
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/acc", accuracy, prog_bar=True)
        return loss

    def smoothed(
        self,
        datamodule: SmoothingDataModule,
        settings: CertificationSettings,
        radii: list[float] | None = None,
        constant: bool = False,
    ) -> Smooth | DualSmooth:
        """The smoothed classifier the certification callback certifies: this base classifier
        with the data's sigma(x) (``sigma_b`` with ``constant``)."""
        return datamodule.smooth(self.classifier, datamodule.num_classes, settings, radii, constant)

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        x, y, sigma = batch
        clean = self(x)
        noisy = self(add_gaussian_noise(x, sigma))
        self.val_clean(clean, y)
        self.val_noisy(noisy, y)
        self.log("val/loss", F.cross_entropy(noisy, y), sync_dist=True)
        self.log("val/acc_clean", self.val_clean, prog_bar=True)
        self.log("val/acc_noisy", self.val_noisy, prog_bar=True)

    def _all_finite(self, loss: torch.Tensor) -> bool:
        """Whether the loss is finite on every process: all decide together, since one
        raising alone would leave the others waiting (outside a trainer: this one's)."""
        finite = bool(torch.isfinite(loss))
        try:
            strategy = self.trainer.strategy
        except RuntimeError:  # not attached to a trainer
            return finite
        return bool(strategy.reduce_boolean_decision(finite, all=True))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Refuse to save weights that are NaN or infinite: no checkpoint of a diverged run
        is presented as usable."""
        broken = [name for name, p in self.named_parameters() if not torch.isfinite(p).all()]
        if broken:
            raise self._diverged(f"the weights ({broken[0]}, ...) are NaN or infinite")

    def _diverged(self, what: str) -> TrainingDiverged:
        epoch, step = self.trainer.current_epoch, self.trainer.global_step
        saved = (
            "no checkpoint was saved"
            if epoch == 0
            else f"checkpoints saved before epoch {epoch} predate it"
        )
        return TrainingDiverged(
            f"training diverged in epoch {epoch} (step {step}): {what}; the learning rate "
            f"({self.hparams.lr:g}) is likely too large for this model and data: lower "
            f"--model.lr (and check the inputs for NaN; under reduced precision, try 32); "
            f"{saved}"
        )

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Remember the optimiser settings the checkpoint was trained with (see
        :meth:`on_train_start`)."""
        self._trained_with = dict(checkpoint.get("hyper_parameters") or {})

    def on_train_start(self) -> None:
        """A resumed run applies the optimiser settings it was given where they differ from
        the checkpoint's (whose restored optimiser state would silently keep its own): the
        learning rate continues the step schedule from the resumed epoch."""
        before = getattr(self, "_trained_with", None)
        if before is None:
            return
        changed = [
            name
            for name in OPTIMISER_SETTINGS
            if name in before and before[name] != self.hparams[name]
        ]
        if not changed:
            return
        schedule = self.lr_schedulers()
        schedule.base_lrs = [self.hparams.lr for _ in schedule.base_lrs]
        schedule.step_size, schedule.gamma = self.hparams.lr_step, self.hparams.lr_gamma
        decay = self.hparams.lr_gamma ** (schedule.last_epoch // self.hparams.lr_step)
        for group in self.optimizers().optimizer.param_groups:
            group["lr"] = self.hparams.lr * decay
            group["momentum"] = self.hparams.momentum
            group["weight_decay"] = self.hparams.weight_decay
        log.warning(
            "resumed with %s (the checkpoint was trained with %s), from epoch %d on",
            ", ".join(f"{name} = {self.hparams[name]}" for name in changed),
            ", ".join(f"{name} = {before[name]}" for name in changed),
            self.current_epoch,
        )

    def configure_optimizers(self) -> dict:
        optimizer = torch.optim.SGD(
            self.parameters(),
            lr=self.hparams.lr,
            momentum=self.hparams.momentum,
            weight_decay=self.hparams.weight_decay,
        )
        schedule = torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=self.hparams.lr_step, gamma=self.hparams.lr_gamma
        )
        return {"optimizer": optimizer, "lr_scheduler": schedule}
