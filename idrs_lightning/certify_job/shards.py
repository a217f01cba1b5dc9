"""The job's shards: each process certifies every ``world``-th input into its own results
file (``torchrun``: ``RANK``/``WORLD_SIZE``), and rank 0 merges the files once all are done."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from idrs_lightning.certify_job.opening import CertifyJob
from idrs_lightning.certify_job.results import (
    ResultsWriter,
    certificate_row,
    completed_indices,
    dual_certificate_row,
    merge,
)
from idrs_lightning.smoothing import certify_groups
from idrs_lightning.smoothing.dual import DualSmooth

#: Inputs a dual run certifies together (router and experts fill their forward passes).
DUAL_GROUP = 40


def certify_shard(job: CertifyJob, rank: int, world: int) -> None:
    """Certify this process's inputs (every ``world``-th from ``rank`` on) not yet in its
    results file, appending row by row."""
    config, rules = job.config, job.rules
    merged = job.out / "results.tsv"
    distributed = world > 1
    part = job.out / f"results.rank{rank}.tsv" if distributed else merged
    shard = job.indices[rank::world]
    # rows merged by an earlier distributed run are done too (its shard files are gone)
    finished = completed_indices(merged, rules) if distributed else set()
    with ResultsWriter(part, rules) as writer:
        todo = [i for i in shard if i not in writer.done and i not in finished]
        dual = isinstance(job.smooth, DualSmooth)
        inputs = job.datamodule.certification_inputs(todo, constant=config.constant or dual)
        xs, labels = inputs.x.to(job.device), inputs.y if config.skip_misclassified else None
        if dual:
            groups = _dual_groups(job.smooth, xs, todo, labels)
        else:
            groups = certify_groups(job.smooth, xs, inputs.sigma, todo, labels)
        with tqdm(total=len(todo), desc="certify", disable=rank != 0, unit="input") as progress:
            done, start = 0, time.perf_counter()
            for certificates in groups:
                now = time.perf_counter()
                seconds, start = (now - start) / len(certificates), now
                for cert in certificates:
                    row = (todo[done], int(inputs.y[done]), cert, seconds)
                    if dual:
                        writer.write(**dual_certificate_row(*row, job.rules.num_classes))
                    else:
                        writer.write(**certificate_row(*row))
                    done += 1
                progress.update(len(certificates))


def _dual_groups(
    dual: DualSmooth, xs: torch.Tensor, indices: list[int], labels: np.ndarray | None
) -> Iterator[list]:
    """Dual CERTIFY, :data:`DUAL_GROUP` inputs at a time, so rows are written as they come."""
    for first in range(0, len(xs), DUAL_GROUP):
        chosen = slice(first, first + DUAL_GROUP)
        yield dual.certify_many(
            xs[chosen], indices[chosen], None if labels is None else labels[chosen]
        )


def merge_shards(out: Path, rank: int, world: int) -> None:
    """Rank 0 merges the shard files into ``results.tsv`` once every rank is done."""
    dist.barrier()
    if rank == 0:
        merged = out / "results.tsv"
        parts = [out / f"results.rank{r}.tsv" for r in range(world)]
        merge([merged, *parts] if merged.exists() else parts, merged)
        for shard_file in parts:  # merged: the shard files are no longer needed
            shard_file.unlink()
    dist.barrier()
