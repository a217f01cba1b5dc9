"""The router's training data: kept training inputs with their soft targets over the levels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from idrs_lightning.data.datamodule import SmoothingDataModule
from idrs_lightning.validation import InvalidSetting, check_int


class SoftTargetData(pl.LightningDataModule):
    """Batches ``(x, target, weight)``: inputs ``x`` in ``[0, 1]`` pixel space (noise is added
    by the module), soft targets ``[levels]`` that sum to 1 and each input's loss weight.

    Its hyperparameters are ``settings``, the :class:`~idrs_lightning.data.SmoothingDataModule`
    arguments of the data the inputs come from: a checkpoint records them as a ``train.py``
    checkpoint records its data (``datamodule_hyper_parameters``), so that the data can be
    rebuilt from the router's checkpoint.

    Args:
        settings: the data's DataModule arguments.
        x: the inputs ``[inputs x ...]``.
        targets: their soft targets ``[inputs x levels]``.
        weights: their loss weights ``[inputs]``
            (:func:`~idrs_lightning.dual.targets.level_weights`).
        normalization: the data's per-channel ``(mean, std)``, for the router's first layer.
        batch_size: inputs per training batch.
        evaluation: the data itself, whose validation split the certification callback
            certifies the dual model on (and the validation loop runs over, one batch: the
            router measures nothing per batch).
    """

    def __init__(
        self,
        settings: Mapping[str, Any],
        x: torch.Tensor,
        targets: torch.Tensor,
        weights: torch.Tensor,
        normalization: tuple[Sequence[float], Sequence[float]],
        batch_size: int = 256,
        evaluation: SmoothingDataModule | None = None,
    ) -> None:
        super().__init__()
        if len(x) == 0 or targets.ndim != 2 or len(targets) != len(x):
            raise InvalidSetting(
                "targets",
                f"must be one row per input ({len(x)} inputs, at least one), got shape "
                f"{tuple(targets.shape)}",
            )
        self.save_hyperparameters(
            dict(settings), ignore=["x", "targets", "normalization", "evaluation"]
        )
        self.evaluation = evaluation
        self.dataset = TensorDataset(x, targets, weights)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.num_classes = int(targets.shape[1])
        self.sample_shape = tuple(x.shape[1:])
        self.normalization = normalization

    def setup(self, stage: str | None = None) -> None:
        """The evaluation data's splits, for its validation batches and the callback."""
        if self.evaluation is not None:
            self.evaluation.setup("fit")

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        """The evaluation data's validation batches (none without it)."""
        return [] if self.evaluation is None else self.evaluation.val_dataloader()
