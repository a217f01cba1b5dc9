"""Fixed, seeded, class-stratified subsets of a data set.

Certification is expensive (``n`` forward passes per input), so evaluations run on a subset of
the test split, as in Cohen et al. (2019) and the IDRS paper (Section 7, Appendix E). The subset
must be the same on every run and every machine, so that results of different runs and of
restarted runs refer to the same inputs.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from idrs_lightning.validation import check_int, check_seed

# SplitMix64 constants (Steele, Lea and Flood, "Fast splittable pseudorandom number generators",
# OOPSLA 2014): a fixed bijective integer hash, independent of NumPy's generator streams.
_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def stratified_subset(labels: ArrayLike, size: int, seed: int) -> NDArray[np.intp]:
    """Indices of a fixed, seeded, class-stratified subset of ``size`` samples.

    Parameters
    ----------
    labels : array_like, shape (n,)
        Class label of every sample (any values that :func:`numpy.unique` can sort).
    size : int, ``1 <= size <= n``
        Number of indices to return.
    seed : int, ``0 <= seed < 2**64``
        Selects which samples of each class are taken.

    Returns
    -------
    ndarray of intp, shape (size,)
        Sorted, distinct indices into ``labels``.

    Raises
    ------
    ValueError
        If ``labels`` is not one-dimensional, or ``size`` or ``seed`` is out of range.

    Notes
    -----
    Allocation is proportional with largest-remainder (Hamilton) rounding: class ``c`` with
    ``n_c`` of the ``n`` samples gets ``floor(size * n_c / n)`` indices, and the ``size`` minus
    their sum remaining indices go one each to the classes with the largest remainders
    ``size * n_c mod n`` (exact integer arithmetic; ties go to the class that sorts first).
    Every class therefore gets at least ``floor(size * n_c / n)`` and at most
    ``ceil(size * n_c / n)`` indices, and never more than it has; a class whose share
    ``size * n_c / n`` is below one may get none.

    Within a class the samples with the smallest keys ``splitmix64(seed + (i + 1) * gamma)``
    are taken, ``i`` being the sample's index. The hash is a bijection on 64-bit integers, so the
    keys never tie and the result depends only on ``labels``, ``size`` and ``seed``: not on
    NumPy's random streams, the platform or the library version.
    """
    values = np.asarray(labels)
    if values.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {values.shape}")
    size = check_int("size", size, 1, values.size)
    keys = _hash_keys(values.size, check_seed("seed", seed))
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    quota = _largest_remainder(counts, size)
    order = np.lexsort((keys, inverse))  # by class, then by key within the class
    starts = np.cumsum(counts) - counts
    rank_in_class = np.arange(values.size) - np.repeat(starts, counts)
    chosen = order[rank_in_class < np.repeat(quota, counts)]
    return np.sort(chosen).astype(np.intp, copy=False)


def _largest_remainder(counts: NDArray[np.intp], size: int) -> NDArray[np.intp]:
    """Hamilton apportionment of ``size`` seats to classes of the given sizes."""
    total = int(counts.sum())
    exact = counts.astype(np.int64) * size
    quota = exact // total
    remainder = exact - quota * total
    order = np.argsort(-remainder, kind="stable")
    quota[order[: size - int(quota.sum())]] += 1
    return quota


def _hash_keys(n: int, seed: int) -> NDArray[np.uint64]:
    """The first ``n`` outputs of SplitMix64 started at ``seed`` (wrapping 64-bit arithmetic)."""
    state = np.uint64(seed) + (np.arange(1, n + 1, dtype=np.uint64) * _GAMMA)
    state = (state ^ (state >> np.uint64(30))) * _MIX1
    state = (state ^ (state >> np.uint64(27))) * _MIX2
    return state ^ (state >> np.uint64(31))
