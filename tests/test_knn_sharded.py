"""The streamed, sharded exact kNN of Eq. 1: equal to the in-memory search and to brute force,
for any chunking and number of shards, resumable, and refusing approximate indexes. Real
processes (torchrun) are in tests/slow/test_knn_sharded_processes.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from idrs_lightning.data.arrays import ArraySplit
from idrs_lightning.data.datamodule import SmoothingDataModule
from idrs_lightning.sigma.knn import (
    CenteredBase,
    float32_error_factor,
    mean_knn_distance,
    shift_error,
)
from idrs_lightning.sigma.knn_streamed import shard, streamed_mean_knn_distance
from tests.helpers import brute_force_mean_knn


def _split(x: np.ndarray) -> ArraySplit:
    return ArraySplit(x, np.zeros(len(x), dtype=np.int64), 2, "random")


@pytest.fixture(scope="module")
def points() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    database = rng.random((300, 3 * 6 * 6), dtype=np.float32)
    database[7] = database[11]  # an exact duplicate counts as a neighbour
    database[40:44] = database[40]
    return rng.random((70, 3 * 6 * 6), dtype=np.float32), database


@pytest.mark.parametrize(("query_chunk", "database_chunk"), [(1024, 4096), (9, 31), (70, 1)])
def test_streamed_equals_in_memory_bit_for_bit(points, query_chunk, database_chunk) -> None:
    queries, database = points
    expected = mean_knn_distance(queries, database, 10, backend="torch")
    found = streamed_mean_knn_distance(
        _split(queries),
        _split(database),
        10,
        query_chunk=query_chunk,
        database_chunk=database_chunk,
    )
    np.testing.assert_array_equal(found, expected)
    np.testing.assert_allclose(
        found, brute_force_mean_knn(queries, database, 10, False), rtol=1e-14
    )


def test_leave_one_out_equals_in_memory_and_brute_force(points) -> None:
    database = points[1]
    expected = mean_knn_distance(database, database, 5, exclude_self=True, backend="torch")
    found = streamed_mean_knn_distance(
        _split(database),
        _split(database),
        5,
        self_index=np.arange(300),
        query_chunk=16,
        database_chunk=7,
    )
    np.testing.assert_array_equal(found, expected)
    np.testing.assert_allclose(found, brute_force_mean_knn(database, database, 5, True), rtol=1e-14)


def test_near_ties_at_the_kth_place_keep_the_exact_neighbours() -> None:
    """Points all but equidistant from the query (relative gaps near float32's resolution):
    the float32 ranking cannot tell them apart, the pruning bound must keep every one that
    may be among the k nearest."""
    rng = np.random.default_rng(5)
    query = rng.random((3, 192), dtype=np.float32)
    directions = rng.standard_normal((400, 192))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    radii = 1.0 + rng.uniform(-3e-7, 3e-7, 400)
    database = (query[0].astype(np.float64) + radii[:, None] * directions).astype(np.float32)
    expected = brute_force_mean_knn(query, database, 7, False)
    for chunk in (1, 13, 400):
        found = streamed_mean_knn_distance(
            _split(query), _split(database), 7, query_chunk=2, database_chunk=chunk
        )
        np.testing.assert_allclose(found, expected, rtol=1e-14)
        np.testing.assert_array_equal(found, mean_knn_distance(query, database, 7, backend="torch"))


def test_the_float32_error_bound_holds() -> None:
    rng = np.random.default_rng(6)
    for scale in (1.0, 1e3):
        q = (rng.standard_normal((50, 3072)) * scale).astype(np.float32)
        b = (rng.random((80, 3072)) * scale).astype(np.float32)
        qt, bt = torch.from_numpy(q), torch.from_numpy(b)
        computed = torch.addmm((bt * bt).sum(1), qt, bt.T, alpha=-2.0).double().numpy()
        q64, b64 = q.astype(np.float64), b.astype(np.float64)
        exact = (b64**2).sum(1)[None] - 2 * q64 @ b64.T
        nq, nb = np.linalg.norm(q64, axis=1)[:, None], np.linalg.norm(b64, axis=1)[None]
        bound = float32_error_factor(3072) * (nb**2 + 2 * nq * nb)
        assert np.all(np.abs(computed - exact) <= bound)


def test_the_centred_bounds_hold() -> None:
    # The searches rank candidates on centred copies q' = fl(q - c), b' = fl(b - c): the raw
    # distance must lie within sqrt(|q'|^2 + s -+ e) -+ shift_error(|q'| + |b'|).
    rng = np.random.default_rng(7)
    for offset, scale in ((0.0, 1.0), (100.0, 1e-3), (-3e3, 10.0)):
        b = (offset + scale * rng.random((90, 3072))).astype(np.float32)
        q = (offset + scale * rng.random((40, 3072))).astype(np.float32)
        centered = CenteredBase(b, torch.device("cpu"))
        shifted = centered.shift(q)
        qt = torch.from_numpy(shifted)
        scores = torch.addmm(centered.squared, qt, centered.tensor.T, alpha=-2.0).double().numpy()
        qsq = (shifted.astype(np.float64) ** 2).sum(1)[:, None]
        bsq = centered.norm_sq[None]
        assert np.all(bsq >= (centered.tensor.double().numpy() ** 2).sum(1)[None])
        error = float32_error_factor(3072) * (bsq + 2 * np.sqrt(qsq * bsq))
        slack = shift_error(np.sqrt(qsq) + np.sqrt(bsq))
        exact = np.sqrt(((q.astype(np.float64)[:, None] - b.astype(np.float64)[None]) ** 2).sum(2))
        assert np.all(exact <= np.sqrt(qsq + scores + error) + slack)
        assert np.all(exact >= np.sqrt(np.maximum(qsq + scores - error, 0.0)) - slack)


def test_shards_cover_the_database_once() -> None:
    for size, world in ((10, 3), (2, 4), (1281167, 8)):
        parts = [shard(size, rank, world) for rank in range(world)]
        assert [i for part in parts for i in part] == list(range(size))
        assert max(map(len, parts)) - min(map(len, parts)) <= 1


class _Interrupted(Exception):
    pass


class _Counting:
    """A row source that counts its reads and can fail after some of them (a kill)."""

    def __init__(self, x: np.ndarray, fail_after: int | None = None) -> None:
        self.x, self.reads, self.fail_after = x, 0, fail_after

    def __len__(self) -> int:
        return len(self.x)

    def rows(self, indices: np.ndarray) -> np.ndarray:
        self.reads += 1
        if self.fail_after is not None and self.reads > self.fail_after:
            raise _Interrupted
        return self.x[indices]


def test_an_interrupted_search_resumes_after_its_finished_chunks(points, tmp_path) -> None:
    queries, database = points
    expected = mean_knn_distance(queries, database, 10, backend="torch")
    options = {"query_chunk": 10, "database_chunk": 100, "progress_dir": tmp_path / "p"}
    with pytest.raises(_Interrupted):  # 3 of the 7 query chunks finish, then a "kill"
        streamed_mean_knn_distance(_Counting(queries, 3), _split(database), 10, **options)
    assert len(list((tmp_path / "p").glob("chunk-*.npy"))) == 3
    resumed = _Counting(queries)
    found = streamed_mean_knn_distance(resumed, _split(database), 10, **options)
    np.testing.assert_array_equal(found, expected)
    assert resumed.reads == 4  # only the 4 unfinished query chunks were read
    other = {**options, "query_chunk": 20}  # other chunks: the progress is not used
    np.testing.assert_array_equal(
        streamed_mean_knn_distance(_split(queries), _split(database), 10, **other), expected
    )


@pytest.mark.parametrize("backend", ["ivf", "hnsw", "approximate"])
def test_approximate_indexes_are_refused(backend) -> None:
    with pytest.raises(ValueError, match=r"approximate index would not make sigma\(x\) r-semi"):
        SmoothingDataModule("digits", knn_backend=backend)
