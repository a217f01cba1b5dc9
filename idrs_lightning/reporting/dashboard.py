"""What a W&B dashboard needs from a run, decided in one place.

* :func:`run_label`: a run's name from what differs (the command line's dotted overrides,
  ``sigma_b=0.25 trr=0.04 r=0.01``), for sweep runs that give no ``--run_name``;
* :func:`flat_config`: a nested configuration as flat dotted keys (the W&B run config);
* :func:`run_id`: the W&B run id kept in a run's directory, so that resuming (``--ckpt_path``,
  or ``certify.py`` on the same output directory) continues the same W&B run;
* :func:`define_certification_metrics`: ``epoch`` as the x-axis of the certification scalars and
  summaries that hold the best value (max for accuracies and ACR, min for abstention,
  misclassification and the class-wise std) beside the last;
* :data:`GROUP_VARIABLE`: the environment variable (W&B's own) that groups a sweep's runs.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from idrs_lightning.atomic_files import write_text

#: W&B reads the group of a run from this variable; the local sweep runner sets it.
GROUP_VARIABLE = "WANDB_RUN_GROUP"
RUN_ID_FILE = "wandb_run_id"
# Figures whose best value is the smallest; every other certification scalar is best at its max.
LOWER_IS_BETTER = ("abstention_rate", "misclassification_rate", "class_accuracy_std")
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


def flat_config(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys for every leaf of ``tree`` (lists of mappings by index: ``callbacks.0.n``)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat |= flat_config(value, f"{name}.")
        elif isinstance(value, list) and any(isinstance(item, Mapping) for item in value):
            for index, item in enumerate(value):
                entry = item if isinstance(item, Mapping) else {"value": item}
                flat |= flat_config(entry, f"{name}.{index}.")
        else:
            flat[name] = value
    return flat


def run_id(directory: Path) -> str:
    """The W&B run id of the run kept in ``directory``: read, or created and stored there."""
    path = directory / RUN_ID_FILE
    if path.exists():
        return path.read_text().strip()
    identifier = secrets.token_hex(4)
    directory.mkdir(parents=True, exist_ok=True)
    write_text(path, identifier + "\n")
    return identifier


def _best_of(name: str) -> str:
    return "min" if name.rsplit("/", 1)[-1] in LOWER_IS_BETTER else "max"


def define_certification_metrics(experiment: Any, names: Sequence[str]) -> None:
    """Declare ``epoch`` the x-axis of each scalar in ``names`` (``<prefix>/<figure>``) and its
    summary: the best value (min for :data:`LOWER_IS_BETTER`, else max) and the last."""
    experiment.define_metric("epoch")
    for name in names:
        # a dot in a name would make W&B read a nested key (accuracy_at_0 -> 125): escape it
        escaped = name.replace(".", "\\.")
        experiment.define_metric(escaped, step_metric="epoch", summary=f"{_best_of(name)},last")


def summary_entries(best: dict[str, float], values: Mapping[str, float]) -> dict[str, Any]:
    """``{name: {"max" or "min": best so far, "last": value}}``, updating ``best`` in place.

    Written to the run summary explicitly after each record, as W&B 0.31 leaves a name's
    summary at its last value when a longer name extends it with a dot (``accuracy_at_0``
    beside ``accuracy_at_0.5``) and a glob metric is defined (Lightning's ``*``)."""
    entries = {}
    for name, value in values.items():
        pick = min if _best_of(name) == "min" else max
        best[name] = pick(best.get(name, value), value)
        entries[name] = {_best_of(name): best[name], "last": value}
    return entries
