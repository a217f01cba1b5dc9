"""On-disk cache of mean kNN distances, keyed by everything that determines them.

The key holds the identities of the query and reference data (see
:class:`idrs_lightning.data.sources.ArraySplit`), ``k``, leave-one-out, and the distance space.
``sigma_b``, ``r``, ``m`` and the clamp are not part of it: they are re-applied to the cached
distances. A file whose stored key or length does not match, or that cannot be read, is
rebuilt with a warning naming it (never silently used), and so is one whose values do not
match their stored checksum; files are written atomically, so an interrupted write leaves no
half file behind, with the permissions of an ordinary file (a cache can be shared).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch.distributed as dist
from numpy.typing import NDArray

from idrs_lightning.sigma.knn import mean_knn_distance
from idrs_lightning.sigma.knn_streamed import RowSource, rank_and_size, streamed_mean_knn_distance

log = logging.getLogger(__name__)

# 3: the search is provably exact (entries of 2 could miss a neighbour at float32 near-ties)
_FORMAT_VERSION = 3
DISTANCE_SPACE = "euclidean/flattened-unnormalised-inputs"


def cache_key(query_identity: str, reference_identity: str, k: int, exclude_self: bool) -> str:
    """Canonical JSON of what determines the distances."""
    return json.dumps(
        {
            "version": _FORMAT_VERSION,
            "query": query_identity,
            "reference": reference_identity,
            "k": int(k),
            "leave_one_out": bool(exclude_self),
            "space": DISTANCE_SPACE,
        },
        sort_keys=True,
    )


def cache_path(cache_dir: str | os.PathLike, key: str) -> Path:
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return Path(cache_dir) / f"knn-{digest}.npz"


def _checksum(distances: NDArray[np.float64]) -> str:
    return hashlib.sha256(np.ascontiguousarray(distances, dtype=np.float64).tobytes()).hexdigest()


def _load(path: Path, key: str, length: int) -> NDArray[np.float64] | None:
    """The stored distances, or ``None`` (with a warning naming the file) when the entry is
    absent, unreadable, for other data, or its values do not match their checksum."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            stored_key = str(stored["key"])
            checksum = str(stored["checksum"])
            distances = np.asarray(stored["distances"], dtype=np.float64)
    except Exception as error:  # a damaged file of any kind (zip, npy, truncation) is rebuilt
        log.warning("kNN cache %s is unreadable (%s); rebuilding it", path, error)
        return None
    if stored_key != key or distances.shape != (length,) or not np.isfinite(distances).all():
        log.warning("kNN cache %s does not match the requested data; rebuilding it", path)
        return None
    if checksum != _checksum(distances):
        log.warning("kNN cache %s fails its checksum (edited?); rebuilding it", path)
        return None
    return distances


def _save(path: Path, key: str, distances: NDArray[np.float64]) -> None:
    """Write atomically, readable by everyone who can read the folder (a shared lab cache)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(
                file,
                key=np.array(key),
                distances=distances,
                checksum=np.array(_checksum(distances)),
            )
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _entry(
    cache_dir: str | os.PathLike,
    query_identity: str,
    reference_identity: str,
    k: int,
    exclude_self: bool,
    self_index: NDArray[np.int64] | None,
) -> tuple[str, Path]:
    """The key and file of a cache entry; with ``self_index`` the queries are those database
    rows, and their digest joins the key."""
    if self_index is not None:
        digest = hashlib.blake2b(np.asarray(self_index, dtype=np.int64).tobytes(), digest_size=16)
        query_identity = f"{query_identity}:rows={digest.hexdigest()}"
    key = cache_key(query_identity, reference_identity, k, exclude_self or self_index is not None)
    return key, cache_path(cache_dir, key)


def cached_mean_knn_distance(
    cache_dir: str | os.PathLike,
    queries: NDArray,
    query_identity: str,
    database: NDArray,
    reference_identity: str,
    k: int,
    *,
    exclude_self: bool = False,
    self_index: NDArray[np.int64] | None = None,
    **search_options: object,
) -> NDArray[np.float64]:
    """:func:`~idrs_lightning.sigma.knn.mean_knn_distance`, read from or written to ``cache_dir``.

    With ``self_index`` the queries are those database rows; their digest joins the key.
    """
    key, path = _entry(cache_dir, query_identity, reference_identity, k, exclude_self, self_index)
    distances = _load(path, key, len(queries))
    if distances is None:
        distances = mean_knn_distance(
            queries,
            database,
            k,
            exclude_self=exclude_self,
            self_index=self_index,
            **search_options,
        )
        _save(path, key, distances)
        log.info("kNN distances for %s (k=%d) cached in %s", query_identity, k, path)
    return distances


def cached_streamed_mean_knn_distance(
    cache_dir: str | os.PathLike,
    queries: RowSource,
    query_identity: str,
    database: RowSource,
    reference_identity: str,
    k: int,
    *,
    exclude_self: bool = False,
    self_index: NDArray[np.int64] | None = None,
    **chunks: object,
) -> NDArray[np.float64]:
    """:func:`~idrs_lightning.sigma.knn_streamed.streamed_mean_knn_distance` (sharded over the
    ``torch.distributed`` ranks, if any), read from or written to the same cache entry as the
    in-memory search (the distances are the same). Rank 0 reads and writes the file and gives
    the result to every rank; an interrupted computation resumes from ``<entry>.partial/``.
    """
    key, path = _entry(cache_dir, query_identity, reference_identity, k, exclude_self, self_index)
    if exclude_self:
        self_index = np.arange(len(queries))
    rank, size = rank_and_size()
    stored = [_load(path, key, len(queries)) if rank == 0 else None]
    if size > 1:
        dist.broadcast_object_list(stored, src=0)
    if stored[0] is not None:
        return stored[0]
    progress = path.with_suffix(".partial")
    distances = streamed_mean_knn_distance(
        queries,
        database,
        k,
        self_index=self_index,
        progress_dir=progress,
        progress_key=key,
        **chunks,
    )
    if rank == 0:
        _save(path, key, distances)
        shutil.rmtree(progress, ignore_errors=True)
        log.info("kNN distances for %s (k=%d) cached in %s", query_identity, k, path)
    if size > 1:
        dist.barrier()
    return distances
