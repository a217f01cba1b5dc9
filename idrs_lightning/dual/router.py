"""The router (the paper's variance estimator) of dual randomized smoothing, trained on soft
targets under Gaussian noise at its own level (Sun, Mao, Vechev, ICLR 2026, Section 5.2).

The router ``h`` maps an input to logits over the noise levels ``sigma_1 < ... < sigma_K``;
its smoothed version ``g_v(x) = argmax_k P(h(x + sigma_v eps) = k)`` picks the level at ``x``
(:mod:`idrs_lightning.smoothing.dual`). It is trained, like a base classifier for smoothing,
on noisy copies ``x + sigma_v eps``, with the soft-label cross-entropy

    L(x) = - w(x) sum_k t_k(x) log softmax_k(h(x + sigma_v eps))

against the targets ``t(x) = softmax_k(R_k(x))`` of :mod:`idrs_lightning.dual.targets`.

Open choices (the paper's full loss is not implemented):

- no consistency term: the paper adds ``lambda E_delta KL(f_hat(x) || f(x + delta)) + eta
  H(f_hat(x))`` (Jeong & Shin 2020 style; ``lambda = 40``, ``eta = 0.5``, 2 noisy copies on
  CIFAR-10), which raises the router's own radius ``R_v`` at some cost in picking the best
  level;
- the paper's class rebalancing ``1 / q_k`` (``q_k`` the share of inputs whose best level is
  ``k``, :func:`~idrs_lightning.dual.targets.level_weights`) weighs each input's loss, but not
  its per-input weight ``w_r``;
- the optimiser is the library's (SGD with momentum and a step schedule), where the paper uses
  AdamW (lr 0.01, weight decay 0.01, halved every 30 epochs);
- no validation and no model selection: the router is the last epoch's.

A router checkpoint is a ``train.py`` checkpoint whose classes are the levels, plus
``DUAL_RECORD``: its experts' paths and SHA-256 digests (taken when the module is built, before
their targets are computed), the levels and ``sigma_v``
(:class:`~idrs_lightning.certify_job.dual_model.DualRecord`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from idrs_lightning.certification.dual import check_levels
from idrs_lightning.certify_job.checkpoints import open_checkpoint
from idrs_lightning.certify_job.dual_model import DUAL_RECORD, DualRecord
from idrs_lightning.data.datamodule import SmoothingDataModule
from idrs_lightning.settings import CertificationSettings
from idrs_lightning.smoothing.dual import DualSmooth
from idrs_lightning.training.module import BaseClassifierModule, add_gaussian_noise
from idrs_lightning.validation import InvalidSetting, check_positive


class RouterModule(BaseClassifierModule):
    """A router over ``len(sigmas)`` noise levels, trained at constant noise ``router_sigma``.

    Args:
        experts: the experts' checkpoint files, one per level (recorded with their digests).
        sigmas: the experts' noise levels, increasing.
        router_sigma: the router's noise level sigma_v (the paper: at least ``max(sigmas)``).
        network, lr, momentum, weight_decay, lr_step, lr_gamma, sample_shape: as for
            :class:`~idrs_lightning.training.module.BaseClassifierModule`.
        num_classes: the number of levels (taken from ``sigmas`` when not given).

    Raises:
        InvalidSetting: for levels that do not fit the experts, a non-positive
            ``router_sigma`` or ``num_classes`` other than the number of levels.
    """

    def __init__(
        self,
        experts: Sequence[str],
        sigmas: Sequence[float],
        router_sigma: float,
        network: str | nn.Module = "lenet",
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        lr_step: int = 30,
        lr_gamma: float = 0.1,
        num_classes: int | None = None,
        sample_shape: tuple[int, ...] | None = None,
    ) -> None:
        levels = check_levels(sigmas, len(experts))
        level_v = float(check_positive("router_sigma", router_sigma))
        if num_classes is not None and num_classes != len(levels):
            raise InvalidSetting(
                "num_classes", f"must be the number of levels ({len(levels)}), got {num_classes}"
            )
        super().__init__(
            network, True, lr, momentum, weight_decay, lr_step, lr_gamma, num_classes, sample_shape
        )
        self.record = DualRecord.for_experts([str(e) for e in experts], levels, level_v)
        # plain data in the checkpoint's hyperparameters (read with weights_only)
        self.hparams.experts = list(self.record.experts)
        self.hparams.sigmas = levels
        self.hparams.router_sigma = level_v
        self._experts: list[nn.Module] | None = None

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        x, target, weight = batch
        sigma = torch.full((len(x),), self.hparams.router_sigma, device=x.device)
        logits = self(add_gaussian_noise(x, sigma))
        # probabilities as targets: soft-label cross-entropy, each input at its weight
        loss = (F.cross_entropy(logits, target, reduction="none") * weight).mean()
        if not self._all_finite(loss):
            raise self._diverged(f"the training loss is {loss.item()} (on at least one process)")
        agreement = (logits.argmax(dim=1) == target.argmax(dim=1)).float().mean()
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/agreement", agreement, prog_bar=True)  # argmax of h vs the target's
        return loss

    def smoothed(
        self,
        datamodule: SmoothingDataModule,
        settings: CertificationSettings,
        radii: list[float] | None = None,
        constant: bool = False,
    ) -> DualSmooth:
        """The dual model the certification callback certifies: this router (at
        ``router_sigma``) with its experts (each at its level), on ``datamodule``'s data.

        Raises:
            InvalidSetting: naming ``compare_constant``, which a dual model has no use for.
        """
        if constant:
            raise InvalidSetting(
                "compare_constant", "does not apply to a dual model (its experts fix the levels)"
            )
        if self._experts is None:  # opened once, on the first certified epoch
            self._experts = [
                open_checkpoint(path).classifier(None, datamodule)[0].eval()
                for path in self.record.experts
            ]
        for expert in self._experts:
            expert.to(self.device)
        return DualSmooth(
            self.classifier,
            self._experts,
            self.record.sigmas,
            self.record.router_sigma,
            datamodule.num_classes,
            settings,
            input_range=datamodule.value_range,
        )

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        """Nothing to measure batch by batch: the levels are no classes of the data. The
        certification callback certifies the dual model on the validation split instead."""

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Refuse non-finite weights, then record the dual model's experts and levels."""
        super().on_save_checkpoint(checkpoint)
        checkpoint[DUAL_RECORD] = self.record.to_checkpoint()
