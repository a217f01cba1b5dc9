"""The exact kNN mean distance of Eq. 1 over data that do not fit in memory, sharded by process.

Queries and database are read in chunks (``rows(indices)`` of any source: an image folder
decoded per chunk, a memory-mapped array). Each process (``torchrun``: one ``torch.distributed``
rank) searches its contiguous shard of the database: for a query chunk and each database chunk,
:func:`~idrs_lightning.sigma.knn.k_nearest_exact` merges the chunk's exact nearest into the running
``k`` smallest; the ranks' ``k`` smallest are then merged with ``all_gather``. Each distance depends
on its two vectors only, so the result equals the in-memory search of
:func:`~idrs_lightning.sigma.knn.mean_knn_distance` whatever the chunk sizes and the number of
processes. Memory per process: ``query_chunk x (features + database_chunk)`` plus the result.

Progress is kept per query chunk in a directory (rank 0 writes each chunk's means atomically),
so a killed run resumes after its last finished chunk.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.distributed as dist
from numpy.typing import NDArray

from idrs_lightning.sigma.knn import flat_rows, k_nearest_exact, merge_smallest

log = logging.getLogger(__name__)


class RowSource(Protocol):
    """Data read by rows: an image folder, an array, a memory-mapped file."""

    def __len__(self) -> int: ...

    def rows(self, indices: NDArray[np.int64]) -> NDArray[np.float32]: ...


def shard(size: int, rank: int, world: int) -> range:
    """Rank ``rank``'s contiguous part of ``range(size)`` (sizes differ by at most one)."""
    return range(size * rank // world, size * (rank + 1) // world)


def rank_and_size() -> tuple[int, int]:
    """``(rank, world size)`` of ``torch.distributed``, ``(0, 1)`` outside it."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _device(device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    if dist.is_available() and dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())  # the rank's own GPU
    if torch.cuda.is_available():
        return torch.device(
            "cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count()
        )
    return torch.device("cpu")


def _gather(best: NDArray[np.float64], k: int, world: int, device: torch.device) -> NDArray:
    """The ``k`` smallest over every rank's ``best`` (rows padded with +inf to ``k``)."""
    if world == 1:
        return best
    padded = np.full((len(best), k), np.inf)
    padded[:, : best.shape[1]] = best
    on = device if dist.get_backend() == "nccl" else torch.device("cpu")
    local = torch.from_numpy(padded).to(on)
    gathered = [torch.empty_like(local) for _ in range(world)]
    dist.all_gather(gathered, local)
    return merge_smallest([part.cpu().numpy() for part in gathered], k)


class _Progress:
    """Finished query chunks, one ``.npy`` file each, under a directory tied to one key."""

    def __init__(self, directory: Path | None, key: str, rank: int) -> None:
        self.directory, self.rank = directory, rank
        if directory is None or rank != 0:
            return
        marker = directory / "key.json"
        if directory.exists() and (not marker.exists() or marker.read_text() != key):
            log.warning("kNN progress in %s is for other data or chunks; starting over", directory)
            shutil.rmtree(directory)
        directory.mkdir(parents=True, exist_ok=True)
        marker.write_text(key)

    def finished(self, world: int) -> dict[int, NDArray[np.float64]]:
        """Rank 0's finished chunks (start row -> means), given to every rank."""
        done: dict[int, NDArray[np.float64]] = {}
        if self.directory is not None and self.rank == 0:
            for file in sorted(self.directory.glob("chunk-*.npy")):
                try:
                    done[int(file.stem.removeprefix("chunk-"))] = np.load(file)
                except (ValueError, OSError):  # a damaged file is computed again
                    log.warning("kNN progress file %s is unreadable; recomputing it", file)
        if world > 1:
            box = [done]
            dist.broadcast_object_list(box, src=0)
            done = box[0]
        if done:
            log.info("kNN: %d query chunks already done, resuming", len(done))
        return done

    def save(self, start: int, means: NDArray[np.float64]) -> None:
        if self.directory is None or self.rank != 0:
            return
        final = self.directory / f"chunk-{start:012d}.npy"
        temporary = final.with_suffix(".tmp.npy")
        np.save(temporary, means)
        os.replace(temporary, final)


def streamed_mean_knn_distance(
    queries: RowSource,
    database: RowSource,
    k: int,
    *,
    self_index: NDArray[np.int64] | None = None,
    query_chunk: int = 1024,
    database_chunk: int = 4096,
    device: str | torch.device | None = None,
    progress_dir: Path | None = None,
    progress_key: str = "",
) -> NDArray[np.float64]:
    """Mean Euclidean distance from each query to its ``k`` nearest database rows, exact.

    Args:
        queries, database: row sources with the same number of features per row.
        k: neighbours, ``1 <= k <= len(database)`` (one less with ``self_index``).
        self_index: the database row each query is (leave-one-out), or ``None``.
        query_chunk, database_chunk: rows held at once (memory, not results).
        device: where the float32 ranking runs (default: this rank's GPU, else CPU).
        progress_dir: where finished query chunks are kept for resuming (``None``: nowhere);
            removed by the caller once the result is stored.
        progress_key: what the progress belongs to; other progress there is discarded.

    Returns:
        float64 means, one per query, on every rank.
    """
    n_database = len(database)
    leave_out = self_index is not None
    available = n_database - (1 if leave_out else 0)
    if not 1 <= k <= available:
        raise ValueError(f"k must lie in [1, {available}] for this database, got {k}")
    if query_chunk < 1 or database_chunk < 1:
        raise ValueError("query_chunk and database_chunk must be >= 1")
    rank, size = rank_and_size()
    on = _device(device)
    mine = shard(n_database, rank, size)
    key = json.dumps({"key": progress_key, "query_chunk": query_chunk, "k": k})
    progress = _Progress(progress_dir, key, rank)
    done = progress.finished(size)
    result = np.empty(len(queries), dtype=np.float64)
    for start in range(0, len(queries), query_chunk):
        stop = min(start + query_chunk, len(queries))
        if start in done and len(done[start]) == stop - start:
            result[start:stop] = done[start]
            continue
        query = flat_rows(queries.rows(np.arange(start, stop)))
        query64 = query.astype(np.float64)
        own = None if self_index is None else np.asarray(self_index[start:stop], dtype=np.int64)
        best = np.full((stop - start, 0), np.inf)
        for base_start in range(mine.start, mine.stop, database_chunk):
            base_stop = min(base_start + database_chunk, mine.stop)
            base = flat_rows(database.rows(np.arange(base_start, base_stop)))
            if base.shape[1] != query.shape[1]:
                raise ValueError(
                    f"queries have {query.shape[1]} features but the database has {base.shape[1]}"
                )
            best = k_nearest_exact(query, query64, base, base_start, own, best, k, on)
        best = _gather(best, k, size, on)
        means = best.mean(axis=1)
        result[start:stop] = means
        progress.save(start, means)
    return result
