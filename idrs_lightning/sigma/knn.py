"""Exact k-nearest-neighbour mean distances, the statistic of the IDRS noise level (Eq. 1).

Distances are Euclidean (not squared) in the space where noise is added: flattened,
unnormalised inputs. Candidates come from faiss ``IndexFlatL2`` or from a chunked torch matrix
product ``|q|^2 - 2 q.b + |b|^2`` with top-k, both on copies of the vectors shifted by the
database mean (distances do not change; the float32 error bound, which scales with the norms,
tightens about fourfold on image data). ``backend="auto"`` takes faiss on the GPU when CUDA and
GPU faiss are present, and torch otherwise. Either way the candidates that may be among the
``k`` nearest are re-ranked with distances recomputed in float64 from the raw vectors, so the
returned mean is exact up to float64 rounding (the float32 expansion ``|q|^2 - 2 q.b + |b|^2``
alone loses about 1e-4 in squared distance on image data), and a rigorous float32 error bound
(shift included) proves that no point outside the candidates is nearer; rows where it cannot
are searched again with more candidates (:func:`k_nearest_exact`). On a 2-core CPU both run
within about 1.1-1.5x the bare matrix products of the torch search's chunks
(``bench/knn_sigma.py --scale 0.25``). Queries are processed in chunks, so memory is bounded by
``chunk_size x database`` plus one centred copy of the database.
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
_SPARE_CANDIDATES = 12
# Bytes of the float32 rows and float64 differences that exact_distances keeps per block.
_PAIR_BLOCK_BYTES = 1 << 20

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


class CenteredBase:
    """A database prepared for the float32 candidate search: its rows shifted by their mean.

    Distances do not change under a common shift, but the float32 error bound of
    :func:`float32_error_factor` scales with the vectors' norms: centred image data have about a
    quarter of the squared norm (CIFAR-10 and uniform noise alike), so the bound is about four
    times tighter and far fewer rows need a second search. The shift is rounded to float32
    (``b' = fl(b - c)``); :func:`shift_error` bounds what that moves a distance by, and the
    searches add it to their bounds. Candidates are still re-ranked from the raw vectors.
    """

    def __init__(self, base: NDArray[np.float32], device: torch.device) -> None:
        host = torch.from_numpy(base)
        raw = host.to(device)
        # any float32 vector is a valid centre; the mean makes the norms smallest
        center = raw.mean(dim=0) if len(base) else raw.new_zeros(base.shape[1])
        self.center = center.cpu().numpy()
        # shifted in place where the device holds a copy (one database on the device, not two)
        self.tensor = raw - center if raw.data_ptr() == host.data_ptr() else raw.sub_(center)
        with ieee_float32_matmul():  # a batched product: any summation order is bounded
            self.squared = torch.einsum("ij,ij->i", self.tensor, self.tensor)
        factor = float32_error_factor(base.shape[1])
        #: upper bounds on each row's squared centred norm |b'|^2, float64
        self.norm_sq = self.squared.cpu().numpy().astype(np.float64) * (1.0 + factor)
        self.widest = float(self.norm_sq.max(initial=0.0))

    def shift(self, query: NDArray[np.float32]) -> NDArray[np.float32]:
        """``fl(q - c)`` in float32, as the database rows were shifted."""
        return np.subtract(query, self.center, dtype=np.float32)


def shift_error(norm: NDArray[np.float64] | float) -> NDArray[np.float64] | float:
    """Bound on ``|(v - c) - fl(v - c)|`` for a float32 vector whose shifted copy has norm
    ``norm``: each entry is rounded once, by a relative ``u = 2^-24`` of the exact difference,
    so the error is at most ``u / (1 - u) |fl(v - c)|``; doubled for margin. A distance between
    two shifted copies is within the sum of their two errors of the raw vectors' distance."""
    u = 2.0**-24
    return 2.0 * u / (1.0 - u) * norm


def _faiss_search(
    database: NDArray[np.float32], use_gpu: bool
) -> tuple[Search, NDArray[np.float32], NDArray[np.float64]]:
    """A search over the database shifted by its mean (see :class:`CenteredBase`); also
    returns the mean, by which queries must be shifted too (rounded in float32 the same way),
    and upper bounds on the shifted rows' squared norms."""
    prepared = CenteredBase(database, torch.device("cpu"))
    center, norm_sq = prepared.center, prepared.norm_sq
    shifted = prepared.tensor.numpy()
    del prepared
    index = faiss.IndexFlatL2(database.shape[1])
    if use_gpu and _gpu_faiss():
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    index.add(shifted)
    del shifted

    def search(queries: NDArray[np.float32], count: int) -> tuple[NDArray, NDArray[np.int64]]:
        squared, indices = index.search(queries, count)
        return squared.astype(np.float64), indices

    return search, center, norm_sq


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
    if use_faiss:
        faiss_search = _faiss_search(base, use_gpu=cuda)
        prepared: list[CenteredBase] = []  # built only if some row needs the torch search
    else:
        centered = CenteredBase(base, on)
    result = np.empty(len(query), dtype=np.float64)
    for start in range(0, len(query), chunk_size):
        chunk = query[start : start + chunk_size]
        own = self_index[start : start + len(chunk)] if leave_out else None
        if use_faiss:
            nearest = _faiss_exact(faiss_search, prepared, chunk, base, own, k)
        else:
            nearest = k_nearest_exact(
                chunk, chunk, base, 0, own, np.empty((len(chunk), 0)), k, on, centered
            )
        result[start : start + len(chunk)] = nearest.mean(axis=1)
    return result


def _faiss_exact(
    faiss_search: tuple[Search, NDArray[np.float32], NDArray[np.float64]],
    prepared: list[CenteredBase],
    chunk: NDArray[np.float32],
    base: NDArray[np.float32],
    own: NDArray[np.int64] | None,
    k: int,
) -> NDArray[np.float64]:
    """faiss's ``k + spare`` (+1) candidates over the centred database, re-ranked in float64
    where they may be among the ``k`` nearest; rows where a point outside them might be nearer
    are searched again with :func:`k_nearest_exact` on the CPU (``prepared`` holds its
    centred database once built).

    faiss's float32 squared distance ``a`` of the centred vectors is within
    ``e = g (|q'| + |b'|)^2`` of their exact one (:func:`float32_error_factor`), and their
    distance within ``s = shift_error(|q'| + |b'|)`` of the raw vectors'. So each candidate
    lies within ``[sqrt(a - e) - s, sqrt(a + e) + s]``; those whose lower end exceeds the
    ``k``-th smallest upper end are skipped, the rest re-ranked exactly. Every point outside the
    candidates has ``a`` at least the last candidate's, and ``|b'|`` at most the widest.
    """
    search, center, norm_sq = faiss_search
    count = min(k + _SPARE_CANDIDATES + (0 if own is None else 1), len(base))
    shifted = np.subtract(chunk, center, dtype=np.float32)
    approximate, candidates = search(shifted, count)
    valid = candidates >= 0
    factor = float32_error_factor(chunk.shape[1])
    query_sq = np.einsum("ij,ij->i", shifted, shifted, dtype=np.float64)
    query_norm = np.sqrt(query_sq * (1.0 + 1e-12))[:, None]
    reach = query_norm + np.sqrt(norm_sq[np.where(valid, candidates, 0)])
    error, slack = factor * reach**2, shift_error(reach)
    upper = np.where(valid, np.sqrt(approximate + error) + slack, np.inf)
    lower = np.sqrt(np.maximum(approximate - error, 0.0)) - slack
    keep = valid
    if own is not None:
        keep = keep & (candidates != own[:, None])
        upper = np.where(keep, upper, np.inf)
    threshold = merge_smallest([upper], k)[:, -1:]
    distance = exact_distances(chunk, base, candidates, keep & (lower <= threshold))
    nearest = merge_smallest([distance], k)
    widest = query_norm[:, 0] + np.sqrt(norm_sq.max())
    outside = approximate[:, -1] - factor * widest**2
    rest = np.sqrt(np.maximum(outside, 0.0)) - shift_error(widest)
    unsure = np.flatnonzero((rest <= nearest[:, -1]) & (count < len(base)))
    if len(unsure):
        if not prepared:
            prepared.append(CenteredBase(base, torch.device("cpu")))
        nearest[unsure] = k_nearest_exact(
            chunk[unsure],
            chunk[unsure],
            base,
            0,
            None if own is None else own[unsure],
            np.empty((len(unsure), 0)),
            k,
            torch.device("cpu"),
            prepared[0],
        )
    return nearest


def exact_distances(
    queries: NDArray[np.float32] | NDArray[np.float64],
    base: NDArray[np.float32],
    candidates: NDArray[np.int64],
    keep: NDArray[np.bool_] | None = None,
) -> NDArray[np.float64]:
    """Euclidean distances in float64 from each query row to its candidate ``base`` rows
    (shape of ``candidates``; +inf where ``keep`` is False), in blocks of pairs small enough
    to stay in cache. Each distance is a function of its two vectors only, whatever the batch
    around it (float32 queries given in float64 are the same): the float64 difference of the
    two rows, its squares summed along the row by one ``einsum``, and the square root."""
    query = np.asarray(queries)
    if query.dtype != np.float32:
        query = query.astype(np.float64, copy=False)
    distance = np.full(candidates.shape, np.inf)
    rows, columns = np.nonzero(np.ones(candidates.shape, dtype=bool) if keep is None else keep)
    if rows.size == 0:
        return distance
    index = candidates[rows, columns]
    block = max(1, min(rows.size, _PAIR_BLOCK_BYTES // (12 * base.shape[1])))
    raw = np.empty((block, base.shape[1]), dtype=np.float32)
    diff = np.empty((block, base.shape[1]), dtype=np.float64)
    squared = np.empty(rows.size)
    for start in range(0, rows.size, block):
        stop = min(start + block, rows.size)
        size = stop - start
        np.take(base, index[start:stop], axis=0, out=raw[:size])
        np.subtract(raw[:size], query[rows[start:stop]], out=diff[:size], dtype=np.float64)
        squared[start:stop] = np.einsum("ij,ij->i", diff[:size], diff[:size])
    distance[rows, columns] = np.sqrt(squared)
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
    query64: NDArray[np.float32] | NDArray[np.float64],
    base: NDArray[np.float32],
    base_start: int,
    own_rows: NDArray[np.int64] | None,
    best: NDArray[np.float64],
    k: int,
    device: torch.device,
    centered: CenteredBase | None = None,
) -> NDArray[np.float64]:
    """The ``k`` smallest exact (float64) distances from each query row to the database rows
    ``base`` (numbered from ``base_start``) and the running ``best``, sorted; a query's own row
    (``own_rows``) is left out. Provably exact, not only up to float32 ranking errors.
    ``query64`` holds the same rows as ``query`` in float32 or float64 (the distances are the
    same: :func:`exact_distances` computes in float64 from either).

    Scores are computed on the centred vectors ``q' = fl(q - c)``, ``b' = fl(b - c)``
    (:class:`CenteredBase`, built here unless ``centered`` is given for ``base``): the float32
    score ``s = |b'|^2 - 2 q'.b'`` (IEEE float32; error at most ``e = g (|b'|^2 + 2 |q'|
    |b'|)``, :func:`float32_error_factor`) puts ``|q' - b'|`` within ``sqrt(|q'|^2 + s -+ e)``,
    and the raw distance is within ``shift_error(|q'| + |b'|)`` of that. Of the ``k + spare``
    best-scored candidates, those whose lower bound exceeds ``T``, the ``k``-th smallest of the
    running best and the candidates' upper bounds, are farther than ``k`` other points and are
    skipped; the rest are re-ranked in float64. Where a point outside the candidates might
    still lie within ``T`` (its score is at least the last candidate's, its ``|b'|`` at most
    the widest), the row is searched again with 8 times as many candidates, up to all of
    ``base``; distances already computed are reused.
    """
    size = len(base)
    prepared = CenteredBase(base, device) if centered is None else centered
    shifted = prepared.shift(query)
    q = torch.from_numpy(shifted).to(device)
    with ieee_float32_matmul():
        partial = torch.addmm(prepared.squared, q, prepared.tensor.T, alpha=-2.0)
    if own_rows is not None:  # a query's own row is no candidate
        inside = np.flatnonzero((own_rows >= base_start) & (own_rows < base_start + size))
        rows = torch.from_numpy(inside).to(device)
        columns = torch.from_numpy(own_rows[inside] - base_start).to(device)
        partial[rows, columns] = torch.inf
    factor = float32_error_factor(query.shape[1])
    norm_sq, widest = prepared.norm_sq, prepared.widest
    query_sq = np.einsum("ij,ij->i", shifted, shifted, dtype=np.float64)[:, None] * (1.0 + 1e-12)
    width = min(k, best.shape[1] + size)
    result = np.full((len(query), width), np.inf)
    pending = np.arange(len(query))
    count = min(k + _SPARE_CANDIDATES, size)
    known = np.full((len(query), 0), -1, dtype=np.int64)  # candidates already re-ranked
    known_distance = np.full((len(query), 0), np.inf)
    while len(pending):
        rows = (
            partial if len(pending) == len(query) else partial[torch.from_numpy(pending).to(device)]
        )
        found = rows.topk(count, dim=1, largest=False)
        scores, candidates = (t.cpu().numpy().astype(np.float64) for t in found)
        candidates = candidates.astype(np.int64)
        qsq = query_sq[pending]
        qn = np.sqrt(qsq)
        bn_sq = norm_sq[candidates]
        error = factor * (bn_sq + 2.0 * qn * np.sqrt(bn_sq))
        slack = shift_error(qn + np.sqrt(bn_sq))
        upper = np.sqrt(np.maximum(qsq + scores + error, 0.0)) + slack
        lower = np.sqrt(np.maximum(qsq + scores - error, 0.0)) - slack
        upper_k = merge_smallest([best[pending], upper], k)
        threshold = upper_k[:, -1:] if upper_k.shape[1] == k else np.full((len(pending), 1), np.inf)
        # distances re-ranked in the previous pass are reused
        match = candidates[:, :, None] == known[pending][:, None, :]
        earlier = np.where(match, known_distance[pending][:, None, :], np.inf).min(
            axis=2, initial=np.inf
        )
        reuse = np.isfinite(earlier)
        distance = exact_distances(
            query64[pending], base, candidates, (lower <= threshold) & ~reuse
        )
        distance = np.where(reuse, earlier, distance)
        if own_rows is not None:
            own = own_rows[pending, None] - base_start
            distance = np.where(candidates == own, np.inf, distance)
        merged = merge_smallest([best[pending], distance], k)
        reach = qn[:, 0] + np.sqrt(widest)
        outside = qsq[:, 0] + scores[:, -1] - factor * (widest + 2.0 * qn[:, 0] * np.sqrt(widest))
        rest = np.sqrt(np.maximum(outside, 0.0)) - shift_error(reach)
        settled = (rest > threshold[:, 0]) | (count == size)
        result[pending[settled], : merged.shape[1]] = merged[settled]
        grown = np.full((len(query), count), -1, dtype=np.int64)
        grown_distance = np.full((len(query), count), np.inf)
        grown[pending], grown_distance[pending] = candidates, distance
        known, known_distance = grown, grown_distance
        pending = pending[~settled]
        count = min(size, count * 8)
    return result
