"""Opening the certification job: the checkpoint in its format, the data with the training
run's settings and the command's overrides, the classifier on its device, the inputs, the
record of the settings and the rules its rows must follow, and the smoothed classifier."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from idrs_lightning.certify_job.checkpoints import CheckpointFormat, open_checkpoint
from idrs_lightning.certify_job.config import CertifyConfig, parse_indices, resolve_device
from idrs_lightning.certify_job.dual_model import DualRecord
from idrs_lightning.certify_job.evaluation import EvaluatedClassifier
from idrs_lightning.certify_job.results import RowRules
from idrs_lightning.data.datamodule import SmoothingDataModule
from idrs_lightning.settings import radius_grid
from idrs_lightning.smoothing import Smooth
from idrs_lightning.smoothing.dual import DualSmooth
from idrs_lightning.validation import InvalidSetting


@dataclass(frozen=True)
class CertifyJob:
    """Everything the job's steps share once it is open."""

    config: CertifyConfig
    datamodule: SmoothingDataModule
    smooth: Smooth | DualSmooth
    indices: list[int]
    device: torch.device
    record: dict[str, object]
    rules: RowRules

    @property
    def out(self) -> Path:
        return Path(self.config.out)

    @property
    def radii(self) -> list[float]:
        """The summary's radius grid; a dual run's default reaches 3 times its largest level."""
        if isinstance(self.smooth, DualSmooth):
            return radius_grid(self.config.radii, self.smooth.sigmas[-1])
        return self.datamodule.radius_grid(self.config.radii)

    @property
    def r(self) -> float:
        """The semi-elasticity of the certified sigma(x): 0 for constant and dual noise."""
        return 0.0 if isinstance(self.smooth, DualSmooth) else self.smooth.r


def open_job(config: CertifyConfig) -> CertifyJob:
    """Read and check everything the job needs, before any sampling.

    Raises:
        InvalidSetting: naming the option or file that is wrong.
    """
    config.validate()
    if config.method == "dual":
        return _open_dual_job(config)
    checkpoint = open_checkpoint(config.checkpoint)
    datamodule = _datamodule(config, checkpoint)
    network, num_classes = checkpoint.classifier(config.arch, datamodule)
    indices = _indices(config.indices, datamodule)
    device = resolve_device(config.device)
    classifier = EvaluatedClassifier(network.to(device), config.precision, config.channels_last)
    sigma_b = float(datamodule.hparams.sigma_b)
    constant = config.constant or datamodule.r == 0
    reference = None if constant else datamodule.reference_identity
    record = config.record(datamodule.test_identity, reference, config.stopping_radii(sigma_b))
    rules = RowRules(
        labels=dict(zip(indices, datamodule.labels()[indices].tolist(), strict=True)),
        num_classes=num_classes,
        n=config.settings.n,
        sequential=config.settings.sequential,
        shortcut=config.skip_misclassified,
    )
    smooth = datamodule.smooth(
        classifier.eval(), num_classes, config.settings, config.radii, config.constant
    )
    return CertifyJob(config, datamodule, smooth, indices, device, record, rules)


def _open_dual_job(config: CertifyConfig) -> CertifyJob:
    """The dual model's job: the router checkpoint's data, its experts (checked against the
    digests it recorded) and the dual smoothed classifier."""
    router = open_checkpoint(config.checkpoint)
    dual = DualRecord.from_checkpoint(config.checkpoint, router.file.content)
    config = replace(config, experts=list(config.experts or dual.experts))
    dual.check_experts(config.experts)
    datamodule = _datamodule(config, router)
    device = resolve_device(config.device)
    router_network, levels = router.classifier(None, datamodule)
    if levels != len(dual.sigmas):
        raise InvalidSetting(
            "checkpoint", f"{config.checkpoint} has {levels} outputs for {len(dual.sigmas)} levels"
        )
    experts = [_expert(path, datamodule, config, device) for path in config.experts]
    indices = _indices(config.indices, datamodule)
    record = config.record(datamodule.test_identity, None, None)
    rules = RowRules(
        labels=dict(zip(indices, datamodule.labels()[indices].tolist(), strict=True)),
        num_classes=datamodule.num_classes,
        n=config.settings.n,
        sequential=False,
        shortcut=config.skip_misclassified,
        dual_sigmas=dual.sigmas,
    )
    smooth = DualSmooth(
        _evaluated(router_network, config, device),
        experts,
        dual.sigmas,
        dual.router_sigma,
        datamodule.num_classes,
        config.settings,
        input_range=datamodule.value_range,
    )
    return CertifyJob(config, datamodule, smooth, indices, device, record, rules)


def _expert(
    path: str, datamodule: SmoothingDataModule, config: CertifyConfig, device: torch.device
) -> EvaluatedClassifier:
    network, num_classes = open_checkpoint(path).classifier(None, datamodule)
    if num_classes != datamodule.num_classes:
        raise InvalidSetting(
            "experts", f"{path} has {num_classes} classes; the data has {datamodule.num_classes}"
        )
    return _evaluated(network, config, device)


def _evaluated(
    network: torch.nn.Module, config: CertifyConfig, device: torch.device
) -> EvaluatedClassifier:
    """``network`` on ``device`` in eval mode, at the job's precision and memory layout."""
    return EvaluatedClassifier(network.to(device), config.precision, config.channels_last).eval()


def _datamodule(config: CertifyConfig, checkpoint: CheckpointFormat) -> SmoothingDataModule:
    """The test data and sigma(x): the training run's settings with the command's overrides.

    Raises:
        InvalidSetting: naming the option the user gave, or the checkpoint where a value it
            recorded is invalid (an edited file).
    """
    overrides = {k: v for k, v in config.data.items() if v is not None}
    recorded = checkpoint.data_settings()
    data = recorded | overrides
    if "dataset" not in data:
        raise InvalidSetting("dataset", f"is needed: {checkpoint.missing_dataset()}")
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
