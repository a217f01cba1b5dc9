"""Exact k-nearest-neighbour mean distances, the statistic of the IDRS noise level (Eq. 1).

Distances are Euclidean (not squared) in the space where noise is added: flattened,
unnormalised inputs. Candidates come from faiss ``IndexFlatL2`` or from a chunked torch matrix
product ``|q|^2 - 2 q.b + |b|^2`` with top-k. ``backend="auto"`` takes faiss on the GPU when
CUDA and GPU faiss are present, and torch otherwise: on a 2-core CPU, faiss-cpu 1.15's
IndexFlatL2 measured 2-3x slower than torch's search for CIFAR-10 shapes, and torch 1.8-2.5x
the bare matrix products of its own chunks (``bench/knn_sigma.py --scale 0.25``). Either way the
``k`` winners are then re-ranked with distances recomputed in float64 from the raw vectors,
so the returned mean is exact up to float64 rounding (the float32 expansion
``|q|^2 - 2 q.b + |b|^2`` alone loses about 1e-4 in squared distance on image data), and a
rigorous float32 error bound proves that no point outside the candidates is nearer; rows
where it cannot are searched again with more candidates (:func:`k_nearest_exact`).
Queries are processed in chunks, so memory is bounded by ``chunk_size x database``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal

import numpy as np
import torch
from numpy.typing import NDArray

Backend = Literal["auto", "faiss", "torch"]
# (queries, count) -> float32 squared distances and indices of the count nearest database
# points, each of shape (len(queries), count)
Search = Callable[[NDArray[np.float32], int], tuple[NDArray, NDArray[np.int64]]]
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


def flat_rows(data: NDArray) -> NDArray[np.float32]:
    """Each row of ``(n, ...)`` flattened into a contiguous float32 ``(n, features)`` array: the
    layout the in-memory and the sharded searches take."""
    return np.ascontiguousarray(np.asarray(data, dtype=np.float32).reshape(len(data), -1))


def _faiss_search(database: NDArray[np.float32], use_gpu: bool) -> Search:
    index = faiss.IndexFlatL2(database.shape[1])
    if use_gpu and _gpu_faiss():
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    index.add(database)

    def search(queries: NDArray[np.float32], count: int) -> tuple[NDArray, NDArray[np.int64]]:
        squared, indices = index.search(queries, count)
        return squared.astype(np.float64), indices

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
    query = flat_rows(queries)
    base = flat_rows(database)
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
    on = torch.device(device or ("cuda" if cuda else "cpu"))
    search = _faiss_search(base, use_gpu=cuda) if use_faiss else None
    base_tensor = None if use_faiss else torch.from_numpy(base).to(on)
    result = np.empty(len(query), dtype=np.float64)
    for start in range(0, len(query), chunk_size):
        chunk = query[start : start + chunk_size]
        chunk64 = chunk.astype(np.float64)
        own = self_index[start : start + len(chunk)] if leave_out else None
        if search is None:
            nearest = k_nearest_exact(
                chunk, chunk64, base, 0, own, np.empty((len(chunk), 0)), k, on, base_tensor
            )
        else:
            nearest = _faiss_exact(search, chunk, chunk64, base, own, k)
        result[start : start + len(chunk)] = nearest.mean(axis=1)
    return result


def _faiss_exact(
    search: Search,
    chunk: NDArray[np.float32],
    chunk64: NDArray[np.float64],
    base: NDArray[np.float32],
    own: NDArray[np.int64] | None,
    k: int,
) -> NDArray[np.float64]:
    """faiss's ``k + 4`` (+1) candidates re-ranked in float64; rows where a point outside them
    might be nearer (faiss's float32 squared distance of the last candidate, less its error
    bound ``g (|q| + |b|)^2``, not above the ``k``-th exact one) are searched again with
    :func:`k_nearest_exact` on the CPU."""
    count = min(k + _SPARE_CANDIDATES + (0 if own is None else 1), len(base))
    approximate, candidates = search(chunk, count)
    distance = exact_distances(chunk64, base, candidates)
    if own is not None:
        distance = np.where(candidates == own[:, None], np.inf, distance)
    nearest = merge_smallest([distance], k)
    factor = float32_error_factor(chunk.shape[1])
    widest = float(np.einsum("ij,ij->i", base, base, dtype=np.float64).max()) * (1 + factor)
    query_norm = np.sqrt(np.einsum("ij,ij->i", chunk64, chunk64))
    rest = approximate[:, -1] - factor * (query_norm + np.sqrt(widest)) ** 2
    unsure = np.flatnonzero((rest <= nearest[:, -1] ** 2) & (count < len(base)))
    if len(unsure):
        nearest[unsure] = k_nearest_exact(
            chunk[unsure],
            chunk64[unsure],
            base,
            0,
            None if own is None else own[unsure],
            np.empty((len(unsure), 0)),
            k,
            torch.device("cpu"),
        )
    return nearest


def exact_distances(
    queries: NDArray[np.float32] | NDArray[np.float64],
    base: NDArray[np.float32],
    candidates: NDArray[np.int64],
    keep: NDArray[np.bool_] | None = None,
) -> NDArray[np.float64]:
    """Euclidean distances in float64 from each query row to its candidate ``base`` rows
    (shape of ``candidates``; +inf where ``keep`` is False), one candidate column at a time
    (memory: queries x features). Each distance is a function of its two vectors only,
    whatever the batch around it (float32 queries given in float64 are the same)."""
    query = np.asarray(queries, dtype=np.float64)
    distance = np.full(candidates.shape, np.inf)
    for column in range(candidates.shape[1]):
        rows = slice(None) if keep is None else np.flatnonzero(keep[:, column])
        diff = base[candidates[rows, column]].astype(np.float64) - query[rows]
        distance[rows, column] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return distance


@contextmanager
def ieee_float32_matmul() -> Iterator[None]:
    """Matrix products in IEEE float32, not TF32 or bf16 (``torch.set_float32_matmul_
    precision("highest")`` for the block): the candidate ranking and its error bound assume
    float32's 24-bit significand."""
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


def float32_error_factor(features: int) -> float:
    """``g`` with ``|fl(|b|^2 - 2 q.b) - (|b|^2 - 2 q.b)| <= g (|b|^2 + 2 |q| |b|)`` and
    ``|fl(|q - b|^2) - |q - b|^2| <= g (|q| + |b|)^2`` for float32 vectors of ``features``
    entries, in any summation order: Higham's ``gamma_n = n u / (1 - n u)`` (u = 2^-24) for the
    dot products and sums of squares, ``n = features + 2`` for the final additions, doubled for
    margin."""
    n, u = features + 2, 2.0**-24
    return 2.0 * n * u / (1.0 - n * u)


def merge_smallest(parts: list[NDArray[np.float64]], k: int) -> NDArray[np.float64]:
    """The ``k`` smallest values of each row over ``parts``, sorted."""
    return np.sort(np.concatenate(parts, axis=1), axis=1)[:, :k]


def k_nearest_exact(
    query: NDArray[np.float32],
    query64: NDArray[np.float64],
    base: NDArray[np.float32],
    base_start: int,
    own_rows: NDArray[np.int64] | None,
    best: NDArray[np.float64],
    k: int,
    device: torch.device,
    base_tensor: torch.Tensor | None = None,
) -> NDArray[np.float64]:
    """The ``k`` smallest exact (float64) distances from each query row to the database rows
    ``base`` (numbered from ``base_start``) and the running ``best``, sorted; a query's own row
    (``own_rows``) is left out. Provably exact, not only up to float32 ranking errors.

    The float32 scores ``s = |b|^2 - 2 q.b`` (IEEE float32; error at most ``e = g (|b|^2 + 2
    |q| |b|)``, :func:`float32_error_factor`) give ``|q|^2 + s -+ e`` as bounds on each squared
    distance. Of the ``k + 4`` best-scored candidates, those whose lower bound exceeds ``T``, the
    ``k``-th smallest of the running best and the candidates' upper bounds, are farther than
    ``k`` other points and are skipped; the rest are re-ranked in float64. Where a point outside
    the candidates might still lie within ``T`` (its score is at least the last candidate's),
    the row is searched again with 8 times as many candidates, up to all of ``base``.
    """
    size = len(base)
    b = torch.from_numpy(base).to(device) if base_tensor is None else base_tensor
    q = torch.from_numpy(query).to(device)
    base_sq = (b * b).sum(dim=1)
    with ieee_float32_matmul():
        partial = torch.addmm(base_sq, q, b.T, alpha=-2.0)
    if own_rows is not None:  # a query's own row is no candidate
        inside = np.flatnonzero((own_rows >= base_start) & (own_rows < base_start + size))
        rows = torch.from_numpy(inside).to(device)
        columns = torch.from_numpy(own_rows[inside] - base_start).to(device)
        partial[rows, columns] = torch.inf
    factor = float32_error_factor(query.shape[1])
    norm_sq = base_sq.cpu().numpy().astype(np.float64) * (1.0 + factor)  # >= |b|^2
    widest = float(norm_sq.max())
    query_sq = np.einsum("ij,ij->i", query64, query64)[:, None]
    width = min(k, best.shape[1] + size)
    result = np.full((len(query), width), np.inf)
    pending = np.arange(len(query))
    count = min(k + _SPARE_CANDIDATES, size)
    while len(pending):
        found = partial[torch.from_numpy(pending).to(device)].topk(count, dim=1, largest=False)
        scores, candidates = (t.cpu().numpy().astype(np.float64) for t in found)
        candidates = candidates.astype(np.int64)
        qsq = query_sq[pending]
        error = factor * (norm_sq[candidates] + 2.0 * np.sqrt(qsq * norm_sq[candidates]))
        upper = merge_smallest([best[pending] ** 2, qsq + scores + error], k)
        threshold = upper[:, -1:] if upper.shape[1] == k else np.full((len(pending), 1), np.inf)
        keep = qsq + scores - error <= threshold
        distance = exact_distances(query64[pending], base, candidates, keep)
        if own_rows is not None:
            own = own_rows[pending, None] - base_start
            distance = np.where(candidates == own, np.inf, distance)
        merged = merge_smallest([best[pending], distance], k)
        rest = qsq[:, 0] + scores[:, -1] - factor * (widest + 2.0 * np.sqrt(qsq[:, 0] * widest))
        settled = (rest > threshold[:, 0]) | (count == size)
        result[pending[settled], : merged.shape[1]] = merged[settled]
        pending = pending[~settled]
        count = min(size, count * 8)
    return result
