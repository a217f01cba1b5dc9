"""Certify a trained checkpoint on a data split: the engine behind ``certify.py``.

Inputs are sharded explicitly across processes (``torchrun``: ``RANK``/``WORLD_SIZE``), each
shard appends its rows to its own file as they are produced, and rank 0 merges them, writes
the summary, the plots and an offline W&B run. A restarted run continues after the last
complete row of each shard; noise is seeded per input, so rows do not depend on restarts,
batch size or the number of processes.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from .cli import wandb_offline
from .data.datamodule import SmoothingDataModule
from .metrics import certification_summary, default_radii
from .report import format_table, plot_certified_accuracy, plot_per_class, plot_sigma_histogram
from .results import ResultsWriter, merge, read_results
from .smoothing import NOISE_BLOCK, Smooth
from .training import BaseClassifierModule

log = logging.getLogger(__name__)

_AUTOCAST = {"32": None, "bf16": torch.bfloat16, "16": torch.float16}


@dataclass
class CertifyConfig:
    """What to certify and how (see ``certify.py --help``)."""

    checkpoint: str
    out: str
    n0: int = 100
    n: int = 100_000
    alpha: float = 0.001
    batch_size: int = 1000
    seed: int = 0
    indices: str = "subset"  # "subset", "all", or "start:stop[:step]"
    constant: bool = False
    radii: list[float] | None = None
    device: str = "auto"
    precision: str = "32"  # "32", "bf16" or "16": autocast dtype of the base classifier
    channels_last: bool = False
    separate_pb: bool = False  # bound the runner-up separately (IDRS paper, Appendix B.5)
    name: str = ""
    wandb_project: str = "idrs-lightning"
    data: dict[str, object] = field(default_factory=dict)

    def validate(self) -> None:
        """One clear error per bad value, before any expensive work."""
        if self.n < 1 or self.n0 < 1:
            raise ValueError(f"n0 and n must be at least 1, got n0={self.n0}, n={self.n}")
        if self.n0 > self.n:
            raise ValueError(f"n0 ({self.n0}) must not exceed n ({self.n})")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must lie in (0, 1), got {self.alpha}")
        if self.precision not in _AUTOCAST:
            raise ValueError(
                f"precision must be one of {sorted(_AUTOCAST)}, got {self.precision!r}"
            )
        if self.batch_size < 100:
            raise ValueError(f"batch_size must be at least 100, got {self.batch_size}")
        r = self.data.get("r")
        if r is not None and not float(r) >= 0:
            raise ValueError(f"r must be non-negative, got {r}")
        if not Path(self.checkpoint).is_file():
            raise FileNotFoundError(f"checkpoint {self.checkpoint} does not exist")


def _init_arguments(cls: type, hparams: dict) -> dict:
    """The entries of saved hyperparameters that ``cls.__init__`` takes (LightningCLI adds
    bookkeeping such as ``_instantiator``)."""
    accepted = inspect.signature(cls.__init__).parameters
    return {key: value for key, value in hparams.items() if key in accepted}


def load_checkpoint(path: str) -> tuple[BaseClassifierModule, dict]:
    """The classifier and the training run's data settings, loaded with ``weights_only``."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        module = BaseClassifierModule(
            **_init_arguments(BaseClassifierModule, state["hyper_parameters"])
        )
        module.load_state_dict(state["state_dict"])
    except Exception as error:  # any unreadable or foreign file gets one clear message
        raise ValueError(f"cannot load checkpoint {path}: {error}") from error
    return module, dict(state.get("datamodule_hyper_parameters", {}))


def _data_settings(trained: dict, config: CertifyConfig) -> dict:
    settings = _init_arguments(SmoothingDataModule, trained)
    if "m_resolved" in trained and "m" not in config.data:
        settings["m"] = trained["m_resolved"]  # the training run's chosen m, not a re-estimate
    settings.update({k: v for k, v in config.data.items() if v is not None})
    if config.constant:
        settings["r"] = 0.0
    return settings


def _indices(config: CertifyConfig, datamodule: SmoothingDataModule) -> list[int]:
    total = len(datamodule.datasets["test"])
    if config.indices == "subset":
        return list(datamodule.certification_subset().indices)
    if config.indices == "all":
        return list(range(total))
    parts = [int(p) if p else None for p in config.indices.split(":")]
    return list(range(total))[slice(*parts)]


def _claim_output(out: Path, config: CertifyConfig) -> None:
    """Record the settings that determine the rows; refuse to resume a different run."""
    settings = {
        key: value
        for key, value in asdict(config).items()
        if key not in ("out", "name", "device", "wandb_project", "radii", "batch_size")
    }
    record = out / "certify_settings.json"
    text = json.dumps(settings, indent=2, sort_keys=True, default=str)
    if record.exists() and record.read_text() != text:
        try:
            recorded = json.loads(record.read_text())
        except json.JSONDecodeError:
            recorded = {}
        current = json.loads(text)
        differing = sorted(
            f"{key} (not recorded: written by an older certify.py)"
            if key not in recorded
            else f"{key}={recorded[key]!r} there"
            for key in current.keys() | recorded.keys()
            if recorded.get(key) != current.get(key)
        )
        raise ValueError(
            f"{out} holds results of a run with other settings: {', '.join(differing)} "
            f"(see {record.name}); choose another output directory"
        )
    record.write_text(text)


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
    module, trained = load_checkpoint(config.checkpoint)
    datamodule = SmoothingDataModule(**_data_settings(trained, config))
    datamodule.setup("test")
    expected = tuple(module.hparams.sample_shape)
    if datamodule.sample_shape != expected:
        raise ValueError(
            f"the data has sample shape {datamodule.sample_shape} but the checkpoint was "
            f"trained on {expected}"
        )
    device = _device(config.device)
    classifier = module.classifier.to(device).eval()
    smooth = Smooth(
        classifier,
        module.hparams.num_classes,
        datamodule.rate,
        config.batch_size,
        config.seed,
        autocast_dtype=_AUTOCAST[config.precision],
        channels_last=config.channels_last,
        separate_pb=config.separate_pb,
    )
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        _claim_output(out, config)
    if world > 1:
        dist.barrier()  # no rank appends before rank 0 has checked the directory
    shard = _indices(config, datamodule)[rank::world]
    part = out / ("results.tsv" if world == 1 else f"results.rank{rank}.tsv")
    dataset = datamodule.datasets["test"]
    # Inputs whose noise fits several to a forward pass are certified together.
    group = max(1, smooth.blocks_per_batch // -(-config.n // NOISE_BLOCK))
    with ResultsWriter(part) as writer:
        todo = [i for i in shard if i not in writer.done]
        progress = tqdm(
            total=len(todo), desc=f"certify rank {rank}", disable=rank != 0, unit="input"
        )
        for first in range(0, len(todo), group):
            chosen = todo[first : first + group]
            xs, labels, sigmas = dataset.batch(chosen)
            start = time.perf_counter()
            certificates = smooth.certify_many(
                xs.to(device), sigmas.tolist(), config.n0, config.n, config.alpha, chosen
            )
            seconds = (time.perf_counter() - start) / len(chosen)
            for index, label, cert in zip(chosen, labels.tolist(), certificates, strict=True):
                writer.write(
                    idx=index,
                    label=label,
                    predict=cert.prediction,
                    # repr: exact floats, so that no bound is rounded up on its way to disk
                    radius=repr(cert.radius),
                    correct=int(cert.prediction == label),
                    time=f"{seconds:.4f}",
                    sigma=repr(cert.sigma),
                    pA_lower=repr(cert.p_a_lower),
                    pB_upper=repr(cert.p_b_upper),
                    counts=",".join(str(c) for c in cert.counts),
                )
            progress.update(len(chosen))
        progress.close()
    if world > 1:
        dist.barrier()
        if rank == 0:
            merge([out / f"results.rank{r}.tsv" for r in range(world)], out / "results.tsv")
        dist.barrier()
    if rank != 0:
        return None
    return _report(config, datamodule, out)


def _report(config: CertifyConfig, datamodule: SmoothingDataModule, out: Path) -> dict:
    results = read_results(out / "results.tsv")
    sigma_b = float(datamodule.hparams.sigma_b)
    radii = config.radii or default_radii(sigma_b)
    summary = certification_summary(
        results["label"], results["predict"], results["radius"], radii, datamodule.num_classes
    )
    summary["settings"] = {
        "rate": datamodule.rate,
        **{k: v for k, v in asdict(config).items() if k != "data"},
        "data": {k: datamodule.hparams[k] for k in datamodule.hparams},
    }
    name = config.name or (
        ("constant sigma" if datamodule.rate == 0 else f"IDRS r={datamodule.rate}")
        + (", separate pB" if config.separate_pb else "")
    )
    summary["name"] = name
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    (out / "table.txt").write_text(format_table(name, summary) + "\n")
    plot_certified_accuracy(
        {name: (results["radius"], results["correct"])}, out / "certified_accuracy.png"
    )
    plot_per_class(summary["per_class_accuracy"], out / "per_class_accuracy.png")
    plot_sigma_histogram(results["sigma"], out / "sigma_histogram.png")
    _log_to_wandb(config, name, summary, out)
    return summary


def _log_to_wandb(config: CertifyConfig, name: str, summary: dict, out: Path) -> None:
    import wandb

    run = wandb.init(
        project=config.wandb_project,
        name=f"certify {name}",
        dir=str(out),
        mode="offline" if wandb_offline() else "online",
        config=summary["settings"],
        job_type="certify",
    )
    scalars = (
        "clean_accuracy",
        "abstention_rate",
        "misclassification_rate",
        "average_certified_radius",
        "class_accuracy_std",
    )
    run.summary.update({key: summary[key] for key in scalars})
    curve = wandb.Table(
        columns=["radius", "certified_accuracy"],
        data=list(zip(summary["radii"], summary["certified_accuracy"], strict=True)),
    )
    run.log(
        {
            "certified_accuracy": wandb.plot.line(
                curve, "radius", "certified_accuracy", title=f"certified accuracy, {name}"
            ),
            "per_class_accuracy": wandb.Table(
                columns=["class", "accuracy"], data=list(enumerate(summary["per_class_accuracy"]))
            ),
            **{f"plots/{p.stem}": wandb.Image(str(p)) for p in sorted(out.glob("*.png"))},
        }
    )
    run.finish()
