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

import logging
import os
import secrets
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import Logger, WandbLogger

from idrs_lightning import directory_lock
from idrs_lightning.reporting.wandb_logging import (
    finish_current_run,
    flat_config,
    training_logger,
)
from idrs_lightning.training.resume import (
    HistoryCSVLogger,
    check_checkpoint_file,
    check_resume,
    checkpoint_run_directory,
    given_model_settings,
    keep_config_history,
    setting_value,
)
from idrs_lightning.training.run_names import directory_name, run_label
from idrs_lightning.validation import InvalidSetting

log = logging.getLogger(__name__)

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
        path.mkdir(parents=True)
        _CREATED.append(path)
    except FileExistsError:
        if not resume:
            raise InvalidSetting(
                "run_name",
                f"{path} holds another run: choose another name, or resume it with "
                f"--ckpt_path {path / 'checkpoints' / 'last.ckpt'}",
            ) from None
    if launching_rank_zero():
        directory_lock.acquire(path)  # one writer: a second resume of this run is refused
    os.environ[RUN_DIR_VARIABLE] = str(path)
    return path


#: Environment variables of a process's rank under torchrun, SLURM and Lightning's launchers.
RANK_VARIABLES = ("RANK", "SLURM_PROCID", "NODE_RANK", "LOCAL_RANK")


def launching_rank_zero() -> bool:
    """Whether this process is the first of its distributed run (or the only one)."""
    return all(os.environ.get(name, "0") in ("", "0") for name in RANK_VARIABLES)


#: Run directories this process created in which no epoch has finished yet: the ones it
#: removes when it fails or is stopped.
_CREATED: list[Path] = []


def remove_unstarted_runs() -> None:
    """Remove the run directories this process created in which no epoch finished and no
    checkpoint was saved: a run that failed before training leaves nothing behind (no empty
    directory, no orphan W&B run) and its name free for the corrected command."""
    finish_current_run()  # first, or the run's exit hook writes into the folder
    while _CREATED:
        path = _CREATED.pop()
        if path.is_dir() and not any(path.rglob("*.ckpt")):
            shutil.rmtree(path)
            os.environ.pop(RUN_DIR_VARIABLE, None)
        directory_lock.release(path)  # after the removal: nobody locks a folder being removed


def default_loggers(
    run_dir: Path, project: str, name: str, completed: int | None = None
) -> list[Logger]:
    """W&B (offline without credentials or an answering server; job type ``train``; the run
    id kept in ``run_dir`` so that a resumed run continues it) and CSV loggers writing into
    ``run_dir`` (a resumed run's history kept up to its ``completed`` epoch)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    wandb_logger = training_logger(run_dir, project, name)
    csv_logger = HistoryCSVLogger(
        save_dir=str(run_dir), name="csv", version="", completed=completed
    )
    return [wandb_logger, csv_logger]


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


class RunGuard(Callback):
    """Marks the run as started once an epoch finishes (a failure then keeps its directory),
    ends Ctrl-C (Lightning stops gracefully) with one line saying how to resume, and releases
    the run directory's lock when training ends."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.last = run_dir / "checkpoints" / "last.ckpt"

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.run_dir in _CREATED:
            _CREATED.remove(self.run_dir)

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, error: BaseException
    ) -> None:
        if not isinstance(error, KeyboardInterrupt) or not trainer.is_global_zero:
            return
        if self.last.exists():
            log.warning(
                "interrupted in epoch %d; resume with python train.py fit --ckpt_path %s",
                trainer.current_epoch,
                self.last,
            )
        else:
            log.warning("interrupted before any checkpoint was saved: nothing to resume")

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.run_dir not in _CREATED:  # an unstarted run keeps it until it is removed
            directory_lock.release(self.run_dir)


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

    def _parse_ckpt_path(self) -> None:
        """Check a resume (``fit``: :func:`~idrs_lightning.training.resume.check_resume`) in
        place of Lightning's, which loads the checkpoint without naming a bad file and replaces the
        model options given on the command line by the checkpoint's, silently. ``validate``
        and ``test`` evaluate the checkpoint's model, as Lightning does, once the file is
        checked."""
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        self._completed = None
        if ckpt_path is None:
            return
        if subcommand == "fit":
            previous = checkpoint_run_directory(ckpt_path)
            if previous is not None and launching_rank_zero():
                # read the checkpoint only once no other process writes into its run
                directory_lock.acquire(previous)
            try:
                given = given_model_settings(getattr(self, "_arguments", []))
                self._completed = check_resume(ckpt_path, self.config[subcommand], given)
            except BaseException:
                if previous is not None:
                    directory_lock.release(previous)
                raise
            return
        check_checkpoint_file(ckpt_path)
        super()._parse_ckpt_path()

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--runs_dir", type=str, default="runs", help="parent of run dirs")
        parser.add_argument("--run_name", type=str | None, default=None, help="run dir name")
        parser.add_argument("--wandb_project", type=str, default="idrs-lightning")
        parser.add_argument(
            "--check_only",
            type=bool,
            default=False,
            help="check the command (options, model, data settings, trainer) and stop: no run "
            "directory, no training",
        )

    def _run_subcommand(self, subcommand: str) -> None:
        if not self.config[subcommand].get("check_only"):
            super()._run_subcommand(subcommand)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        config = self.config[self.subcommand] if self.subcommand else self.config
        if config.get("check_only"):  # the trainer's own checks, writing nothing
            return self._trainer(logger=False)
        ckpt_path = config.get("ckpt_path")
        completed = getattr(self, "_completed", None)
        label = run_label(getattr(self, "_arguments", []))
        previous = checkpoint_run_directory(ckpt_path)
        if previous is not None:  # continue that run
            run_dir = run_directory(str(previous.parent), previous.name, resume=True)
        else:  # a checkpoint from elsewhere starts a run of its own
            run_dir = run_directory(config.runs_dir, config.run_name, label=label)
        if previous is not None and directory_lock.holds(run_dir):
            keep_config_history(run_dir)
        trainer_config = self._get(self.config_init, "trainer", default={})
        if trainer_config.get("logger") in (None, True):
            name = config.run_name or label or run_dir.name
            kwargs["logger"] = default_loggers(run_dir, config.wandb_project, name, completed)
        if trainer_config.get("default_root_dir") is None:
            kwargs["default_root_dir"] = str(run_dir)
        callbacks = list(trainer_config.get("callbacks") or [])
        if not any(isinstance(callback, ModelCheckpoint) for callback in callbacks):
            validation = setting_value(config, "data", "val_fraction")
            callbacks += default_checkpoints(run_dir / "checkpoints", bool(validation))
        kwargs["callbacks"] = [*callbacks, RunGuard(run_dir)]
        return self._trainer(**kwargs)

    def _trainer(self, **kwargs: Any) -> Trainer:
        """Lightning's trainer; its refusal of a setting is one line naming the trainer."""
        try:
            return super().instantiate_trainer(**kwargs)
        except MisconfigurationException as error:
            raise ValueError(f"the trainer refuses its settings: {error}") from None
