"""A dual randomized smoothing model on disk: a router checkpoint (a ``train.py``-format
checkpoint whose classes are the noise levels) that records its experts.

The router's file holds, beside the usual entries, ``DUAL_RECORD``: the experts' checkpoint
paths and SHA-256 digests, their noise levels (increasing, one per router class) and the
router's noise level sigma_v. The experts are ``train.py`` checkpoints on the router's data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from idrs_lightning.certify_job.checkpoints import file_digest
from idrs_lightning.validation import InvalidSetting

#: The router checkpoint's entry that makes it a dual model.
DUAL_RECORD = "dual_router"


@dataclass(frozen=True)
class DualRecord:
    """What a router checkpoint records about its dual model."""

    experts: tuple[str, ...]
    expert_digests: tuple[str, ...]
    sigmas: tuple[float, ...]
    router_sigma: float

    @classmethod
    def for_experts(
        cls, experts: list[str], sigmas: list[float], router_sigma: float
    ) -> DualRecord:
        """The record of ``experts`` as they are on disk now."""
        paths = tuple(str(Path(e).resolve()) for e in experts)
        return cls(paths, tuple(file_digest(p) for p in paths), tuple(sigmas), float(router_sigma))

    def to_checkpoint(self) -> dict[str, Any]:
        return {**asdict(self), "experts": list(self.experts)}

    @classmethod
    def from_checkpoint(cls, path: str, content: object) -> DualRecord:
        """The record in a router checkpoint's ``content``.

        Raises:
            InvalidSetting: the file is no router (names ``checkpoint``), or its record is
                incomplete.
        """
        entry = content.get(DUAL_RECORD) if isinstance(content, dict) else None
        if not isinstance(entry, dict):
            raise InvalidSetting(
                "checkpoint",
                f"{path} is no dual model's router (it records no experts); --method dual needs "
                "the router checkpoint that `python -m idrs_lightning.dual` wrote",
            )
        try:
            return cls(
                tuple(str(e) for e in entry["experts"]),
                tuple(str(d) for d in entry["expert_digests"]),
                tuple(float(s) for s in entry["sigmas"]),
                float(entry["router_sigma"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise InvalidSetting(
                "checkpoint", f"{path}: its dual record is incomplete ({error})"
            ) from None

    def check_experts(self, experts: list[str]) -> None:
        """Refuse expert files that are not the ones the router was trained with.

        Raises:
            InvalidSetting: naming ``experts``.
        """
        if len(experts) != len(self.sigmas):
            raise InvalidSetting(
                "experts",
                f"needs {len(self.sigmas)} checkpoints (one per noise level {list(self.sigmas)}),"
                f" got {len(experts)}",
            )
        for path, digest, sigma in zip(experts, self.expert_digests, self.sigmas, strict=True):
            if not Path(path).is_file():
                raise InvalidSetting("experts", f"{path} (sigma {sigma}) is not a file")
            if file_digest(path) != digest:
                raise InvalidSetting(
                    "experts",
                    f"{path} is not the sigma = {sigma} expert the router was trained with "
                    "(its contents differ); give that expert or retrain the router",
                )
