"""The kNN precompute (``idrs_lightning.sigma.precompute``), held at a chosen point.

Run as the precompute, with its arguments (``torchrun ... -m tests.user_models.gated_precompute
--data.<name>=<value> ...``). Once the progress directories under the kNN cache the environment
names (``IDRS_TEST_KNN_CACHE``) hold ``IDRS_TEST_GATE_CHUNKS`` finished query chunks, every
rank holds in its next read of image rows, rank 0 after writing ``chunks=<n>`` to the file
``IDRS_TEST_GATE_READY`` names: a run stopped after that file appears is certainly stopped
mid-run, after exactly those chunks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from idrs_lightning.data.folders import FolderSplit
from idrs_lightning.sigma import precompute
from tests.user_models import hold

#: Finished query chunks (not the temporary files they are written through).
FINISHED = "*.partial/chunk-*[0-9].npy"

Rows = Callable[[FolderSplit, Sequence[int] | NDArray[np.int64]], NDArray[np.float32]]


def gated(rows: Rows, cache: Path, chunks: int, ready: str | None) -> Rows:
    """``FolderSplit.rows`` that holds once ``cache`` holds ``chunks`` finished chunks."""

    def rows_or_hold(
        split: FolderSplit, indices: Sequence[int] | NDArray[np.int64]
    ) -> NDArray[np.float32]:
        finished = len(list(cache.glob(FINISHED)))
        if finished >= chunks:
            hold(ready, f"chunks={finished}")
        return rows(split, indices)

    return rows_or_hold


def main() -> None:
    rank = int(os.environ.get("RANK", "0"))
    ready = os.environ["IDRS_TEST_GATE_READY"] if rank == 0 else None
    cache, chunks = (
        Path(os.environ["IDRS_TEST_KNN_CACHE"]),
        int(os.environ["IDRS_TEST_GATE_CHUNKS"]),
    )
    FolderSplit.rows = gated(FolderSplit.rows, cache, chunks, ready)  # type: ignore[method-assign]
    precompute.main()


if __name__ == "__main__":
    main()
