"""What the certification job is asked: :class:`CertifyConfig` (``certify.py``'s options),
the record of the settings that determine its rows, the input selection and the device."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from idrs_lightning.certify_job.checkpoints import file_digest
from idrs_lightning.certify_job.evaluation import check_precision
from idrs_lightning.certify_job.foreign import parse_arch
from idrs_lightning.settings import CertificationSettings, radius_grid
from idrs_lightning.validation import InvalidSetting, check_choice

#: What ``--method`` chooses between.
METHODS = ("smoothing", "dual")
#: The data options that shape sigma(x), which a dual model's levels replace.
SIGMA_OPTIONS = ("sigma_b", "r", "k", "m", "sigma_min", "sigma_max")


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
    # "smoothing" (one noise level per input: constant or IDRS's sigma(x)) or "dual" (dual
    # randomized smoothing: the checkpoint is the router, the experts those it records)
    method: str = "smoothing"
    experts: list[str] | None = None  # dual: the experts' checkpoints (default: as recorded)

    def stopping_radii(self, sigma_b: float) -> list[float] | None:
        """The grid that decides where sequential CERTIFY stops (so it determines the rows);
        ``None`` with a fixed sample size, where the grid only shapes the tables."""
        return radius_grid(self.radii, sigma_b) if self.settings.sequential else None

    def validate(self) -> None:
        """One clear error per bad value, before anything is loaded."""
        check_precision(self.precision)
        if self.radii is not None and not all(math.isfinite(r) and r >= 0 for r in self.radii):
            raise InvalidSetting("radii", f"must be finite and >= 0, got {self.radii}")
        parse_indices(self.indices)
        if self.arch is not None:
            parse_arch(self.arch)
        resolve_device(self.device)
        check_choice("method", self.method, METHODS)
        if self.method == "dual":
            self._validate_dual()
        elif self.experts:
            raise InvalidSetting("experts", "belongs to --method dual; drop it or add that")
        if Path(self.out).exists() and not Path(self.out).is_dir():
            raise InvalidSetting("out", f"{self.out} is a file; give a directory")

    def _validate_dual(self) -> None:
        for option, given in (("constant", self.constant), ("arch", self.arch is not None)):
            if given:
                raise InvalidSetting(
                    option, "does not apply to --method dual (its experts fix their noise levels)"
                )
        if self.settings.sequential or self.settings.separate_pb:
            option = "sequential" if self.settings.sequential else "separate_pb"
            raise InvalidSetting(option, "does not apply to --method dual (fixed n only)")
        for option in SIGMA_OPTIONS:
            if self.data.get(option) is not None:
                raise InvalidSetting(
                    option, "does not apply to --method dual (its levels are the experts')"
                )

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
            **self._dual_record(),
        }

    def _dual_record(self) -> dict[str, object]:
        """A dual run's method and its experts' content digests (nothing for other runs, whose
        records stay as they were)."""
        if self.method != "dual":
            return {}
        return {"method": "dual", "experts_sha256": [file_digest(e) for e in self.experts or []]}


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


def resolve_device(name: str) -> torch.device:
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
