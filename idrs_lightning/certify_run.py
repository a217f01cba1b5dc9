"""The certification job behind ``certify.py``: certify a checkpoint's test inputs, row by row.

Inputs are sharded explicitly across processes (``torchrun``: ``RANK``/``WORLD_SIZE``), each
shard appends its rows to its own file as they are produced, and rank 0 merges them and
reports (:mod:`idrs_lightning.report`). A restarted run continues after the last complete row
of each shard; noise is seeded per input, so rows do not depend on restarts, batch size or the
number of processes.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from .checkpoints import load_checkpoint
from .data.datamodule import SmoothingDataModule
from .evaluation import PRECISIONS, EvaluatedClassifier
from .metrics import certification_summary, default_radii
from .output_claim import claim_output
from .report import log_run_to_wandb, run_name, write_run_report
from .results import ResultsWriter, certificate_row, merge, read_results
from .settings import CertificationSettings
from .smoothing import Smooth
from .wandb_mode import wandb_offline

log = logging.getLogger(__name__)


@dataclass
class CertifyConfig:
    """What to certify and how (see ``certify.py --help``)."""

    checkpoint: str
    out: str
    settings: CertificationSettings = field(default_factory=CertificationSettings)
    indices: str = "subset"  # "subset", "all", or "start:stop[:step]"
    constant: bool = False
    radii: list[float] | None = None
    device: str = "auto"
    precision: str = "32"  # a key of evaluation.PRECISIONS
    channels_last: bool = False
    name: str = ""
    wandb_project: str = "idrs-lightning"
    data: dict[str, object] = field(default_factory=dict)

    def validate(self) -> None:
        """One clear error per bad value, before any expensive work."""
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"precision must be one of {sorted(PRECISIONS)}, got {self.precision!r}"
            )
        if not Path(self.checkpoint).is_file():
            raise FileNotFoundError(f"checkpoint {self.checkpoint} does not exist")

    def record(self) -> dict[str, object]:
        """Every setting that determines the rows (not where or how fast they are made)."""
        settings = asdict(self.settings)
        del settings["batch_size"]
        return {
            **settings,
            "checkpoint": self.checkpoint,
            "indices": self.indices,
            "constant": self.constant,
            "precision": self.precision,
            "channels_last": self.channels_last,
            "data": self.data,
        }


def _indices(spec: str, datamodule: SmoothingDataModule) -> list[int]:
    if spec == "subset":
        return datamodule.evaluation_subset().tolist()
    everything = list(range(datamodule.test_size))
    if spec == "all":
        return everything
    return everything[slice(*(int(p) if p else None for p in spec.split(":")))]


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def run_certification(config: CertifyConfig) -> dict | None:
    """Certify, write results, and (on rank 0) return the summary."""
    config.validate()
    rank = int(os.environ.get("RANK", 0))
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    module, trained_data = load_checkpoint(config.checkpoint)
    overrides = {k: v for k, v in config.data.items() if v is not None}
    datamodule = SmoothingDataModule(**(trained_data | overrides))
    datamodule.setup("test")
    expected = tuple(module.hparams.sample_shape)
    if datamodule.sample_shape != expected:
        raise ValueError(
            f"the data has sample shape {datamodule.sample_shape} but the checkpoint was "
            f"trained on {expected}"
        )
    device = _device(config.device)
    classifier = EvaluatedClassifier(
        module.classifier.to(device), config.precision, config.channels_last
    ).eval()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        claim_output(out, config.record())
    if world > 1:
        dist.barrier()  # no rank appends before rank 0 has checked the directory
    shard = _indices(config.indices, datamodule)[rank::world]
    part = out / ("results.tsv" if world == 1 else f"results.rank{rank}.tsv")
    with ResultsWriter(part) as writer:
        todo = [i for i in shard if i not in writer.done]
        inputs = datamodule.certification_inputs(todo, constant=config.constant)
        smooth = Smooth(classifier, module.hparams.num_classes, inputs.r, config.settings)
        groups = smooth.certify_groups(inputs.x.to(device), inputs.sigma.tolist(), todo)
        labels = inputs.y.tolist()
        with tqdm(total=len(todo), desc="certify", disable=rank != 0, unit="input") as progress:
            done, start = 0, time.perf_counter()
            for certificates in groups:
                now = time.perf_counter()
                seconds, start = (now - start) / len(certificates), now
                for cert in certificates:
                    writer.write(**certificate_row(todo[done], labels[done], cert, seconds))
                    done += 1
                progress.update(len(certificates))
    if world > 1:
        dist.barrier()
        if rank == 0:
            merge([out / f"results.rank{r}.tsv" for r in range(world)], out / "results.tsv")
        dist.barrier()
    if rank != 0:
        return None
    r = 0.0 if config.constant else datamodule.r
    return _report(config, datamodule, r, out)


def _report(config: CertifyConfig, datamodule: SmoothingDataModule, r: float, out: Path) -> dict:
    results = read_results(out / "results.tsv")
    radii = config.radii or default_radii(float(datamodule.hparams.sigma_b))
    summary = certification_summary(
        results["label"], results["predict"], results["radius"], radii, datamodule.num_classes
    )
    name = config.name or run_name(r, config.settings.separate_pb)
    summary["name"] = name
    summary["settings"] = {
        "r": r,
        **asdict(config.settings),
        **{k: v for k, v in asdict(config).items() if k not in ("settings", "data")},
        "data": {k: datamodule.hparams[k] for k in datamodule.hparams},
    }
    write_run_report(out, name, summary, results)
    log_run_to_wandb(out, name, summary, config.wandb_project, wandb_offline())
    return summary
