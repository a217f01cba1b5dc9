"""Everything W&B: whether and how a run logs online, the run configs and ids, the metrics'
summaries, and the charts of certification runs and certified epochs.

Offline unless credentials exist, ``WANDB_MODE`` does not ask for offline, and the W&B server
answers an HTTP request within a few seconds with anything but a server error (a server that
accepts connections and never replies, or answers 5xx, means offline). An online start that
still fails or outlasts :data:`INIT_TIMEOUT` starts the same run offline, with one warning
(:func:`init_run`, :class:`FallbackWandbLogger`), and an online run's upload at its end waits
at most :data:`FINISH_TIMEOUT`: W&B never stalls or fails training or certification, and
what was not uploaded is uploaded later with ``wandb sync``.

Dashboards: :func:`flat_config` (dotted keys), :func:`run_id` (kept in the run's directory, so
a resumed run continues its W&B run), :func:`define_certification_metrics` (``epoch`` as the
x-axis, best and last values in the summary) and :data:`GROUP_VARIABLE` (a sweep's group).
"""

from __future__ import annotations

import functools
import http.client
import logging
import netrc
import os
import secrets
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from lightning.pytorch.loggers import WandbLogger

from idrs_lightning.atomic_files import write_text
from idrs_lightning.reporting.metrics import CertificationResult, certified_accuracy, dense_radii
from idrs_lightning.reporting.summary import CertificationSummary
from idrs_lightning.reporting.tables import curve_label

log = logging.getLogger(__name__)

#: Seconds to wait for the W&B server's answer before logging offline.
CONNECT_TIMEOUT = 3.0
#: Seconds an online ``wandb.init`` may take before the run starts offline instead.
INIT_TIMEOUT = 30.0
#: Seconds an online run's ``finish`` waits for its upload (the rest stays in the run's
#: directory for ``wandb sync``).
FINISH_TIMEOUT = 60.0


def wandb_credentials_present() -> bool:
    """Whether W&B can log online: an API key in the environment or in ``~/.netrc``."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


@functools.cache
def _server_answers(base_url: str) -> bool:
    """Whether ``base_url`` answers an HTTP request in time with no server error."""
    try:
        with urllib.request.urlopen(base_url, timeout=CONNECT_TIMEOUT) as response:
            return response.status < 500
    except urllib.error.HTTPError as error:
        return error.code < 500
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError):
        return False


def wandb_offline() -> bool:
    """Offline unless credentials exist, ``WANDB_MODE`` allows online and the server answers."""
    if os.environ.get("WANDB_MODE", "").lower() in ("offline", "dryrun", "disabled"):
        return True
    if not wandb_credentials_present():
        return True
    base_url = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")
    if not _server_answers(base_url):
        log.warning(
            "W&B server %s does not answer; logging offline (wandb sync uploads later)", base_url
        )
        return True
    return False


def _fell_back(error: BaseException) -> None:
    """One warning; the failed online start is discarded so that the offline run can take
    its run id."""
    reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    log.warning(
        "W&B could not start online (%s); logging offline (wandb sync uploads later)", reason
    )
    discard_run()


def discard_run() -> None:
    """End this process's W&B run, if any, after a failure: a later ``wandb.init`` starts a
    run of its own instead of returning the failed one."""
    import wandb

    wandb.teardown()


def online_settings() -> Any:
    """W&B settings that bound an online run's start and finish in time."""
    import wandb

    return wandb.Settings(init_timeout=INIT_TIMEOUT, finish_timeout=FINISH_TIMEOUT)


def init_run(offline: bool, **arguments: Any) -> Any:
    """``wandb.init(**arguments)`` online (bounded by :data:`INIT_TIMEOUT`) unless ``offline``;
    an online start that fails starts the run offline instead."""
    import wandb

    if offline:
        return wandb.init(mode="offline", **arguments)
    try:
        return wandb.init(mode="online", settings=online_settings(), **arguments)
    except Exception as error:  # a slow or refusing server: keep an offline copy instead
        _fell_back(error)
        return wandb.init(mode="offline", **arguments)


class FallbackWandbLogger(WandbLogger):
    """Lightning's W&B logger whose online start is bounded in time and falls back to an
    offline run (:func:`init_run`)."""

    def __init__(self, *args: Any, offline: bool = False, **kwargs: Any) -> None:
        if not offline:
            kwargs["settings"] = online_settings()
        super().__init__(*args, offline=offline, **kwargs)

    @property
    def experiment(self) -> Any:
        try:
            return super().experiment
        except Exception as error:
            if self._offline:
                raise
            _fell_back(error)
            self._offline = True
            self._wandb_init.pop("settings", None)
            self._wandb_init["mode"] = "offline"
            return super().experiment


def training_logger(run_dir: Path, project: str, name: str) -> FallbackWandbLogger:
    """A training run's W&B logger (job type ``train``), writing into ``run_dir``, whose kept
    run id (:func:`run_id`) lets a resumed run continue the same W&B run."""
    return FallbackWandbLogger(
        project=project,
        name=name,
        save_dir=str(run_dir),
        offline=wandb_offline(),
        id=run_id(run_dir),
        resume="allow",
        job_type="train",
    )


def finish_current_run() -> None:
    """Finish this process's W&B run, if one is open."""
    import wandb

    if wandb.run is not None:
        wandb.finish()


#: W&B reads the group of a run from this variable; the local sweep runner sets it.
GROUP_VARIABLE = "WANDB_RUN_GROUP"
RUN_ID_FILE = "wandb_run_id"


# Figures whose best value is the smallest; every other certification scalar is best at its max.
LOWER_IS_BETTER = ("abstention_rate", "misclassification_rate", "class_accuracy_std")


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


def _curve_table(grid: np.ndarray, accuracy: np.ndarray) -> Any:
    """A W&B table of one certified-accuracy curve: ``radius``, ``certified_accuracy``."""
    import wandb

    rows = [[float(r), float(a)] for r, a in zip(grid, accuracy, strict=True)]
    return wandb.Table(columns=["radius", "certified_accuracy"], data=rows)


def epoch_charts(
    results: Mapping[str, CertificationResult],
    history: Sequence[tuple[int, CertificationResult]],
    settings: Mapping[str, Any],
) -> dict[str, Any]:
    """W&B charts of one certified epoch, drawn from the per-input radii (exact, not through
    grid points): ``<prefix>/certified_accuracy`` and ``<prefix>/per_class`` per result,
    ``certify/idrs_vs_constant`` (both curves) with the constant-sigma comparison, and
    ``certify/curves_by_epoch`` (the run's curve at every certified epoch so far)."""
    import wandb

    grid = dense_radii([r.radius for r in [*results.values(), *(r for _, r in history)]])
    curves = {
        prefix: certified_accuracy(*result.curve(), grid) for prefix, result in results.items()
    }
    charts: dict[str, Any] = {}
    for prefix, result in results.items():
        table = _curve_table(grid, curves[prefix])
        label = curve_label(prefix, settings)
        charts[f"{prefix}/certified_accuracy"] = wandb.plot.line(
            table, "radius", "certified_accuracy", title=f"{label}: certified accuracy"
        )
        charts[f"{prefix}/per_class"] = wandb.Table(
            columns=["class", "accuracy"],
            data=list(enumerate(result.summary.per_class_accuracy)),
        )
    if len(results) > 1:
        charts["certify/idrs_vs_constant"] = wandb.plot.line_series(
            xs=grid.tolist(),
            ys=[curves[prefix].tolist() for prefix in results],
            keys=[curve_label(prefix, settings) for prefix in results],
            title=f"certified accuracy, epoch {settings['epoch']}",
            xname="radius",
        )
    charts["certify/curves_by_epoch"] = wandb.plot.line_series(
        xs=grid.tolist(),
        ys=[certified_accuracy(*result.curve(), grid).tolist() for _, result in history],
        keys=[f"epoch {epoch}" for epoch, _ in history],
        title=f"{curve_label('certify', settings)}: certified accuracy by epoch",
        xname="radius",
    )
    return charts


def log_run_to_wandb(
    out: Path,
    name: str,
    summary: CertificationSummary,
    results: Mapping[str, np.ndarray],
    project: str,
    offline: bool,
) -> None:
    """The certification run in W&B (job type ``certify``): flat config (the data settings at
    top level, as in training runs), scalars in the summary, the curve from the per-input
    radii, the plots, and its links: ``train_run_id`` (config) and group name the training run
    of the checkpoint, the results file and summary are an artifact of the run, and online the
    checkpoint is recorded as an artifact it used (W&B records uses online only). The run id is
    kept in ``out``, so a resumed certification continues the same W&B run."""
    import wandb

    settings = dict(summary.settings or {})
    config = {**{k: v for k, v in settings.items() if k != "data"}, **settings.get("data", {})}
    checkpoint = Path(str(settings["checkpoint"])).resolve()
    training = checkpoint.parent.parent / RUN_ID_FILE  # runs/<name>/checkpoints/<file>
    if training.exists():
        config["train_run_id"] = training.read_text().strip()
    run = init_run(
        offline,
        project=project,
        name=f"certify {name}",
        dir=str(out),
        config=flat_config(config),
        job_type="certify",
        group=os.environ.get(GROUP_VARIABLE) or config.get("train_run_id"),
        id=run_id(out),
        resume="allow",
    )
    run.summary.update(summary.scalars("certify"))
    radius, correct = np.asarray(results["radius"]), np.asarray(results["correct"], dtype=bool)
    grid = dense_radii([radius])
    curve = _curve_table(grid, certified_accuracy(radius, correct, grid))
    images = {f"plots/{p.stem}": wandb.Image(str(p)) for p in sorted(out.glob("*.png"))}
    chart = wandb.plot.line(
        curve, "radius", "certified_accuracy", title=f"certified accuracy, {name}"
    )
    run.log({"certify/certified_accuracy": chart, **images})
    if not run.offline:  # W&B records artifact uses online only
        model = wandb.Artifact(f"checkpoint-{settings['checkpoint_sha256'][:12]}", type="model")
        model.add_reference(checkpoint.as_uri(), checksum=False)
        run.use_artifact(model)
    produced = wandb.Artifact(f"results-{run.id}", type="certification-results")
    produced.add_file(str(out / "results.tsv"))
    produced.add_file(str(out / "summary.json"))
    run.log_artifact(produced)
    run.finish()


@dataclass
class CertifiedEpochLog:
    """The certified epochs of one training run in W&B: one row per epoch (the scalars with
    the epoch's charts, ``epoch`` as their x-axis), metrics declared once per run with
    best-value summaries, and the callback's options in the run config."""

    best: dict[str, float] = field(default_factory=dict)  # best value of each scalar so far
    declared: set[tuple[int, str]] = field(default_factory=set)  # (W&B run id(), scalar)

    def log(
        self,
        experiment: Any,
        values: Mapping[str, float],
        charts: Mapping[str, Any],
        config: Mapping[str, Any],
    ) -> None:
        """Log one certified epoch's ``values`` (with ``epoch``) and ``charts``."""
        new = [name for name in values if (id(experiment), name) not in self.declared]
        if new:
            define_certification_metrics(experiment, [n for n in new if n != "epoch"])
            experiment.config.update(flat_config(config), allow_val_change=True)
            self.declared.update((id(experiment), name) for name in new)
        experiment.log({**values, **charts})
        scalars_only = {k: v for k, v in values.items() if k != "epoch"}
        experiment.summary.update(summary_entries(self.best, scalars_only))
