"""A training run's name and directory from what its command line changes (a sweep's runs give
no ``--run_name``)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence

_OVERRIDE = re.compile(r"^--(?:model|data)\.(?:init_args\.)?(?P<key>[A-Za-z_]\w*)=(?P<value>.+)$")


# Data options that say where or how fast, not what is computed: they do not name a run.
_NOT_NAMING = frozenset({"root", "cache_dir", "num_workers", "download"})


def run_label(arguments: Sequence[str]) -> str | None:
    """``key=value`` for each ``--model.key=value`` / ``--data.key=value`` argument (the
    hyperparameters a sweep varies), in order, joined by spaces: ``--data.sigma_b=0.25
    --data.trr=0.04`` gives ``sigma_b=0.25 trr=0.04``. ``None`` when there is none; paths,
    worker counts and trainer options do not name a run."""
    pairs = [match.group("key", "value") for match in map(_OVERRIDE.match, arguments) if match]
    label = " ".join(f"{key}={value}" for key, value in pairs if key not in _NOT_NAMING)
    return label or None


def directory_name(label: str) -> str:
    """A run directory for ``label``: spaces and path separators replaced, plus a random
    suffix (a sweep may run the same parameters twice)."""
    safe = re.sub(r"[^\w=.+-]+", "_", label).strip("_")
    return f"{safe}-{secrets.token_hex(3)}"
