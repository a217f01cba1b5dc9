"""The certification job behind ``certify.py``: certify a checkpoint's test inputs, row by row.

Inputs are sharded explicitly across processes (``torchrun``: ``RANK``/``WORLD_SIZE``), each
shard appends its rows to its own file as they are produced, and rank 0 merges them and
reports (:mod:`idrs_lightning.reporting.report`). A restarted run continues after the last
complete row of each shard; noise is seeded per input, so rows do not depend on restarts,
batch size or the number of processes.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from idrs_lightning.certify_job.checkpoints import (
    classifier_module,
    file_digest,
    foreign_classifier,
    training_data,
)
from idrs_lightning.certify_job.evaluation import EvaluatedClassifier, check_precision
from idrs_lightning.certify_job.foreign import parse_arch
from idrs_lightning.certify_job.output_claim import check_claim, claim_output
from idrs_lightning.certify_job.results import (
    ResultsWriter,
    RowRules,
    certificate_row,
    check_results_file,
    check_rows,
    completed_indices,
    merge,
    read_results,
    read_rows,
)
from idrs_lightning.data.datamodule import SmoothingDataModule
from idrs_lightning.models.class_path import check_logits
from idrs_lightning.reporting.metrics import certification_summary, default_radii
from idrs_lightning.reporting.report import log_run_to_wandb, run_name, write_run_report
from idrs_lightning.reporting.wandb_logging import discard_run, wandb_offline
from idrs_lightning.settings import CertificationSettings
from idrs_lightning.smoothing import Smooth, certify_groups
from idrs_lightning.training.checkpoint_file import CheckpointFile, read_checkpoint
from idrs_lightning.validation import InvalidSetting

log = logging.getLogger(__name__)


@dataclass
class CertifyConfig:
    """What to certify and how (see ``certify.py --help``)."""

    checkpoint: str
    out: str
    settings: CertificationSettings = field(default_factory=CertificationSettings)
    indices: str = "subset"  # "subset", "all", or "start:stop[:step]"
    constant: bool = False
    # the evaluation shortcut (smoothing.certify_groups): skip estimation where the selected
    # class is not the label; sound for certified accuracy, those rows are not certificates
    skip_misclassified: bool = False
    radii: list[float] | None = None
    device: str = "auto"
    precision: str = "32"  # a key of evaluation.PRECISIONS
    channels_last: bool = False
    name: str = ""
    wandb_project: str = "idrs-lightning"
    data: dict[str, object] = field(default_factory=dict)
    # the architecture of a plain state_dict (a name or a class_path spec, foreign.parse_arch)
    arch: str | None = None

    def validate(self) -> None:
        """One clear error per bad value, before anything is loaded."""
        check_precision(self.precision)
        if self.radii is not None and not all(math.isfinite(r) and r >= 0 for r in self.radii):
            raise InvalidSetting("radii", f"must be finite and >= 0, got {self.radii}")
        parse_indices(self.indices)
        if self.arch is not None:
            parse_arch(self.arch)
        _device(self.device)
        if Path(self.out).exists() and not Path(self.out).is_dir():
            raise InvalidSetting("out", f"{self.out} is a file; give a directory")

    def record(
        self, test_data: str, sigma_reference: str | None, stopping_radii: list[float] | None
    ) -> dict[str, object]:
        """Every setting that determines the rows (not where or how fast they are made), the
        checkpoint's content digest, the test data's identity, that of the training points
        sigma(x) is computed against (``None`` for a constant sigma) and, in sequential mode,
        the radius grid where each input stops."""
        settings = asdict(self.settings)
        del settings["batch_size"]
        return {
            **settings,
            "checkpoint": self.checkpoint,
            "checkpoint_sha256": file_digest(self.checkpoint),
            "arch": self.arch,
            "test_data": test_data,
            "sigma_reference": sigma_reference,
            "stopping_radii": stopping_radii,
            "indices": self.indices,
            "constant": self.constant,
            "skip_misclassified": self.skip_misclassified,
            "precision": self.precision,
            "channels_last": self.channels_last,
            # where the data lies is no setting: its identity is test_data and sigma_reference
            "data": {k: v for k, v in self.data.items() if k != "root"},
        }


def parse_indices(spec: str) -> slice | None:
    """``None`` for "subset" or "all", else the slice of ``start:stop[:step]``.

    Raises:
        InvalidSetting: for anything else, or ``start >= stop``, or ``step < 1``.
    """
    if spec in ("subset", "all"):
        return None
    parts = spec.split(":")
    if not (2 <= len(parts) <= 3 and all(part.isdigit() for part in parts)):
        raise InvalidSetting(
            "indices",
            f"must be 'subset', 'all' or start:stop[:step] with whole numbers, got {spec!r}",
        )
    start, stop, step = (int(part) for part in (*parts, "1")[:3])
    if start >= stop or step < 1:
        raise InvalidSetting(
            "indices", f"needs start < stop and step >= 1 in start:stop[:step], got {spec!r}"
        )
    return slice(start, stop, step)


def _indices(spec: str, datamodule: SmoothingDataModule) -> list[int]:
    chosen = parse_indices(spec)
    size = datamodule.test_size
    if chosen is None:
        return datamodule.evaluation_subset().tolist() if spec == "subset" else list(range(size))
    if chosen.stop > size:
        raise InvalidSetting(
            "indices",
            f"{spec!r} reaches past the test split of {size} inputs: stop must be at most {size}",
        )
    return list(range(chosen.start, chosen.stop, chosen.step))


def _device(name: str) -> torch.device:
    """The torch device of ``--device``, checked to exist; "auto": this process's GPU where
    CUDA is present (``LOCAL_RANK`` under torchrun, so each process of a node takes its own)."""
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device(
            "cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count()
        )
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise InvalidSetting("device", f"must be 'auto', 'cpu', 'cuda' or 'cuda:<i>', got {name!r}")
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device.type == "cuda" and (device.index or 0) >= available:
        raise InvalidSetting(
            "device", f"{name!r} is not available here ({available} CUDA devices); use cpu or auto"
        )
    return device


def run_certification(config: CertifyConfig) -> dict | None:
    """Certify, write results, and (on rank 0) return the summary."""
    config.validate()
    rank = int(os.environ.get("RANK", 0))
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    checkpoint = read_checkpoint(config.checkpoint)
    datamodule = _datamodule(config, checkpoint)
    classifier_body, num_classes = _classifier(config, checkpoint, datamodule)
    indices = _indices(config.indices, datamodule)
    device = _device(config.device)
    classifier = EvaluatedClassifier(
        classifier_body.to(device), config.precision, config.channels_last
    ).eval()
    out = Path(config.out)
    constant = config.constant or datamodule.r == 0
    reference = None if constant else datamodule.reference_identity
    record = config.record(datamodule.test_identity, reference, _stopping_radii(config, datamodule))
    rules = RowRules(
        labels=dict(zip(indices, datamodule.labels()[indices].tolist(), strict=True)),
        num_classes=num_classes,
        n=config.settings.n,
        sequential=config.settings.sequential,
        shortcut=config.skip_misclassified,
    )
    if rank == 0:
        check_claim(out, record)  # read only: a refused run changes nothing
        for path in sorted(out.glob("results*.tsv")):
            if check_results_file(path):
                check_rows(path, read_rows(path), rules)
    claim = claim_output(out, record) if rank == 0 else None
    try:
        if world > 1:
            dist.barrier()  # no rank appends before rank 0 has checked the directory
        smooth = Smooth(
            classifier,
            num_classes,
            0.0 if config.constant else datamodule.r,
            config.settings,
            datamodule.value_range,
            _radii(config, datamodule),
        )
        _certify_shard(config, datamodule, smooth, indices[rank::world], rules, device)
        if world > 1:
            _merge_shards(out, rank, world)
        summary = None if rank else _report(config, datamodule, smooth.r, out, rules)
    except BaseException:
        if claim is not None:
            claim.release()
        raise
    if claim is not None:
        claim.finish()
    return summary


def _datamodule(config: CertifyConfig, checkpoint: CheckpointFile) -> SmoothingDataModule:
    """The test data and sigma(x): the training run's settings with the command's overrides.

    Raises:
        InvalidSetting: naming the option the user gave, or the checkpoint where a value it
            recorded is invalid (an edited file).
    """
    overrides = {k: v for k, v in config.data.items() if v is not None}
    recorded = training_data(checkpoint)
    data = recorded | overrides
    if checkpoint.format != "train.py" and "dataset" not in data:
        raise InvalidSetting(
            "dataset",
            f"is needed: {config.checkpoint} is a {checkpoint.format} checkpoint, which holds "
            "no data settings"
            + (
                " (nor its model: give --arch)"
                if checkpoint.arch is None and checkpoint.format == "state_dict"
                else ""
            ),
        )
    try:
        datamodule = SmoothingDataModule(**data)
    except InvalidSetting as error:
        if error.setting in overrides or error.setting not in recorded:
            raise
        raise InvalidSetting(
            "checkpoint",
            f"{config.checkpoint} records an invalid data setting: {error.setting} {error.problem}"
            " (the file was edited or damaged)",
        ) from None
    except (TypeError, ValueError) as error:
        raise InvalidSetting(
            "checkpoint",
            f"{config.checkpoint} records data settings that cannot be used ({error})",
        ) from None
    datamodule.setup("test")
    return datamodule


def _certify_shard(
    config: CertifyConfig,
    datamodule: SmoothingDataModule,
    smooth: Smooth,
    shard: list[int],
    rules: RowRules,
    device: torch.device,
) -> None:
    """Certify this process's inputs not yet in its results file, appending row by row."""
    rank = int(os.environ.get("RANK", 0))
    out = Path(config.out)
    merged = out / "results.tsv"
    distributed = int(os.environ.get("WORLD_SIZE", 1)) > 1
    part = out / f"results.rank{rank}.tsv" if distributed else merged
    # rows merged by an earlier distributed run are done too (its shard files are gone)
    finished = completed_indices(merged, rules) if distributed else set()
    with ResultsWriter(part, rules) as writer:
        todo = [i for i in shard if i not in writer.done and i not in finished]
        inputs = datamodule.certification_inputs(todo, constant=config.constant)
        groups = certify_groups(
            smooth,
            inputs.x.to(device),
            inputs.sigma,
            todo,
            inputs.y if config.skip_misclassified else None,
        )
        with tqdm(total=len(todo), desc="certify", disable=rank != 0, unit="input") as progress:
            done, start = 0, time.perf_counter()
            for certificates in groups:
                now = time.perf_counter()
                seconds, start = (now - start) / len(certificates), now
                for cert in certificates:
                    writer.write(**certificate_row(todo[done], int(inputs.y[done]), cert, seconds))
                    done += 1
                progress.update(len(certificates))


def _merge_shards(out: Path, rank: int, world: int) -> None:
    """Rank 0 merges the shard files into ``results.tsv`` once every rank is done."""
    dist.barrier()
    if rank == 0:
        merged = out / "results.tsv"
        parts = [out / f"results.rank{r}.tsv" for r in range(world)]
        merge([merged, *parts] if merged.exists() else parts, merged)
        for shard_file in parts:  # merged: the shard files are no longer needed
            shard_file.unlink()
    dist.barrier()


def _classifier(
    config: CertifyConfig, checkpoint: CheckpointFile, datamodule: SmoothingDataModule
) -> tuple[torch.nn.Module, int]:
    """The classifier to certify and its number of classes, checked against the data."""
    shape = tuple(datamodule.sample_shape)
    if checkpoint.format == "train.py":
        if config.arch is not None:
            raise InvalidSetting(
                "arch", "is for foreign checkpoints; a train.py checkpoint names its model"
            )
        module = classifier_module(checkpoint)
        expected = tuple(module.hparams.sample_shape)
        if shape != expected:
            raise InvalidSetting(
                "checkpoint",
                f"{config.checkpoint} was trained on samples of shape {expected}, but the data "
                f"({datamodule.hparams.dataset}) has shape {shape}",
            )
        return module.classifier, int(module.hparams.num_classes)
    classifier = foreign_classifier(
        checkpoint, config.arch, datamodule.num_classes, shape, datamodule.normalization
    )
    try:
        check_logits(classifier, datamodule.num_classes, shape, f"the {checkpoint.format} model")
    except InvalidSetting as error:
        raise InvalidSetting("checkpoint", f"{config.checkpoint}: {error.problem}") from None
    return classifier, datamodule.num_classes


def _radii(config: CertifyConfig, datamodule: SmoothingDataModule) -> list[float]:
    """The radius grid: of the summary tables and, in sequential mode, of the stopping rule."""
    return config.radii or default_radii(float(datamodule.hparams.sigma_b))


def _stopping_radii(config: CertifyConfig, datamodule: SmoothingDataModule) -> list[float] | None:
    """The grid that decides where sequential CERTIFY stops (so it determines the rows);
    ``None`` with a fixed sample size, where the grid only shapes the tables."""
    return _radii(config, datamodule) if config.settings.sequential else None


def forward_passes(results: dict, settings: CertificationSettings) -> dict[str, float]:
    """Base-classifier evaluations per input (n0 selection plus the estimation samples drawn,
    from the results file's ``samples`` column): mean and total, and the inputs whose
    estimation the evaluation shortcut skipped (``samples`` 0)."""
    samples = results.get("samples", np.full(len(results["idx"]), settings.n))
    total = float(np.sum(settings.n0 + samples))
    count = max(len(results["idx"]), 1)
    return {
        "forward_passes_mean": total / count,
        "forward_passes_total": total,
        "estimation_skipped": int(np.sum(samples == 0)),
    }


def _report(
    config: CertifyConfig, datamodule: SmoothingDataModule, r: float, out: Path, rules: RowRules
) -> dict:
    merged = out / "results.tsv"
    check_rows(merged, read_rows(merged), rules)
    results = read_results(merged)
    summary = certification_summary(
        results["label"],
        results["predict"],
        results["radius"],
        _radii(config, datamodule),
        datamodule.num_classes,
    )
    summary |= forward_passes(results, config.settings)
    name = config.name or run_name(r, config.settings.separate_pb)
    summary["name"] = name
    summary["settings"] = {
        "r": r,
        "checkpoint_sha256": file_digest(config.checkpoint),
        **asdict(config.settings),
        **{k: v for k, v in asdict(config).items() if k not in ("settings", "data")},
        "data": {k: datamodule.hparams[k] for k in datamodule.hparams},
        "class_names": datamodule.class_names,
    }
    write_run_report(out, name, summary, results)
    _log_to_wandb(out, name, summary, results, config.wandb_project)
    return summary


def _log_to_wandb(
    out: Path, name: str, summary: dict, results: dict[str, np.ndarray], project: str
) -> None:
    """The run in W&B; the dashboard is a copy, so its failure never fails the run (an online
    attempt that fails is logged offline instead)."""
    offline = wandb_offline()
    for attempt in (False, True) if not offline else (True,):
        try:
            log_run_to_wandb(out, name, summary, results, project, attempt)
            return
        except Exception as error:
            log.warning("W&B logging failed (%s); the results are in %s", error, out)
            discard_run()
