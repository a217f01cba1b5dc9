"""Training and certification for the experiment IDs, through the product's own entry points:
training runs of the library's command (:mod:`idrs_lightning.training.command`) driven by the
sweep machinery (:mod:`idrs_lightning.training.sweep`) and the
certification job behind ``certify.py`` (:mod:`idrs_lightning.certify_job.run`).

Both reuse what a previous call finished: a trained run keeps its ``last.ckpt`` and a
certification resumes after its last complete row (it refuses other settings), so an
interrupted reproduction continues where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from idrs_lightning.certify_job.config import CertifyConfig
from idrs_lightning.certify_job.results import read_results
from idrs_lightning.certify_job.run import run_certification
from idrs_lightning.reporting.summary import CertificationSummary
from idrs_lightning.settings import CertificationSettings
from idrs_lightning.training.sweep import command_line, parameter_sets
from idrs_lightning.validation import InvalidSetting

log = logging.getLogger(__name__)

#: The training command, run as a module of this package.
TRAINING_MODULE = "idrs_lightning.training"


def _option(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def train_grid(
    runs_dir: Path,
    grid: Mapping[str, Sequence[Any]],
    run_name: Callable[[dict[str, Any]], str],
    fixed: Mapping[str, Any] | None = None,
    config: str | None = None,
) -> dict[str, Path]:
    """Train one model per point of ``grid`` (LightningCLI keys, e.g. ``data.sigma_b``).

    The grid is expanded by W&B's sweep engine exactly as
    ``python -m idrs_lightning.training.sweep`` does for a grid file; each run is
    ``python -m idrs_lightning.training fit [--config config] --key=value ...`` with ``fixed``
    options, in ``runs_dir/<run_name(parameters)>``. A run that finished before
    (``checkpoints/last.ckpt`` present) is reused if it was asked for with the same options
    (:data:`REQUEST_FILE`), and refused otherwise; an unfinished one is started again.

    Returns:
        ``{run name: path of its last checkpoint}``.
    """
    head = ["${env}", "${interpreter}", "-m", TRAINING_MODULE, "fit"]
    sweep = {
        "program": TRAINING_MODULE,
        "method": "grid",
        "parameters": {key: {"values": list(values)} for key, values in grid.items()},
        "command": [*head, *(["--config", config] if config else []), "${args}"],
    }
    extra = [f"--{key}={_option(value)}" for key, value in (fixed or {}).items()]
    environment = {**os.environ, "WANDB_MODE": os.environ.get("WANDB_MODE", "offline")}
    checkpoints = {}
    for parameters in parameter_sets(sweep):
        name = run_name(parameters)
        run_dir = runs_dir / name
        checkpoint = run_dir / "checkpoints" / "last.ckpt"
        checkpoints[name] = checkpoint
        line = command_line(sweep, parameters, [f"--runs_dir={runs_dir}", f"--run_name={name}"])
        line += [*extra, "--trainer.enable_progress_bar=false"]
        request = _request(line)
        if checkpoint.is_file():
            _check_reuse(run_dir, request)
            log.info("reusing %s", run_dir)
            continue
        if run_dir.exists():
            shutil.rmtree(run_dir)  # a run that did not finish: start it again
        runs_dir.mkdir(parents=True, exist_ok=True)
        log.info("training %s", name)
        with (runs_dir / f"{name}.log").open("w") as output:
            done = subprocess.run(line, env=environment, stdout=output, stderr=subprocess.STDOUT)
        if done.returncode:
            raise RuntimeError(
                f"training run {name} failed (status {done.returncode}); see "
                f"{runs_dir / (name + '.log')}"
            )
        (run_dir / REQUEST_FILE).write_text(json.dumps(request, indent=1) + "\n")
    return checkpoints


#: What a reproduction asked of a training run, kept in its directory: a finished run is
#: reused only for the same request.
REQUEST_FILE = "reproduction_request.json"


def _request(line: list[str]) -> list[str]:
    """The options of a training command that determine the model (not where it is written);
    a config file stands for its content's SHA-256, so that an edited config is another
    request."""
    options = line[line.index("fit") :]
    request = []
    for before, part in zip(["", *options], options, strict=False):
        if before == "--config":
            part = "sha256:" + hashlib.sha256(Path(part).read_bytes()).hexdigest()
        if not part.startswith("--runs_dir="):
            request.append(part)
    return request


def _check_reuse(run_dir: Path, request: list[str]) -> None:
    """Refuse to reuse a finished run trained on another request (other options, other data,
    or a version that kept no request).

    Raises:
        InvalidSetting: naming ``out``, before anything is trained or certified.
    """
    recorded = run_dir / REQUEST_FILE
    try:
        found = json.loads(recorded.read_text())
    except (OSError, ValueError):
        found = None
    if found != request:
        differing = (
            "it records no request (it did not finish, or an older version wrote it)"
            if found is None
            else "its options differ: "
            + ", ".join(sorted(set(map(str, request)) ^ set(map(str, found))))
        )
        raise InvalidSetting(
            "out",
            f"{run_dir} holds a training run that this reproduction would reuse, "
            f"but {differing}: give another --out, or remove that run",
        )


@dataclass(frozen=True)
class Certified:
    """A certification job's summary and its per-input columns (``label``, ``predict``,
    ``radius``, ``correct``, ``sigma``)."""

    summary: CertificationSummary
    results: dict[str, np.ndarray]


def certify(
    checkpoint: Path,
    out: Path,
    settings: CertificationSettings,
    *,
    constant: bool,
    count: int,
    data: Mapping[str, Any] | None = None,
    radii: list[float] | None = None,
    name: str = "",
    method: str = "smoothing",
) -> Certified:
    """Certify ``count`` inputs of the class-stratified evaluation subset of the checkpoint's
    test data with the certification job (``certify.py``): constant sigma or IDRS, or with
    ``method="dual"`` the dual model whose router ``checkpoint`` is."""
    config = CertifyConfig(
        checkpoint=str(checkpoint),
        out=str(out),
        settings=settings,
        indices="subset",
        constant=constant and method == "smoothing",
        radii=radii,
        name=name,
        wandb_project="idrs-paper",
        data={"eval_subset_size": count, **(data or {})},
        method=method,
    )
    summary = run_certification(config)
    return Certified(summary=summary, results=read_results(out / "results.tsv"))
