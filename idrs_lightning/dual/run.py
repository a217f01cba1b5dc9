"""One router training run: open and check the experts, compute the soft targets of training
inputs (the train part of the experts' data, never validation or test inputs), train the
router on the kept ones and write ``<out>/checkpoints/last.ckpt``.

Beside the checkpoint, ``<out>`` holds ``config.yaml`` (the settings, readable by
``--config``), ``targets.npz`` (``indices`` into the train part, the radii ``[inputs x
levels]``, the soft targets and the ``kept`` mask) and the CSV logs.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
import yaml
from lightning.pytorch.loggers import CSVLogger

from callbacks.certification import CertificationCallback
from idrs_lightning import directory_lock
from idrs_lightning.atomic_files import write_atomically, write_text
from idrs_lightning.data.datamodule import SmoothingDataModule
from idrs_lightning.data.subsets import stratified_subset
from idrs_lightning.dual.data import SoftTargetData
from idrs_lightning.dual.experts import Experts, open_experts
from idrs_lightning.dual.router import RouterModule
from idrs_lightning.dual.settings import RouterSettings
from idrs_lightning.dual.targets import level_radii, level_weights, soft_targets
from idrs_lightning.settings import CertificationSettings
from idrs_lightning.training.cli import default_checkpoints
from idrs_lightning.validation import InvalidSetting

log = logging.getLogger(__name__)

#: What a run writes into its directory, beside the checkpoints and logs.
CONFIG_FILE, TARGETS_FILE = "config.yaml", "targets.npz"


def last_checkpoint(out: str | Path) -> Path:
    """The router checkpoint a run in ``out`` writes."""
    return Path(out) / "checkpoints" / "last.ckpt"


def check_out(out: str | Path) -> None:
    """``out`` can take a new run: not a file, and holding no run's checkpoint.

    Raises:
        InvalidSetting: naming ``out``.
    """
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise InvalidSetting("out", f"{out} is a file, not a directory")
    held = sorted((folder / "checkpoints").glob("*.ckpt"))
    if held:
        raise InvalidSetting(
            "out", f"{out} holds another run's checkpoint ({held[0]}): choose another directory"
        )


def target_indices(labels: np.ndarray, wanted: int | None, seed: int) -> np.ndarray:
    """Indices into the train part of the inputs that get targets: all, or a seeded,
    class-stratified subset of ``wanted``.

    Raises:
        InvalidSetting: naming ``target_inputs``, for more than the train part holds.
    """
    if wanted is None:
        return np.arange(len(labels))
    if wanted > len(labels):
        raise InvalidSetting(
            "target_inputs", f"({wanted}) exceeds the training split ({len(labels)} inputs)"
        )
    return np.asarray(stratified_subset(labels, wanted, seed))


def train_router(settings: RouterSettings) -> Path:
    """Targets, then training (see the module); returns the router's checkpoint.

    Raises:
        InvalidSetting: for experts, data or an output directory that do not fit, before
            any sampling.
        ValueError: where no training input is certified at any level.
    """
    check_out(settings.out)
    experts = open_experts(settings.experts)
    experts.warn_of_levels(settings.sigmas)
    if settings.router_sigma < max(settings.sigmas):
        log.warning(
            "router sigma %g is below the largest level %g: the router's radius may cap the "
            "experts' (the paper takes it at least as large)",
            settings.router_sigma,
            max(settings.sigmas),
        )
    router = RouterModule(
        settings.experts,
        settings.sigmas,
        settings.router_sigma,
        network=settings.network,
        lr=settings.lr,
    )  # records the experts' digests now, before their targets
    data_settings = experts.router_data(settings.router_sigma, settings.batch_size)
    datamodule = SmoothingDataModule(**data_settings)
    train = datamodule.split_arrays("train")
    if tuple(train.x.shape[1:]) != experts.sample_shape:
        raise InvalidSetting(
            "experts",
            f"were trained on samples of shape {experts.sample_shape}, but the data "
            f"({datamodule.hparams.dataset}) has shape {tuple(train.x.shape[1:])}",
        )
    indices = target_indices(train.y, settings.target_inputs, settings.seed)
    out = Path(settings.out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    directory_lock.acquire(out)
    try:
        check_out(out)  # again, now that no other run can write here
        write_text(out / CONFIG_FILE, yaml.safe_dump(settings.to_config(), sort_keys=False))
        x = torch.from_numpy(train.x[indices])
        targets, kept = _targets(experts, settings, x, train.y[indices], indices, datamodule)
        keep = torch.from_numpy(kept)
        data = SoftTargetData(
            data_settings,
            x[keep],
            targets[keep],
            level_weights(targets[keep]),
            datamodule.normalization,
            settings.batch_size,
            evaluation=datamodule if settings.certify_every else None,
        )
        _fit(router, data, settings)
    except BaseException:
        if created and not any(out.rglob("*.ckpt")):
            shutil.rmtree(out, ignore_errors=True)  # a failed start leaves nothing behind
        raise
    finally:
        directory_lock.release(out)
    return last_checkpoint(out)


def _targets(
    experts: Experts,
    settings: RouterSettings,
    x: torch.Tensor,
    y: np.ndarray,
    indices: np.ndarray,
    datamodule: SmoothingDataModule,
) -> tuple[torch.Tensor, np.ndarray]:
    """The soft targets and the kept mask, saved with the radii in ``targets.npz``."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    classifiers = [c.to(device) for c in experts.classifiers]
    log.info(
        "targets: %d training inputs x %d levels x %d samples on %s",
        len(indices),
        len(settings.sigmas),
        settings.samples,
        device,
    )
    radii = level_radii(
        classifiers,
        settings.sigmas,
        x,
        y,
        indices.tolist(),
        settings.samples,
        settings.alpha,
        num_classes=experts.num_classes,
        seed=settings.seed,
        batch_size=settings.target_batch_size,
        input_range=datamodule.value_range,
    )
    for classifier in classifiers:
        classifier.cpu()
    targets, kept = soft_targets(radii)
    arrays = {"indices": indices, "radii": radii, "targets": targets.numpy(), "kept": kept}
    write_atomically(Path(settings.out) / TARGETS_FILE, lambda path: _save(path, arrays))
    best = np.bincount(radii[kept].argmax(axis=1), minlength=len(settings.sigmas))
    log.info(
        "kept %d of %d training inputs (a positive radius at some level); best level: %s",
        int(kept.sum()),
        len(kept),
        ", ".join(f"sigma {s:g}: {n}" for s, n in zip(settings.sigmas, best, strict=True)),
    )
    if not kept.any():
        raise ValueError(
            f"no training input of the {len(kept)} has a positive radius at any level "
            f"({settings.samples} samples, alpha {settings.alpha:g}): the experts are too weak"
        )
    return targets, kept


def _save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with path.open("wb") as file:  # a file object: np.savez adds no suffix
        np.savez(file, **arrays)


def _fit(router: RouterModule, data: SoftTargetData, settings: RouterSettings) -> None:
    out = Path(settings.out)
    pl.seed_everything(settings.seed, verbose=False)
    batches = -(-len(data.dataset) // settings.batch_size)
    callbacks = default_checkpoints(out / "checkpoints", validation=False)
    if settings.certify_every:
        certification = CertificationSettings(
            n0=settings.certify_n0, n=settings.certify_n, seed=settings.seed
        )
        callbacks.append(
            CertificationCallback(certification, settings.certify_every, settings.certify_examples)
        )
    trainer = pl.Trainer(
        max_epochs=settings.epochs,
        accelerator="auto",
        devices=1,
        default_root_dir=out,
        logger=CSVLogger(out, name="csv", version=""),
        callbacks=callbacks,
        enable_progress_bar=False,
        log_every_n_steps=min(50, batches),
        limit_val_batches=1 if settings.certify_every else 0,  # the callback runs at its end
    )
    trainer.fit(router, data)
