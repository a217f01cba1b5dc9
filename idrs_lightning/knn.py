"""Exact k-nearest-neighbour mean distances, the statistic of the IDRS noise level (Eq. 1).

Distances are Euclidean (not squared) in the space where noise is added: flattened,
unnormalised inputs. Candidates come from faiss ``IndexFlatL2`` or from a chunked torch matrix
product ``|q|^2 - 2 q.b + |b|^2`` with top-k. ``backend="auto"`` takes faiss on the GPU when
CUDA and GPU faiss are present, and torch otherwise: on a 2-core CPU, faiss-cpu 1.15's
IndexFlatL2 measured 2-3x slower than torch's search for CIFAR-10 shapes, and torch 1.8-2.5x
the bare matrix products of its own chunks (``bench/knn_sigma.py --scale 0.25``). Either way the
``k`` winners are then re-ranked with distances recomputed in float64 from the raw vectors,
so the returned mean is exact up to float64 rounding (the float32 expansion
``|q|^2 - 2 q.b + |b|^2`` alone loses about 1e-4 in squared distance on image data).
Queries are processed in chunks, so memory is bounded by ``chunk_size x database``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
from numpy.typing import NDArray

Backend = Literal["auto", "faiss", "torch"]
# (queries, count) -> indices of the count nearest database points, shape (len(queries), count)
Search = Callable[[NDArray[np.float32], int], NDArray[np.int64]]
# Extra candidates fetched beyond k, so that float32 near-ties at the k-th place are resolved
# by the float64 re-ranking.
_SPARE_CANDIDATES = 4

try:  # faiss is an optional dependency (extras "faiss" / "faiss-gpu")
    import faiss
except ImportError:  # pragma: no cover - exercised where faiss is not installed
    faiss = None


#: The searches of :func:`mean_knn_distance`; all are exact.
BACKENDS: tuple[str, ...] = ("auto", "faiss", "torch")


def check_exact_backend(backend: str) -> str:
    """``backend`` if it is one of :data:`BACKENDS`.

    Raises:
        ValueError: for anything else. sigma(x) must be the exact mean kNN distance: Theorem 8
            needs it r-semi-elastic, ``|log sigma(x) - log sigma(x')| <= r ||x - x'||``, which
            the exact distance to the k-th neighbours guarantees (it is 1-Lipschitz) and an
            approximate index (IVF, HNSW, PQ, LSH) does not, so certificates would not hold.
    """
    if backend not in BACKENDS:
        raise ValueError(
            f"knn_backend must be one of {', '.join(BACKENDS)} (exact searches), got "
            f"{backend!r}: an approximate index would not make sigma(x) r-semi-elastic, which "
            "Theorem 8 needs for the certificate"
        )
    return backend


def faiss_available() -> bool:
    """Whether the optional faiss package is importable."""
    return faiss is not None


def _gpu_faiss() -> bool:
    return faiss_available() and hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def _flat(data: NDArray) -> NDArray[np.float32]:
    return np.ascontiguousarray(np.asarray(data, dtype=np.float32).reshape(len(data), -1))


def _faiss_search(database: NDArray[np.float32], use_gpu: bool) -> Search:
    index = faiss.IndexFlatL2(database.shape[1])
    if use_gpu and _gpu_faiss():
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    index.add(database)

    def search(queries: NDArray[np.float32], count: int) -> NDArray[np.int64]:
        return index.search(queries, count)[1]

    return search


def _torch_search(database: NDArray[np.float32], device: torch.device) -> Search:
    base = torch.from_numpy(database).to(device)
    base_sq = (base * base).sum(dim=1)

    def search(queries: NDArray[np.float32], count: int) -> NDArray[np.int64]:
        q = torch.from_numpy(queries).to(device)
        # |b|^2 - 2 q.b ranks like |q - b|^2 (|q|^2 is constant per row)
        partial = torch.addmm(base_sq, q, base.T, alpha=-2.0)
        return partial.topk(count, dim=1, largest=False).indices.cpu().numpy()

    return search


def mean_knn_distance(
    queries: NDArray,
    database: NDArray,
    k: int,
    *,
    exclude_self: bool = False,
    self_index: NDArray[np.int64] | None = None,
    backend: Backend = "auto",
    chunk_size: int = 2048,
    device: str | torch.device | None = None,
) -> NDArray[np.float64]:
    """Mean Euclidean distance from each query to its ``k`` nearest database points.

    Parameters
    ----------
    queries, database : array_like, shape (n, ...) and (m, ...)
        Flattened internally; same number of features.
    k : int
        Number of neighbours, ``1 <= k <= m`` (``m - 1`` with ``exclude_self``).
    exclude_self : bool
        Queries are the database itself (same order); each point's own entry is left out
        (leave-one-out). Exact duplicates of a point still count as neighbours.
    self_index : array of int, optional
        Queries are database rows ``self_index`` (e.g. a sample of the training set); each is
        left out of its own neighbourhood. Implies leave-one-out.
    backend : {"auto", "faiss", "torch"}
        ``auto``: faiss when CUDA and GPU faiss are present, torch otherwise.
    chunk_size : int
        Queries per search call; peak memory is about ``chunk_size x m`` distances.
    device : torch device for the torch backend (default: CUDA when available); faiss uses
        the GPU when CUDA and GPU faiss are present.

    Returns
    -------
    ndarray of float64, shape (n,)
    """
    query = _flat(queries)
    base = _flat(database)
    if query.shape[1] != base.shape[1]:
        raise ValueError(
            f"queries have {query.shape[1]} features but the database has {base.shape[1]}"
        )
    if exclude_self:
        if len(query) != len(base):
            raise ValueError("exclude_self needs the queries to be the database itself")
        self_index = np.arange(len(base))
    if self_index is not None:
        self_index = np.asarray(self_index, dtype=np.int64)
        if self_index.shape != (len(query),) or not np.all(
            (0 <= self_index) & (self_index < len(base))
        ):
            raise ValueError("self_index must hold one database row per query")
    leave_out = self_index is not None
    available = len(base) - (1 if leave_out else 0)
    if not 1 <= k <= available:
        raise ValueError(f"k must lie in [1, {available}] for this database, got {k}")
    check_exact_backend(backend)
    if backend == "faiss" and not faiss_available():
        raise ValueError("backend 'faiss' requested but faiss is not installed")
    cuda = torch.cuda.is_available()
    use_faiss = backend == "faiss" or (backend == "auto" and cuda and _gpu_faiss())
    if use_faiss:
        search = _faiss_search(base, use_gpu=cuda)
    else:
        search = _torch_search(base, torch.device(device or ("cuda" if cuda else "cpu")))

    count = min(k + _SPARE_CANDIDATES + (1 if leave_out else 0), len(base))
    result = np.empty(len(query), dtype=np.float64)
    for start in range(0, len(query), chunk_size):
        chunk = query[start : start + chunk_size]
        candidates = search(chunk, count)
        result[start : start + len(chunk)] = _exact_mean(
            chunk,
            base,
            candidates,
            k,
            self_index[start : start + len(chunk)] if leave_out else None,
        )
    return result


def exact_distances(
    queries: NDArray[np.float32], base: NDArray[np.float32], candidates: NDArray[np.int64]
) -> NDArray[np.float64]:
    """Euclidean distances in float64 from each query row to its candidate ``base`` rows
    (shape of ``candidates``), one candidate column at a time (memory: queries x features).
    Each distance is a function of its two vectors only, whatever the batch around it."""
    query = queries.astype(np.float64)
    distance = np.empty(candidates.shape, dtype=np.float64)
    for column in range(candidates.shape[1]):
        diff = base[candidates[:, column]].astype(np.float64) - query
        distance[:, column] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return distance


def _exact_mean(
    chunk: NDArray[np.float32],
    base: NDArray[np.float32],
    candidates: NDArray[np.int64],
    k: int,
    own_rows: NDArray[np.int64] | None,
) -> NDArray[np.float64]:
    """Re-rank candidate neighbours with float64 distances; mean of the ``k`` smallest.

    One candidate column at a time, so memory stays at ``chunk x features``.
    """
    distance = exact_distances(chunk, base, candidates)
    if own_rows is not None:
        distance = np.where(candidates == own_rows[:, None], np.inf, distance)
    return np.sort(distance, axis=1)[:, :k].mean(axis=1)
