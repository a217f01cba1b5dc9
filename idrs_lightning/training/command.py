"""The training command (``train.py``, ``python -m idrs_lightning.training``, ``idrs-train``).

    python -m idrs_lightning.training fit                   # small Fashion-MNIST default
    python -m idrs_lightning.training fit --config configs/cifar10_resnet110.yaml

Every hyperparameter is a LightningCLI option (``fit --help``); each run writes its config, CSV
logs, a W&B run and checkpoints to its own ``runs/<name>``. A bad value is one line
``error: ...`` naming its option, exit status 2 (``IDRS_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

import inspect
import sys
import warnings
from pathlib import Path

from lightning.fabric.utilities.exceptions import MisconfigurationException

from idrs_lightning.data.datamodule import SmoothingDataModule
from idrs_lightning.errors import exit_on_user_error
from idrs_lightning.training.cli import TrainingCLI, remove_unstarted_runs
from idrs_lightning.training.config_files import config_arguments, load_yaml
from idrs_lightning.training.module import BaseClassifierModule
from idrs_lightning.training.resume import with_run_config

#: The embedded default: the repository's Fashion-MNIST config.
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "fashion_mnist.yaml"


def main(args: list[str] | None = None, run: bool = True) -> TrainingCLI:
    """Parse ``args`` (default: the command line) and, with ``run``, execute the subcommand.
    A resume (``fit --ckpt_path``) starts from its run's own ``config.yaml``."""
    args = with_run_config(list(sys.argv[1:] if args is None else args))
    for config in config_arguments(args):
        if Path(config).is_file():
            load_yaml(config)  # a syntax error names its file, not only its line
    defaults = {"default_config_files": [str(DEFAULT_CONFIG)]}
    # the arguments differ from sys.argv by the run's config only; LightningCLI warns of both
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    return TrainingCLI(
        BaseClassifierModule,
        SmoothingDataModule,
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"fit": defaults} if run else defaults,
        args=args,
        run=run,
    )


def _options() -> dict[str, str]:
    """Each data and model argument's command-line option, for error messages."""
    options = {"run_name": "--run_name", "ckpt_path": "--ckpt_path"}
    for group, cls in (("model", BaseClassifierModule), ("data", SmoothingDataModule)):
        for name in inspect.signature(cls.__init__).parameters:
            options.setdefault(name, f"--{group}.{name}")
    return options


def _main_or_clean_up() -> None:
    """:func:`main`; a run that fails or is interrupted before its first checkpoint leaves no
    run directory behind."""
    try:
        main()
    except BaseException:
        remove_unstarted_runs()
        raise


def run_from_command_line() -> None:
    """The command's entry point: a user's mistake is one line and exit status 2."""
    exit_on_user_error(_main_or_clean_up, _options(), (MisconfigurationException, ImportError))
