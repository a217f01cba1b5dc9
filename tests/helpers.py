"""Helpers shared by several test modules."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

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


def wait_for_file(path: Path, process: subprocess.Popen, limit: float = 240.0) -> str:
    """The text of ``path`` once it appears, written by ``process`` while it runs (a gate of
    tests/user_models signalling that it holds). Fails if the process ends first; ``limit``
    seconds only guard against a hang."""
    deadline = time.monotonic() + limit
    while not path.exists():
        assert process.poll() is None, f"the process ended (status {process.returncode})"
        assert time.monotonic() < deadline, f"no {path} in {limit:.0f} s"
        time.sleep(0.05)
    return path.read_text()
