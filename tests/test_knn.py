"""Exact kNN mean distances (faiss and torch) and their on-disk cache."""

import os
from pathlib import Path

import numpy as np
import pytest
from helpers import brute_force_mean_knn

from idrs_lightning.sigma.knn import faiss_available, mean_knn_distance
from idrs_lightning.sigma.knn_cache import cache_key, cache_path, cached_mean_knn_distance

BACKENDS = [
    "torch",
    pytest.param(
        "faiss", marks=pytest.mark.skipif(not faiss_available(), reason="faiss not installed")
    ),
]


@pytest.fixture(scope="module")
def images() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    database = rng.random((300, 1, 8, 8), dtype=np.float32)
    queries = rng.random((70, 1, 8, 8), dtype=np.float32)
    return queries, database


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("chunk_size", [16, 4096])
def test_matches_brute_force(images, backend: str, chunk_size: int) -> None:
    queries, database = images
    got = mean_knn_distance(queries, database, 7, backend=backend, chunk_size=chunk_size)
    np.testing.assert_allclose(got, brute_force_mean_knn(queries, database, 7, False), rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_leave_one_out_on_the_training_set(images, backend: str) -> None:
    _, database = images
    got = mean_knn_distance(
        database, database, 5, exclude_self=True, backend=backend, chunk_size=64
    )
    np.testing.assert_allclose(got, brute_force_mean_knn(database, database, 5, True), rtol=1e-12)
    # Without leave-one-out each point is its own nearest neighbour at distance 0.
    with_self = mean_knn_distance(database, database, 5, backend=backend)
    np.testing.assert_allclose(
        with_self, brute_force_mean_knn(database, database, 5, False), rtol=1e-12
    )
    assert np.all(with_self < got)


def test_duplicates_still_count_as_neighbours() -> None:
    point = np.zeros((1, 4), dtype=np.float32)
    database = np.concatenate([point, point, np.ones((3, 4), dtype=np.float32)])
    got = mean_knn_distance(database, database, 1, exclude_self=True, backend="torch")
    assert got[0] == 0.0 and got[1] == 0.0  # each zero vector's duplicate is at distance 0


def test_near_ties_are_resolved_in_float64() -> None:
    # Large offsets make the float32 expansion |q|^2 - 2 q.b + |b|^2 lose the small gaps.
    rng = np.random.default_rng(1)
    database = (100.0 + rng.random((200, 64))).astype(np.float32)
    queries = (100.0 + rng.random((20, 64))).astype(np.float32)
    got = mean_knn_distance(queries, database, 3, backend="torch")
    np.testing.assert_allclose(got, brute_force_mean_knn(queries, database, 3, False), rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_far_from_the_origin_with_near_ties(backend: str) -> None:
    # The searches rank on copies centred by the database mean: data far from the origin (the
    # centring rounds in float32) and rows with many near-ties must still come out exact.
    rng = np.random.default_rng(2)
    database = -500.0 + rng.integers(0, 4, (400, 96)) + 1e-4 * rng.random((400, 96))
    database = database.astype(np.float32)
    queries = database[:60] + np.float32(1e-3)
    for k in (1, 5, 30):
        got = mean_knn_distance(queries, database, k, backend=backend, chunk_size=25)
        want = brute_force_mean_knn(queries, database, k, False)
        np.testing.assert_allclose(got, want, rtol=1e-12)
        loo = mean_knn_distance(database, database, k, exclude_self=True, backend=backend)
        np.testing.assert_allclose(
            loo, brute_force_mean_knn(database, database, k, True), rtol=1e-12
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, r"k must lie in \[1, 300\]"),
        ({"k": 301}, r"k must lie in \[1, 300\]"),
        ({"k": 300, "exclude_self": True}, "exclude_self needs the queries to be the database"),
        ({"k": 3, "backend": "annoy"}, "backend must be one of"),
    ],
)
def test_bad_arguments(images, kwargs: dict, message: str) -> None:
    queries, database = images
    with pytest.raises(ValueError, match=message):
        mean_knn_distance(queries, database, **kwargs)


def test_feature_mismatch(images) -> None:
    queries, database = images
    with pytest.raises(ValueError, match="queries have 32 features but the database has 64"):
        mean_knn_distance(queries.reshape(140, 32), database, 3)


def test_cache_round_trip_and_invalidation(tmp_path, images) -> None:
    queries, database = images
    first = cached_mean_knn_distance(tmp_path, queries, "q-v1", database, "train-v1", 4)
    path = cache_path(tmp_path, cache_key("q-v1", "train-v1", 4, False))
    assert path.exists()
    np.testing.assert_array_equal(first, brute_force_mean_knn(queries, database, 4, False))
    # Same key: served from disk (the database argument is not even consulted).
    served = cached_mean_knn_distance(tmp_path, queries, "q-v1", database[::-1] * 0, "train-v1", 4)
    np.testing.assert_array_equal(served, first)
    # Another k or another reference identity: a different entry, computed afresh.
    other_k = cached_mean_knn_distance(tmp_path, queries, "q-v1", database, "train-v1", 2)
    np.testing.assert_allclose(
        other_k, brute_force_mean_knn(queries, database, 2, False), rtol=1e-12
    )
    assert len(list(tmp_path.glob("knn-*.npz"))) == 2


def test_corrupt_or_stale_cache_is_rebuilt(tmp_path, images) -> None:
    queries, database = images
    key = cache_key("q", "ref", 3, False)
    path = cache_path(tmp_path, key)
    path.write_bytes(b"not a numpy file")
    got = cached_mean_knn_distance(tmp_path, queries, "q", database, "ref", 3)
    np.testing.assert_allclose(got, brute_force_mean_knn(queries, database, 3, False), rtol=1e-12)
    # A file at the right place but for other data (stale key) is not trusted.
    np.savez(path, key=np.array(cache_key("other", "ref", 3, False)), distances=np.zeros(70))
    again = cached_mean_knn_distance(tmp_path, queries, "q", database, "ref", 3)
    np.testing.assert_array_equal(again, got)
    # Wrong length (e.g. the split changed size under the same name) is rebuilt too.
    np.savez(path, key=np.array(key), distances=np.zeros(5))
    np.testing.assert_array_equal(
        cached_mean_knn_distance(tmp_path, queries, "q", database, "ref", 3), got
    )
    assert not list(tmp_path.glob("*.tmp")), "no temporary files left behind"


def test_self_index_leaves_out_sampled_training_rows(images) -> None:
    _, database = images
    rows = np.array([3, 17, 250, 299])
    got = mean_knn_distance(database[rows], database, 5, self_index=rows, backend="torch")
    np.testing.assert_allclose(
        got, brute_force_mean_knn(database, database, 5, True)[rows], rtol=1e-12
    )
    with pytest.raises(ValueError, match="self_index must hold one database row per query"):
        mean_knn_distance(database[rows], database, 5, self_index=rows[:2])


def _entry(tmp_path, queries, database) -> tuple[np.ndarray, Path]:
    first = cached_mean_knn_distance(tmp_path, queries, "q-v1", database, "train-v1", 3)
    (path,) = tmp_path.glob("knn-*.npz")
    return first, path


@pytest.mark.parametrize("damage", ["empty", "truncated", "edited values"])
def test_a_damaged_entry_is_rebuilt_with_a_warning_naming_it(
    images, tmp_path, caplog, damage: str
) -> None:
    queries, database = images
    first, path = _entry(tmp_path, queries, database)
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:300])
    else:  # plausible values under a valid key: only the checksum tells
        with np.load(path) as stored:
            fields = {name: stored[name] for name in stored.files}
        fields["distances"] = fields["distances"] * 1.01
        with path.open("wb") as file:
            np.savez(file, **fields)
    with caplog.at_level("WARNING"):
        again = cached_mean_knn_distance(tmp_path, queries, "q-v1", database, "train-v1", 3)
    np.testing.assert_array_equal(again, first)
    assert str(path) in caplog.text and "rebuilding" in caplog.text


def test_entries_are_readable_by_the_group(images, tmp_path) -> None:
    queries, database = images
    _, path = _entry(tmp_path, queries, database)
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
