"""Train a base classifier for (input-dependent) randomized smoothing.

    python train.py fit                                   # small Fashion-MNIST default
    python train.py fit --config configs/cifar10_resnet110.yaml --data.sigma_b=0.25
    python train.py fit --data.trr=0.04 --model.lr=0.05 --trainer.max_epochs=3

Every hyperparameter is a LightningCLI option (``python train.py fit --help``); each run
writes its config, CSV logs, an offline W&B run and checkpoints to its own ``runs/<name>``.
A bad value is one line ``error: ...`` naming its option, exit status 2 (``IDRS_DEBUG=1``
shows the traceback).
"""

import inspect
import sys
import warnings
from pathlib import Path

from lightning.fabric.utilities.exceptions import MisconfigurationException

from idrs_lightning.cli import TrainingCLI, remove_unstarted_runs
from idrs_lightning.config_files import config_arguments, load_yaml
from idrs_lightning.data.datamodule import SmoothingDataModule
from idrs_lightning.errors import exit_on_user_error
from idrs_lightning.resume import with_run_config
from idrs_lightning.training import BaseClassifierModule

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "fashion_mnist.yaml"


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


if __name__ == "__main__":
    exit_on_user_error(_main_or_clean_up, _options(), (MisconfigurationException, ImportError))
