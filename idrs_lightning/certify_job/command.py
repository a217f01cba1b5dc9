"""Certify a trained checkpoint with randomized smoothing (constant sigma or IDRS): the command
behind ``certify.py``, ``python -m idrs_lightning.certify_job`` and ``idrs-certify``.

    python certify.py runs/<run>/checkpoints/last.ckpt out/idrs --N 100000
    python certify.py runs/<run>/checkpoints/last.ckpt out/cohen --constant
    python certify.py runs/router/checkpoints/last.ckpt out/dual --method dual  # router + experts
    torchrun --nproc_per_node 2 certify.py CKPT out/idrs        # shards inputs across processes

Data and sigma(x) settings default to the training run's (stored in the checkpoint); the
options below override them. Writes ``results.tsv`` (one row per input, resumable),
``summary.json``, ``table.txt``, plots and an offline W&B run into the output directory, and
prints the certified-accuracy table. A bad option, file or value is one line ``error: ...``
and exit status 2, before any sampling (``IDRS_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import typing

import yaml

from idrs_lightning.certify_job.config import METHODS, CertifyConfig
from idrs_lightning.certify_job.evaluation import PRECISIONS
from idrs_lightning.certify_job.run import run_certification
from idrs_lightning.errors import OneLineParser, exit_on_user_error
from idrs_lightning.reporting.tables import format_table
from idrs_lightning.settings import CertificationSettings, InvalidSetting

DESCRIPTION = "Certify a trained checkpoint with randomized smoothing (constant sigma or IDRS)."
DATA_OPTIONS = (
    "dataset",
    "dataset_options",
    "sigma_b",
    "r",
    "k",
    "m",
    "sigma_min",
    "sigma_max",
    "root",
    "eval_subset_size",
)
#: Each :class:`CertificationSettings` field's option, as the settings name it.
SETTING_OPTIONS = {f.name: f.metadata["option"] for f in dataclasses.fields(CertificationSettings)}
#: Every setting's option, for error messages.
OPTIONS = {
    **SETTING_OPTIONS,
    **{name: "--" + name.replace("_", "-") for name in DATA_OPTIONS},
    **{
        name: f"--{name}"
        for name in ("indices", "device", "radii", "precision", "arch", "method", "experts")
    },
}


def _mapping(text: str) -> dict:
    """A YAML mapping given on the command line."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a mapping such as '{{crop: 224}}', got {text!r}")
    return value


def _add_settings(parser: argparse.ArgumentParser) -> None:
    """One option per :class:`CertificationSettings` field, with its default and help."""
    defaults, types = CertificationSettings(), typing.get_type_hints(CertificationSettings)
    for setting in dataclasses.fields(CertificationSettings):
        option, text = setting.metadata["option"], setting.metadata["help"]
        if types[setting.name] is bool:
            parser.add_argument(option, dest=setting.name, action="store_true", help=text)
        else:
            default = getattr(defaults, setting.name)
            kind = types[setting.name]
            parser.add_argument(option, dest=setting.name, type=kind, default=default, help=text)
    parser.add_argument("--n-max", dest="n", type=int, default=defaults.n, help="= --N")


def _add_job_options(parser: argparse.ArgumentParser) -> None:
    """The job's own options (:class:`CertifyConfig`), with its defaults."""
    job = {f.name: f.default for f in dataclasses.fields(CertifyConfig)}
    parser.add_argument(
        "checkpoint",
        help="a checkpoint written by train.py, Cohen et al.'s (arch, state_dict, epoch), a plain "
        "state_dict (with --arch) or a TorchScript file",
    )
    parser.add_argument("out", help="output directory (reused to resume)")
    parser.add_argument(
        "--skip-misclassified",
        action="store_true",
        help="evaluation shortcut: skip estimation where the selected class is not the label "
        "(certified accuracy is unchanged; those rows are not certificates)",
    )
    parser.add_argument(
        "--indices",
        default=job["indices"],
        help="'subset' (the fixed stratified evaluation subset), 'all', or start:stop[:step]",
    )
    parser.add_argument(
        "--arch",
        help="the model of a plain state_dict: cifar_resnet20, cifar_resnet110, resnet50 (Cohen "
        "et al.'s), resnet20, resnet110, lenet, a class_path, or '{class_path: ..., init_args: "
        "{...}}'",
    )
    parser.add_argument("--constant", action="store_true", help="constant sigma_b (Cohen et al.)")
    parser.add_argument(
        "--method",
        choices=METHODS,
        default=job["method"],
        help="smoothing: one noise level per input (sigma(x), or sigma_b with --constant); dual: "
        "dual randomized smoothing (Sun et al. 2026), CHECKPOINT being the router",
    )
    parser.add_argument(
        "--experts",
        nargs="+",
        help="--method dual: the experts' checkpoints, one per level (default: those the router "
        "was trained with)",
    )
    parser.add_argument("--radii", type=float, nargs="+", help="radii of the summary table")
    parser.add_argument("--device", default=job["device"], help="'auto', 'cpu', 'cuda:0', ...")
    parser.add_argument(
        "--precision",
        choices=tuple(PRECISIONS),
        default=job["precision"],
        help="autocast dtype of the base classifier (the certificate is for it as evaluated)",
    )
    parser.add_argument("--channels-last", action="store_true", help="channels-last batches")
    parser.add_argument("--name", default=job["name"], help="label in tables and plots")
    parser.add_argument("--wandb-project", default=job["wandb_project"])


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    """Overrides of the training run's data and sigma(x) settings."""
    data = parser.add_argument_group("data and sigma(x) overrides (default: the training run's)")
    data.add_argument("--dataset", help="data set (needed for foreign checkpoints)")
    data.add_argument(
        "--dataset-options", type=_mapping, help="options of the data set, e.g. '{crop: 224}'"
    )
    data.add_argument("--sigma-b", type=float)
    data.add_argument("--r", type=float, help="semi-elasticity of sigma(x) at test time")
    data.add_argument("--k", type=int)
    data.add_argument("--m", help="a number, 'min' or 'mean'")
    data.add_argument("--sigma-min", type=float)
    data.add_argument("--sigma-max", type=float)
    data.add_argument("--root", help="data directory")
    data.add_argument("--eval-subset-size", type=int)


def parse(argv: list[str] | None = None) -> CertifyConfig:
    """The job's configuration from the command line (``argv``; default ``sys.argv``)."""
    parser = OneLineParser(description=DESCRIPTION)
    _add_job_options(parser)
    _add_settings(parser)
    _add_data_options(parser)
    args = vars(parser.parse_args(argv))
    if args["m"] not in (None, "min", "mean"):
        try:
            args["m"] = float(args["m"])
        except ValueError:
            parser.error(f"--m must be a number, 'min' or 'mean', got {args['m']!r}")
    data = {key: args.pop(key) for key in DATA_OPTIONS}
    try:
        settings = CertificationSettings(**{key: args.pop(key) for key in SETTING_OPTIONS})
    except InvalidSetting as error:
        parser.error(error.for_option(OPTIONS[error.setting]))
    return CertifyConfig(
        **args, settings=settings, data={k: v for k, v in data.items() if v is not None}
    )


def main(argv: list[str] | None = None) -> None:
    """Certify as the command line says and print the certified-accuracy table."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = parse(argv)
    summary = exit_on_user_error(
        lambda: run_certification(config),
        OPTIONS,
        interrupted=f"interrupted; the rows certified so far, if any, are in {config.out}: run "
        "the same command again to resume",
    )
    if summary is not None:
        sys.stdout.write(format_table(summary.name, summary) + "\n")
