"""Train dual randomized smoothing's router on its experts' radii: the command behind
``python -m idrs_lightning.dual`` and ``idrs-train-router``.

    python -m idrs_lightning.dual --experts E1 E2 E3 --sigmas 0.25 0.5 1.0 \\
        --router-sigma 1.0 --out runs/router
    python -m idrs_lightning.dual --config configs/dual_fashion_mnist.yaml --epochs 3

The experts are ``train.py`` checkpoints of one data set, one per noise level. Settings come
from the defaults, then ``--config FILE``, then the command line. Writes
``<out>/checkpoints/last.ckpt`` (a ``train.py`` checkpoint whose classes are the levels, which
records its experts), ``config.yaml`` and ``targets.npz``. A bad option, file or value is one
line ``error: ...`` and exit status 2, before any sampling (``IDRS_DEBUG=1`` shows the
traceback).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging

from lightning.fabric.utilities.exceptions import MisconfigurationException

from idrs_lightning.dual.run import train_router
from idrs_lightning.dual.settings import SETTINGS, RouterSettings
from idrs_lightning.errors import OneLineParser, exit_on_user_error
from idrs_lightning.models.registry import MODEL_NAMES

log = logging.getLogger(__name__)

DESCRIPTION = "Train dual randomized smoothing's router on its experts' radii."
#: Each setting's command-line option, for error messages.
OPTIONS = {name: "--" + name.replace("_", "-") for name in (*SETTINGS, "config")}
HELP = {
    "experts": "train.py checkpoints, one per noise level, in the order of --sigmas",
    "sigmas": "the experts' noise levels, increasing",
    "router_sigma": "the router's noise level (the paper: at least the largest level)",
    "out": "the run's directory (must not hold another run's checkpoint)",
    "network": f"the router's architecture: {', '.join(MODEL_NAMES)}",
    "epochs": "training epochs",
    "lr": "learning rate (SGD, momentum 0.9)",
    "batch_size": "inputs per training batch",
    "target_inputs": "training inputs that get targets (a stratified subset; default all)",
    "samples": "noise samples per input and level for the targets' radii",
    "alpha": "Clopper-Pearson level of the targets' radii (labels, not certificates)",
    "target_batch_size": "noisy samples per forward pass when computing the targets",
    "seed": "seed of the training, the targets' noise and the subset",
    "certify_every": "certify the dual model on the validation split every N epochs (0: never)",
    "certify_examples": "validation inputs certified",
    "certify_n0": "selection samples per stage when certifying during training",
    "certify_n": "estimation samples per stage when certifying during training",
}


def _parser() -> OneLineParser:
    parser = OneLineParser(description=DESCRIPTION)
    parser.add_argument("--config", help="a YAML file of settings (the options' names)")
    defaults = {f.name: f.default for f in dataclasses.fields(RouterSettings)}
    kinds = {"sigmas": float, "router_sigma": float, "lr": float, "alpha": float}
    kinds |= {"network": str, "out": str, "experts": str}
    for name in SETTINGS:
        default = defaults[name]
        shown = "" if default in (dataclasses.MISSING, None) else f" (default {default})"
        parser.add_argument(
            OPTIONS[name],
            dest=name,
            type=kinds.get(name, int),
            nargs="+" if name in ("experts", "sigmas") else None,
            default=argparse.SUPPRESS,
            help=HELP[name] + shown,
        )
    return parser


def parse(argv: list[str] | None = None) -> RouterSettings:
    """The settings from the command line (``argv``; default ``sys.argv``) and its config."""
    given = vars(_parser().parse_args(argv))
    config = given.pop("config", None)
    return exit_on_user_error(lambda: RouterSettings.from_sources(config, given), OPTIONS)


def main(argv: list[str] | None = None) -> None:
    """Train the router as the command line says."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = parse(argv)
    path = exit_on_user_error(
        lambda: train_router(settings),
        OPTIONS,
        (MisconfigurationException,),
        interrupted=f"interrupted; what was written so far is in {settings.out}",
    )
    log.info("router checkpoint: %s", path)
