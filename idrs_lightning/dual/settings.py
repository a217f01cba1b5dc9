"""The router's training settings, checked in one place before any work: defaults, then a
YAML file's values (``--config``), then the command line's."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from idrs_lightning.certification.dual import check_levels
from idrs_lightning.dual.targets import TARGET_ALPHA, TARGET_SAMPLES
from idrs_lightning.models.registry import MODEL_NAMES
from idrs_lightning.noise import NOISE_BLOCK
from idrs_lightning.training.config_files import load_yaml
from idrs_lightning.validation import InvalidSetting, check_choice, check_float, check_int, is_int


@dataclass(frozen=True)
class RouterSettings:
    """What ``python -m idrs_lightning.dual`` does.

    Args:
        experts: one ``train.py`` checkpoint per noise level.
        sigmas: the experts' noise levels, increasing.
        router_sigma: the router's noise level sigma_v (the paper: at least ``max(sigmas)``).
        out: the run's directory (``checkpoints/last.ckpt``, the targets, the logs).
        network: the router's architecture (a built-in name).
        epochs, lr, batch_size: the router's training (SGD, the library's recipe).
        target_inputs: how many training inputs get targets (a seeded, class-stratified
            subset of the train part); ``None``: all.
        samples, alpha: noise samples per input and level, and the level of the target
            radii's Clopper-Pearson bounds (:mod:`idrs_lightning.dual.targets`).
        target_batch_size: noisy samples per forward pass of the targets' counting.
        seed: the training's seed, the targets' noise seed and the subset's.
        certify_every: certify the dual model (this router with its experts) on a subset of
            the validation split every this many epochs (the certification callback, fixed
            n); 0: never.
        certify_examples, certify_n0, certify_n: the subset's size and CERTIFY's samples
            per stage (alpha 0.001, split between the stages).
    """

    experts: tuple[str, ...]
    sigmas: tuple[float, ...]
    router_sigma: float
    out: str
    network: str = "lenet"
    epochs: int = 10
    lr: float = 0.05
    batch_size: int = 256
    target_inputs: int | None = None
    samples: int = TARGET_SAMPLES
    alpha: float = TARGET_ALPHA
    target_batch_size: int = 1000
    seed: int = 0
    certify_every: int = 0
    certify_examples: int = 50
    certify_n0: int = 32
    certify_n: int = 1000

    def __post_init__(self) -> None:
        if not isinstance(self.out, str) or not self.out:
            raise InvalidSetting("out", f"must be a directory, got {self.out!r}")
        experts = _sequence("experts", self.experts)
        if len(experts) < 2 or not all(isinstance(e, str) and e for e in experts):
            raise InvalidSetting(
                "experts", f"must be two or more checkpoint files, got {list(experts)}"
            )
        sigmas = _sequence("sigmas", self.sigmas)
        if not all(_is_number(s) for s in sigmas):
            raise InvalidSetting("sigmas", f"must be numbers, got {list(sigmas)}")
        check_levels(sigmas, len(experts))
        check_float("router_sigma", self.router_sigma, 0.0, math.inf)
        check_choice("network", self.network, MODEL_NAMES)
        check_int("epochs", self.epochs, 1)
        check_float("lr", self.lr, 0.0, math.inf)
        check_int("batch_size", self.batch_size, 1)
        if self.target_inputs is not None:
            check_int("target_inputs", self.target_inputs, 1)
        check_int("samples", self.samples, 1)
        check_float("alpha", self.alpha, 0.0, 1.0)
        check_int("target_batch_size", self.target_batch_size, NOISE_BLOCK)
        check_int("seed", self.seed, 0)
        check_int("certify_every", self.certify_every, 0)
        check_int("certify_examples", self.certify_examples, 1)
        check_int("certify_n0", self.certify_n0, 1)
        check_int("certify_n", self.certify_n, self.certify_n0)
        object.__setattr__(self, "experts", tuple(experts))
        object.__setattr__(self, "sigmas", tuple(float(s) for s in sigmas))
        object.__setattr__(self, "router_sigma", float(self.router_sigma))
        object.__setattr__(self, "alpha", float(self.alpha))
        object.__setattr__(self, "lr", float(self.lr))

    @classmethod
    def from_sources(cls, config: str | None, given: Mapping[str, Any]) -> RouterSettings:
        """The defaults, overridden by the file ``config`` (a mapping of setting names to
        values), overridden by ``given`` (the command line's).

        Raises:
            InvalidSetting: naming the setting, for a bad or missing value; naming ``config``
                for a file that is no mapping of known settings.
            ValueError, OSError: for a file that cannot be read or parsed (naming it).
        """
        values = dict(read_config(config)) if config is not None else {}
        values.update(given)
        for name in ("experts", "sigmas", "router_sigma", "out"):
            if values.get(name) is None:
                raise InvalidSetting(name, "is required (on the command line or in --config)")
        return cls(**values)

    def to_config(self) -> dict[str, Any]:
        """The settings as a config file holds them (what ``--config`` reads back)."""
        values = dataclasses.asdict(self)
        return {**values, "experts": list(self.experts), "sigmas": list(self.sigmas)}


#: The settings a config file may hold.
SETTINGS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(RouterSettings))


def read_config(path: str) -> dict[str, Any]:
    """A config file's settings.

    Raises:
        InvalidSetting: naming ``config``, for a file that is no mapping of known settings.
    """
    content = load_yaml(path)
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise InvalidSetting("config", f"{path} must hold a mapping of settings")
    unknown = sorted(str(key) for key in content if key not in SETTINGS)
    if unknown:
        raise InvalidSetting(
            "config", f"{path} has unknown setting {unknown[0]!r} (known: {', '.join(SETTINGS)})"
        )
    return content


def _sequence(name: str, value: object) -> tuple[Any, ...]:
    if not isinstance(value, list | tuple):
        raise InvalidSetting(name, f"must be a list, got {value!r}")
    return tuple(value)


def _is_number(value: object) -> bool:
    return is_int(value) or isinstance(value, float)
