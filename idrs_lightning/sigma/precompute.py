"""Precompute the kNN distances behind sigma(x) (Eq. 1) once, sharded over processes.

    torchrun --nproc_per_node 8 -m idrs_lightning.sigma.precompute \
        --config configs/imagenet_resnet50.yaml
    python -m idrs_lightning.sigma.precompute --config configs/imagefolder.yaml \
        --data.root=/data/tree

Reads the ``data`` section of a ``train.py`` config (with ``--data.<name>=<value>`` overrides),
and computes what training and certification with it need: the training points' leave-one-out
distances (for ``trr > 0`` and for ``m`` = "min"/"mean") and the test points' (for ``r > 0``).
Each rank searches one shard of the training set (:mod:`~idrs_lightning.sigma.knn_streamed`); rank 0
writes the cache entry, keyed by the data's identity, which later runs read. A killed run,
started again, resumes after its last finished query chunk. A bad value is one line
``error: ...`` and exit status 2.
"""

from __future__ import annotations

import inspect
import logging
import os
from typing import Any

import torch
import torch.distributed as dist
import yaml

from idrs_lightning.data.datamodule import SmoothingDataModule
from idrs_lightning.errors import OneLineParser, exit_on_user_error
from idrs_lightning.training.config_files import load_yaml

log = logging.getLogger(__name__)


def _data_arguments(argv: list[str] | None) -> dict[str, Any]:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="a train.py config file (its data section is used)")
    known, rest = parser.parse_known_args(argv)
    data: dict[str, Any] = {}
    if known.config:
        config = load_yaml(known.config) or {}
        section = config.get("data") if isinstance(config, dict) else None
        if not isinstance(section, dict | None):
            raise ValueError(
                f"{known.config} is not a train.py config: its data section must be a mapping "
                f"of settings, got a {type(section).__name__}"
            )
        if not isinstance(config, dict):
            raise ValueError(f"{known.config} is not a train.py config: it holds no mapping")
        data = dict(section or {})
    for argument in rest:
        name, equals, value = argument.partition("=")
        if not name.startswith("--data.") or not equals:
            parser.error(f"unrecognised argument {argument!r}; use --data.<name>=<value>")
        try:
            data[name.removeprefix("--data.")] = yaml.safe_load(value)
        except yaml.YAMLError:
            parser.error(f"{name} needs a YAML value, got {value!r}")
    accepted = inspect.signature(SmoothingDataModule.__init__).parameters
    unknown = sorted(set(data) - set(accepted) - {"self"})
    if unknown:
        parser.error(f"--data.{unknown[0]} is not a data setting of train.py")
    return data


def precompute(data: dict[str, Any]) -> SmoothingDataModule:
    """Build the DataModule of ``data`` and compute (or read) every sigma(x) it needs."""
    datamodule = SmoothingDataModule(**data)
    datamodule.setup("fit")
    datamodule.prepare_sigma()
    log.info(
        "sigma(x) ready for %s (k=%d, m=%s) in %s",
        datamodule.hparams.dataset,
        datamodule.hparams.k,
        datamodule.resolved_m,
        datamodule.cache_dir,
    )
    return datamodule


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    data = exit_on_user_error(lambda: _data_arguments(argv))
    distributed = int(os.environ.get("WORLD_SIZE", 1)) > 1
    if distributed and torch.cuda.is_available():  # each process on its own GPU
        local = int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count()
        torch.cuda.set_device(local)
        dist.init_process_group("nccl", device_id=torch.device("cuda", local))
    elif distributed:
        dist.init_process_group("gloo")
    try:
        exit_on_user_error(lambda: precompute(data))
    finally:
        if distributed:
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
