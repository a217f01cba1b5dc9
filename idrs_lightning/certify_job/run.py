"""The certification job behind ``certify.py``: certify a checkpoint's test inputs, row by row.

Inputs are sharded explicitly across processes (``torchrun``: ``RANK``/``WORLD_SIZE``), each
shard appends its rows to its own file as they are produced, and rank 0 merges them and
reports (:mod:`idrs_lightning.reporting.report`). A restarted run continues after the last
complete row of each shard; noise is seeded per input, so rows do not depend on restarts,
batch size or the number of processes.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch.distributed as dist

from idrs_lightning.certify_job.checkpoints import file_digest
from idrs_lightning.certify_job.config import CertifyConfig
from idrs_lightning.certify_job.opening import CertifyJob, open_job
from idrs_lightning.certify_job.output_claim import Claim, check_claim, claim_output
from idrs_lightning.certify_job.results import (
    check_results_file,
    check_rows,
    read_results,
    read_rows,
)
from idrs_lightning.certify_job.shards import certify_shard, merge_shards
from idrs_lightning.reporting.metrics import certification_summary
from idrs_lightning.reporting.report import write_run_report
from idrs_lightning.reporting.summary import CertificationSummary
from idrs_lightning.reporting.tables import run_name
from idrs_lightning.reporting.wandb_logging import discard_run, log_run_to_wandb, wandb_offline
from idrs_lightning.settings import CertificationSettings
from idrs_lightning.smoothing.dual import DualSmooth

log = logging.getLogger(__name__)


def run_certification(config: CertifyConfig) -> CertificationSummary | None:
    """Certify, write results, and (on rank 0) return the summary: open the job, claim the
    output directory, certify this process's shard, merge the shards and report."""
    rank = int(os.environ.get("RANK", 0))
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    job = open_job(config)
    claim = _claim(job) if rank == 0 else None
    try:
        if world > 1:
            dist.barrier()  # no rank appends before rank 0 has checked the directory
        certify_shard(job, rank, world)
        if world > 1:
            merge_shards(job.out, rank, world)
        summary = None if rank else _report(job)
    except BaseException:
        if claim is not None:
            claim.release()
        raise
    if claim is not None:
        claim.finish()
    return summary


def _claim(job: CertifyJob) -> Claim:
    """Check the output directory's record and rows (read only: a refused run changes
    nothing), then claim it for this run."""
    check_claim(job.out, job.record)
    for path in sorted(job.out.glob("results*.tsv")):
        if check_results_file(path):
            check_rows(path, read_rows(path), job.rules)
    return claim_output(job.out, job.record)


def _with_forward_passes(
    summary: CertificationSummary, results: dict, settings: CertificationSettings
) -> CertificationSummary:
    """``summary`` with its cost: base-classifier evaluations per input and in all (n0
    selection plus the estimation samples drawn, from the results file's ``samples`` column;
    in a dual run also the router's n0 + n, and no expert's where the router abstained), and
    the inputs whose estimation the evaluation shortcut skipped (``samples`` 0)."""
    samples = results.get("samples", np.full(len(results["idx"]), settings.n))
    routed = results["level"] >= 0 if "level" in results else np.ones(len(samples), dtype=bool)
    per_input = np.where(routed, settings.n0 + samples, 0)
    if "level" in results:
        per_input = per_input + settings.n0 + settings.n  # the router's selection + estimation
    total = float(np.sum(per_input))
    return replace(
        summary,
        forward_passes_mean=total / max(len(results["idx"]), 1),
        forward_passes_total=total,
        estimation_skipped=int(np.sum(routed & (samples == 0))),
    )


def _report(job: CertifyJob) -> CertificationSummary:
    """Summarise the merged results, write the report files and log the run to W&B."""
    config, datamodule, out, r = job.config, job.datamodule, job.out, job.r
    merged = out / "results.tsv"
    check_rows(merged, read_rows(merged), job.rules)
    results = read_results(merged)
    figures = certification_summary(
        results["label"], results["predict"], results["radius"], job.radii, datamodule.num_classes
    )
    dual = isinstance(job.smooth, DualSmooth)
    name = config.name or ("dual" if dual else run_name(r, config.settings.separate_pb))
    settings = {
        "r": r,
        **(_dual_settings(job.smooth) if dual else {}),
        "checkpoint_sha256": file_digest(config.checkpoint),
        **asdict(config.settings),
        **{k: v for k, v in asdict(config).items() if k not in ("settings", "data")},
        "data": {k: datamodule.hparams[k] for k in datamodule.hparams},
        "class_names": datamodule.class_names,
    }
    summary = replace(
        _with_forward_passes(figures, results, config.settings), name=name, settings=settings
    )
    write_run_report(out, name, summary, results)
    _log_to_wandb(out, name, summary, results, config.wandb_project)
    return summary


def _dual_settings(dual: DualSmooth) -> dict[str, object]:
    """A dual run's levels, router noise and the alpha of each stage."""
    return {
        "sigmas": dual.sigmas,
        "router_sigma": dual.router_sigma,
        "alpha_router": dual.router.settings.alpha,
        "alpha_classifier": dual.experts[0].settings.alpha,
    }


def _log_to_wandb(
    out: Path,
    name: str,
    summary: CertificationSummary,
    results: dict[str, np.ndarray],
    project: str,
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
