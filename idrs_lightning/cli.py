"""The training command line: LightningCLI with a run directory and loggers per run.

Every run writes into its own directory ``<runs_dir>/<run_name>`` (default name: time, process
id and a random suffix), so parallel sweep runs never share a config file, log directory or
W&B run directory; processes of one distributed run share it through the ``IDRS_RUN_DIR``
environment variable. Unless the configuration names loggers, a run logs to Weights & Biases
(offline, in a directory that ``wandb sync`` uploads later, unless W&B credentials are
configured) and to CSV files, and keeps its last and best checkpoints in ``checkpoints/``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger

from ._validation import InvalidSetting
from .wandb_mode import wandb_offline

RUN_DIR_VARIABLE = "IDRS_RUN_DIR"


def run_directory(runs_dir: str, run_name: str | None, resume: bool = False) -> Path:
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
    name = run_name or f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{secrets.token_hex(3)}"
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


def default_loggers(run_dir: Path, project: str, name: str) -> list[Logger]:
    """W&B (offline without credentials) and CSV loggers writing into ``run_dir``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    return [
        WandbLogger(project=project, name=name, save_dir=str(run_dir), offline=wandb_offline()),
        CSVLogger(save_dir=str(run_dir), name="csv", version=""),
    ]


class TrainingCLI(LightningCLI):
    """LightningCLI with per-run directories, default loggers and checkpoints."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--runs_dir", type=str, default="runs", help="parent of run dirs")
        parser.add_argument("--run_name", type=str | None, default=None, help="run dir name")
        parser.add_argument("--wandb_project", type=str, default="idrs-lightning")

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        config = self.config[self.subcommand] if self.subcommand else self.config
        resume = config.get("ckpt_path") is not None
        run_dir = run_directory(config.runs_dir, config.run_name, resume)
        trainer_config = self._get(self.config_init, "trainer", default={})
        if trainer_config.get("logger") in (None, True):
            kwargs["logger"] = default_loggers(run_dir, config.wandb_project, run_dir.name)
        if trainer_config.get("default_root_dir") is None:
            kwargs["default_root_dir"] = str(run_dir)
        callbacks = list(trainer_config.get("callbacks") or [])
        if not any(isinstance(callback, ModelCheckpoint) for callback in callbacks):
            callbacks.append(
                ModelCheckpoint(
                    dirpath=run_dir / "checkpoints",
                    monitor="val/acc_noisy",
                    mode="max",
                    save_last=True,
                    filename="epoch{epoch}-acc{val/acc_noisy:.4f}",
                    auto_insert_metric_name=False,
                )
            )
        kwargs["callbacks"] = callbacks
        return super().instantiate_trainer(**kwargs)
