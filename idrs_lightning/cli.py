"""The training command line: LightningCLI with a run directory and loggers per run.

Every run writes into its own directory ``<runs_dir>/<run_name>``, so parallel sweep runs never
share a config file, log directory or W&B run directory; processes of one distributed run share
it through the ``IDRS_RUN_DIR`` environment variable. Without ``--run_name`` a run is named by
what differs, its dotted overrides (``sigma_b=0.25 trr=0.04``, :func:`.dashboard.run_label`;
its directory gets a random suffix), else by time, process id and a random suffix; resuming
with ``--ckpt_path`` from a run directory continues that run (directory and W&B run). Unless
the configuration names loggers, a run logs to Weights & Biases (job type ``train``, grouped
by ``WANDB_RUN_GROUP``; offline, in a directory that ``wandb sync`` uploads later, unless W&B
credentials are configured) with its whole configuration flat and its resolved ``config.yaml``
among the run's files, and to CSV files, and keeps in ``checkpoints/`` the state after its
latest epoch (``last.ckpt``) and the epoch best on the validation split
(:func:`default_checkpoints`).
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger

from ._validation import InvalidSetting
from .dashboard import RUN_ID_FILE, directory_name, flat_config, run_id, run_label
from .wandb_mode import wandb_offline

RUN_DIR_VARIABLE = "IDRS_RUN_DIR"


def run_directory(
    runs_dir: str, run_name: str | None, resume: bool = False, label: str | None = None
) -> Path:
    """This run's directory, created here and shared by all processes of a distributed run.

    An existing directory is another run's: it is refused unless the run resumes from a
    checkpoint (``--ckpt_path``). Creation is atomic, so of two runs started with one name,
    one gets the directory and the other the error.

    Raises:
        InvalidSetting: naming ``run_name``, for an existing directory without ``resume``.
    """
    inherited = os.environ.get(RUN_DIR_VARIABLE)
    if inherited:
        return Path(inherited)
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{secrets.token_hex(3)}"
    name = run_name or (directory_name(label) if label else stamp)
    path = Path(runs_dir) / name
    try:
        existed = path.exists()
        path.mkdir(parents=True, exist_ok=resume)
    except FileExistsError:
        raise InvalidSetting(
            "run_name",
            f"{path} holds another run: choose another name, or resume it with "
            f"--ckpt_path {path / 'checkpoints' / 'last.ckpt'}",
        ) from None
    os.environ[RUN_DIR_VARIABLE] = str(path)
    if not existed:
        _CREATED.append(path)
    return path


#: Run directories this process created (not inherited, not resumed): the ones it may remove.
_CREATED: list[Path] = []


def remove_unstarted_runs() -> None:
    """Remove the run directories this process created that hold no checkpoint: a run that
    failed before training leaves nothing behind (no empty directory, no orphan W&B run)."""
    import wandb

    if wandb.run is not None:  # close the run first, or its exit hook writes into the folder
        wandb.finish()
    while _CREATED:
        path = _CREATED.pop()
        if path.is_dir() and not any(path.glob("checkpoints/*.ckpt")):
            shutil.rmtree(path)


def checkpoint_run_directory(ckpt_path: str | None) -> Path | None:
    """The run directory a checkpoint was written in (``<run>/checkpoints/<file>``, holding the
    run's W&B id), or ``None`` for a checkpoint from elsewhere."""
    if not ckpt_path:
        return None
    run = Path(ckpt_path).resolve().parent.parent
    return run if (run / RUN_ID_FILE).exists() else None


def default_loggers(run_dir: Path, project: str, name: str) -> list[Logger]:
    """W&B (offline without credentials; job type ``train``; the run id kept in ``run_dir`` so
    that a resumed run continues it) and CSV loggers writing into ``run_dir``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    wandb_logger = WandbLogger(
        project=project,
        name=name,
        save_dir=str(run_dir),
        offline=wandb_offline(),
        id=run_id(run_dir),
        resume="allow",
        job_type="train",
    )
    return [wandb_logger, CSVLogger(save_dir=str(run_dir), name="csv", version="")]


#: What the best checkpoint is chosen by: noisy accuracy on the validation split.
SELECTION_METRIC = "val/acc_noisy"


def default_checkpoints(folder: Path, validation: bool) -> list[ModelCheckpoint]:
    """``last.ckpt``, the state after the latest epoch (overwritten every epoch: what a resume
    continues and what is certified unless told otherwise) and, with a validation split,
    ``best-epoch<e>-acc<a>.ckpt``, the epoch of highest ``val/acc_noisy`` so far.

    Lightning's ``save_last=True`` beside a monitor writes ``last.ckpt`` only in epochs where
    the monitored value improved, so "last" is a checkpoint of its own with no monitor.
    """
    last = ModelCheckpoint(
        dirpath=folder,
        filename="last",
        monitor=None,
        save_top_k=1,
        enable_version_counter=False,
        save_on_train_epoch_end=True,  # also in epochs without validation (after it, if any)
    )
    if not validation:
        return [last]
    best = ModelCheckpoint(
        dirpath=folder,
        monitor=SELECTION_METRIC,
        mode="max",
        save_top_k=1,
        filename="best-epoch{epoch}-acc{val/acc_noisy:.4f}",
        auto_insert_metric_name=False,
    )
    return [last, best]


def check_same_split(ckpt_path: str, config: Any) -> None:
    """A resumed run keeps its checkpoint's training/validation split: another would train the
    remaining epochs on other data, compute sigma(x) against another reference set and let a
    best checkpoint chosen under the old split (before validation splits existed: on the test
    split) carry over. A checkpoint that records no ``val_fraction`` has 0.

    Raises:
        InvalidSetting: naming ``data.val_fraction`` or ``data.val_seed``.
    """
    try:
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        recorded = dict(state.get("datamodule_hyper_parameters") or {})
    except Exception:  # not readable here: Lightning reports it when it loads the file
        return
    for name, default in (("val_fraction", 0.0), ("val_seed", 0)):
        then = recorded.get(name, default)
        now = _get_path(config, f"data.init_args.{name}", f"data.{name}")
        if now is not None and now != then:
            raise InvalidSetting(
                f"data.{name}",
                f"is {now}, but {ckpt_path} was trained with {name} = {then}: resume with "
                f"--data.{name}={then} (another split trains on other data and changes sigma(x))",
            )


def _get_path(config: Any, *keys: str) -> Any:
    """The first of the dotted ``keys`` present in a jsonargparse namespace (``None`` if none)."""
    for key in keys:
        try:
            value = config[key]
        except (KeyError, TypeError):
            continue
        if value is not None:
            return value
    return None


class RunConfig(SaveConfigCallback):
    """Writes the resolved ``config.yaml`` and gives it to W&B: as the run's file and, flat
    (``trainer.max_epochs``, ``trainer.precision``, ``trainer.devices``, ``model.lr``,
    ``data.sigma_b``, ``seed_everything``, the callbacks' ``init_args``...), as its config,
    beside the hyperparameters Lightning logs (``sigma_b``, ``lr``, ...)."""

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # trainer.log_dir broadcasts: ask on every rank here, not in the rank-zero save_config
        self._log_dir = Path(trainer.log_dir or trainer.default_root_dir)
        super().setup(trainer, pl_module, stage)

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        config_file = self._log_dir / self.config_filename
        values = flat_config(_as_dict(self))
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                experiment = logger.experiment
                experiment.config.update(values, allow_val_change=True)
                resolved = {  # what the trainer made of the configured values
                    "resolved.precision": str(trainer.precision),
                    "resolved.devices": trainer.num_devices,
                    "resolved.num_nodes": trainer.num_nodes,
                    "resolved.world_size": trainer.world_size,
                }
                experiment.config.update(resolved, allow_val_change=True)
                if config_file.exists():
                    experiment.save(str(config_file), base_path=str(config_file.parent))


def _as_dict(callback: SaveConfigCallback) -> dict[str, Any]:
    """The callback's parsed configuration as plain data (``jsonargparse`` namespaces)."""
    import yaml

    return yaml.safe_load(callback.parser.dump(callback.config, skip_none=False))


class TrainingCLI(LightningCLI):
    """LightningCLI with per-run directories, default loggers and checkpoints."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("save_config_callback", RunConfig)
        super().__init__(*args, **kwargs)

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse, remembering the raw arguments (their overrides name the run)."""
        self._arguments = [str(a) for a in (sys.argv[1:] if args is None else args)]
        super().parse_arguments(parser, args)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--runs_dir", type=str, default="runs", help="parent of run dirs")
        parser.add_argument("--run_name", type=str | None, default=None, help="run dir name")
        parser.add_argument("--wandb_project", type=str, default="idrs-lightning")

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        config = self.config[self.subcommand] if self.subcommand else self.config
        resume = config.get("ckpt_path") is not None
        if resume:
            check_same_split(config.get("ckpt_path"), config)
        label = run_label(getattr(self, "_arguments", []))
        previous = checkpoint_run_directory(config.get("ckpt_path"))
        if config.run_name is None and previous is not None:  # continue that run
            run_dir = run_directory(str(previous.parent), previous.name, resume=True)
        else:
            run_dir = run_directory(config.runs_dir, config.run_name, resume, label)
        trainer_config = self._get(self.config_init, "trainer", default={})
        if trainer_config.get("logger") in (None, True):
            name = config.run_name or label or run_dir.name
            kwargs["logger"] = default_loggers(run_dir, config.wandb_project, name)
        if trainer_config.get("default_root_dir") is None:
            kwargs["default_root_dir"] = str(run_dir)
        callbacks = list(trainer_config.get("callbacks") or [])
        if not any(isinstance(callback, ModelCheckpoint) for callback in callbacks):
            validation = _get_path(config, "data.init_args.val_fraction", "data.val_fraction")
            callbacks += default_checkpoints(run_dir / "checkpoints", bool(validation))
        kwargs["callbacks"] = callbacks
        return super().instantiate_trainer(**kwargs)
