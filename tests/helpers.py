"""Helpers shared by several test modules."""

from __future__ import annotations

import numpy as np


def brute_force_mean_knn(
    queries: np.ndarray, database: np.ndarray, k: int, leave_out: bool
) -> np.ndarray:
    """Mean l2 distance to the k nearest database rows, in float64 by full pairwise distances
    (``leave_out``: queries are the database, and each row skips itself)."""
    q = queries.reshape(len(queries), -1).astype(np.float64)
    d = database.reshape(len(database), -1).astype(np.float64)
    distances = np.sqrt(((q[:, None, :] - d[None, :, :]) ** 2).sum(axis=2))
    if leave_out:
        np.fill_diagonal(distances, np.inf)
    return np.sort(distances, axis=1)[:, :k].mean(axis=1)
