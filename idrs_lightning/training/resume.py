"""Resuming a training run (``train.py fit --ckpt_path``): it continues exactly what was trained.

* The run's own ``config.yaml`` is the resumed command's base configuration
  (:func:`with_run_config`), so ``--ckpt_path`` alone continues the run as it was configured;
  options given beside it override it.
* The checkpoint is read with ``weights_only`` and checked before any run directory is touched
  (:func:`check_resume`): a file that is no ``train.py`` checkpoint is named; a setting that
  decides what the model is or what it is trained on (:data:`FIXED_DATA`, :data:`FIXED_MODEL`)
  and differs from the checkpoint's is refused, naming the recorded value; the optimiser's
  settings (:data:`~idrs_lightning.training.module.OPTIMISER_SETTINGS`) that the command gives are
  applied from the resumed epoch on
  (:meth:`~idrs_lightning.training.module.BaseClassifierModule.on_train_start`), the others are the
  checkpoint's; a checkpoint of a run directory continues that run and is refused under
  another run name.
* The CSV history is kept (:class:`HistoryCSVLogger`): rows up to the checkpoint's step stay,
  later rows (of an epoch the interruption cut short, trained again) move to a copy.
"""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path
from typing import Any

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from idrs_lightning.reporting.wandb_logging import RUN_ID_FILE
from idrs_lightning.training.checkpoint_file import CheckpointFile, read_checkpoint
from idrs_lightning.training.config_files import config_arguments, load_yaml
from idrs_lightning.training.module import OPTIMISER_SETTINGS
from idrs_lightning.validation import InvalidSetting

#: DataModule settings that decide the training data and its noise: fixed for a run.
FIXED_DATA = (
    "dataset",
    "dataset_options",
    "sigma_b",
    "trr",
    "train_sigma_b",
    "k",
    "m",
    "sigma_min",
    "sigma_max",
    "m_sample_size",
    "batch_size",
    "val_fraction",
    "val_seed",
)
#: Model settings that decide what the network is and what it is trained for.
FIXED_MODEL = ("network", "augment")
#: What a checkpoint that does not record a setting was trained with.
UNRECORDED = {"val_fraction": 0.0}  # written before validation splits: the whole split


def checkpoint_run_directory(ckpt_path: str | None) -> Path | None:
    """The run directory a checkpoint was written in (``<run>/checkpoints/<file>``, holding the
    run's W&B id), or ``None`` for a checkpoint from elsewhere."""
    if not ckpt_path:
        return None
    run = Path(ckpt_path).resolve().parent.parent
    return run if (run / RUN_ID_FILE).exists() else None


def _ckpt_path(args: list[str]) -> str | None:
    for i, arg in enumerate(args):
        if arg.startswith("--ckpt_path="):
            return arg.split("=", 1)[1]
        if arg == "--ckpt_path" and i + 1 < len(args):
            return args[i + 1]
    return None


def with_run_config(args: list[str]) -> list[str]:
    """``fit`` arguments with the resumed run's ``config.yaml`` as their first ``--config``
    (nothing changes without ``--ckpt_path`` into a run directory holding one)."""
    run = checkpoint_run_directory(_ckpt_path(args))
    config = run / "config.yaml" if run is not None else None
    if not args or args[0] != "fit" or config is None or not config.is_file():
        return args
    return [args[0], "--config", str(config), *args[1:]]


def _plain(value: Any) -> Any:
    """Configuration values as plain data: namespaces as dicts, tuples as lists, a network
    spec as its class_path."""
    if hasattr(value, "as_dict"):
        value = value.as_dict()
    if isinstance(value, dict) and "class_path" in value:
        return value["class_path"]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _given(config: Any, group: str, name: str) -> tuple[bool, Any]:
    for key in (f"{group}.init_args.{name}", f"{group}.{name}"):
        try:
            return True, config[key]
        except (KeyError, TypeError):
            continue
    return False, None


def setting_value(config: Any, group: str, name: str) -> Any:
    """The value of ``group.name`` in a parsed configuration (``None`` where it is absent)."""
    return _given(config, group, name)[1]


def check_checkpoint_file(ckpt_path: str) -> CheckpointFile:
    """The ``train.py`` checkpoint at ``ckpt_path``, read with ``weights_only``.

    Raises:
        InvalidSetting: naming ``ckpt_path`` and the file, for anything else.
    """
    try:
        checkpoint = read_checkpoint(ckpt_path)
    except InvalidSetting as error:
        raise InvalidSetting("ckpt_path", error.problem) from None
    if checkpoint.format != "train.py":
        raise InvalidSetting(
            "ckpt_path",
            f"{ckpt_path} is a {checkpoint.format} checkpoint; train.py needs one it wrote "
            "(a foreign model is certified with certify.py)",
        )
    return checkpoint


def given_model_settings(args: list[str]) -> set[str]:
    """The model settings a command line gives itself: ``--model.<name>`` options and the
    model sections of its ``--config`` files, except a resumed run's own ``config.yaml``."""
    names = {
        arg.removeprefix("--model.").split("=", 1)[0] for arg in args if arg.startswith("--model.")
    }
    run = checkpoint_run_directory(_ckpt_path(args))
    own = (run / "config.yaml").resolve() if run is not None else None
    for file in config_arguments(args):
        if Path(file).resolve() == own or not Path(file).is_file():
            continue
        config = load_yaml(file)
        section = config.get("model") if isinstance(config, dict) else None
        if isinstance(section, dict):
            names |= set(section.get("init_args", section))
    return names


def check_resume(ckpt_path: str, config: Any, given: set[str] = frozenset()) -> int:
    """Check a resume before anything is written; return the checkpoint's global step.
    Optimiser settings the command does not give itself (``given``) are the checkpoint's.

    Raises:
        InvalidSetting: naming ``ckpt_path`` for a file that is no ``train.py`` checkpoint,
            ``run_name`` for a checkpoint of another run, or the first fixed setting that
            differs from the checkpoint's, with its recorded value.
    """
    state = check_checkpoint_file(ckpt_path).content
    previous = checkpoint_run_directory(ckpt_path)
    name = config.get("run_name")
    if previous is not None and name is not None and name != previous.name:
        raise InvalidSetting(
            "run_name",
            f"is {name!r}, but {ckpt_path} is a checkpoint of the run in {previous}: a resume "
            "continues its own run; leave out --run_name (or copy the checkpoint elsewhere to "
            "start a new run from it)",
        )
    recorded = (
        ("data", dict(state.get("datamodule_hyper_parameters") or {}), FIXED_DATA),
        ("model", dict(state.get("hyper_parameters") or {}), FIXED_MODEL),
    )
    for group, hparams, names in recorded:
        for setting in names:
            present, now = _given(config, group, setting)
            if not present or (setting not in hparams and setting not in UNRECORDED):
                continue
            then = hparams.get(setting, UNRECORDED.get(setting))
            if _plain(now) != _plain(then):
                raise InvalidSetting(
                    setting,
                    f"is {_plain(now)!r}, but {ckpt_path} was trained with {setting} = "
                    f"{_plain(then)!r}: a resume continues the run as it was trained; resume "
                    f"with --{group}.{setting}={_plain(then)}, or train a new run",
                )
    trained = dict(state.get("hyper_parameters") or {})
    for setting in OPTIMISER_SETTINGS:
        if setting not in given and setting in trained and _given(config, "model", setting)[0]:
            config[f"model.{setting}"] = trained[setting]
    step = state.get("global_step", 0)
    return int(step) if isinstance(step, int) else 0


def _next_free(run_dir: Path, stem: str, suffix: str) -> Path:
    number = 1
    while (run_dir / f"{stem}.{number}{suffix}").exists():
        number += 1
    return run_dir / f"{stem}.{number}{suffix}"


def keep_config_history(run_dir: Path) -> None:
    """Before a resume writes its ``config.yaml``, keep the previous one as
    ``config.<i>.yaml`` (``i`` = 1, 2, ... in order of the starts)."""
    current = run_dir / "config.yaml"
    if current.is_file():
        shutil.copy2(current, _next_free(run_dir, "config", ".yaml"))


class _HistoryWriter(ExperimentWriter):
    """Lightning's CSV writer deletes an existing ``metrics.csv``; this one keeps its rows
    logged before the checkpoint's global step ``completed`` (a step's rows carry the number of
    steps taken before it) and appends after them. Later rows (training the resume does again,
    or the epochs after an earlier checkpoint) leave ``metrics.csv`` and stay in
    ``metrics.<i>.csv``, a copy of the file as it was."""

    def __init__(self, log_dir: str, completed: int) -> None:
        self._completed = completed
        super().__init__(log_dir=log_dir)

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if not path.is_file():
            return
        with path.open(newline="") as file:
            reader = csv.DictReader(file)
            header = list(reader.fieldnames or [])
            rows = list(reader)
        kept = [row for row in rows if _step_of(row) < self._completed]
        self.metrics_keys = sorted(header)
        if len(kept) == len(rows):
            return
        shutil.copy2(path, _next_free(path.parent, "metrics", ".csv"))
        partial = path.with_name(f".{path.name}.partial")
        with partial.open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=header)
            writer.writeheader()
            writer.writerows(kept)
        os.replace(partial, path)


def _step_of(row: dict[str, str]) -> float:
    try:
        return float(row.get("step") or "-inf")
    except ValueError:
        return float("-inf")


class HistoryCSVLogger(CSVLogger):
    """Lightning's CSV logger, continuing the history of a resumed run (``completed``: its
    checkpoint's global step; ``None`` for a new run)."""

    def __init__(self, *args: Any, completed: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._completed = completed

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            if self._completed is None:
                self._experiment = ExperimentWriter(log_dir=self.log_dir)
            else:
                self._experiment = _HistoryWriter(self.log_dir, self._completed)
        return self._experiment
