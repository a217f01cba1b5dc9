"""Benchmark: kNN mean-distance precompute against the matrix-product floor and scikit-learn.

A CIFAR-10-shaped random problem (3072 features, database : queries = 5 : 1 as 50,000 : 10,000,
scaled by ``--scale``), k = 20. What is compared: ``mean_knn_distance`` (``torch``, the default
backend on CPU, and ``faiss``, the one on GPU) and scikit-learn's brute-force
``NearestNeighbors`` against the floor, the bare matrix products ``q @ database.T`` that any
exact search of these shapes needs, in the chunks of queries that ``mean_knn_distance`` uses
(its ``chunk_size``), without the norms, top-k and float64 re-ranking. (One unchunked
``queries @ database.T`` is no floor: its single huge output costs page faults that the
chunked search does not pay.)

Each method lives in its own worker process for the whole run (so its peak resident memory is
its own, and imports and first-call set-up are paid before timing, after a warm-up on a slice);
the workers take turns in interleaved rounds with a rotating order. Subnormals are flushed in
every worker. Every ratio is per round, with median, min-max and spread.
Usage: ``python bench/knn_sigma.py [--scale 0.5] [--rounds 3] [--quick]``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import resource
import subprocess
import sys
import time

import numpy as np
from _common import flush_subnormals, print_floor_check, print_ratio, ratios, rotated, spread

FEATURES = 3072
K = 20
METHODS = ("floor", "torch", "faiss", "sklearn")


def _data(scale: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    database = rng.random((max(int(50_000 * scale), 2 * K), FEATURES), dtype=np.float32)
    queries = rng.random((max(int(10_000 * scale), 1), FEATURES), dtype=np.float32)
    return queries, database


def _chunk_size() -> int:
    """``mean_knn_distance``'s default chunk of queries, so that the floor has its shapes."""
    from idrs_lightning.sigma.knn import mean_knn_distance

    return inspect.signature(mean_knn_distance).parameters["chunk_size"].default


def _method(method: str, chunk_size: int):
    """A function ``(queries, database) -> None`` doing the method's whole work."""
    if method == "floor":
        import torch

        def floor(queries: np.ndarray, database: np.ndarray) -> None:
            base = torch.from_numpy(database)
            for start in range(0, len(queries), chunk_size):
                torch.mm(torch.from_numpy(queries[start : start + chunk_size]), base.T)

        return floor
    if method == "sklearn":
        from sklearn.neighbors import NearestNeighbors

        def sklearn(queries: np.ndarray, database: np.ndarray) -> None:
            search = NearestNeighbors(n_neighbors=K, algorithm="brute").fit(database)
            search.kneighbors(queries)[0].mean(axis=1)

        return sklearn
    from idrs_lightning.sigma.knn import mean_knn_distance

    def ours(queries: np.ndarray, database: np.ndarray) -> None:
        mean_knn_distance(queries, database, K, backend=method, chunk_size=chunk_size)

    return ours


def _worker(method: str, scale: float, chunk_size: int) -> None:
    """Serve timing requests on stdin ("run" / "exit"), one JSON line on stdout per request."""
    flushed = flush_subnormals(announce=False)
    queries, database = _data(scale)
    run = _method(method, chunk_size)
    run(queries[:64], database[: max(len(database) // 10, 2 * K)])  # warm-up: imports, set-up
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"ready": True, "flushed": flushed}), flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        start = time.perf_counter()
        run(queries, database)
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        reply = {"seconds": seconds, "peak_mib": peak / 1024, "extra_mib": (peak - before) / 1024}
        print(json.dumps(reply), flush=True)


def _ask(worker: subprocess.Popen, request: str | None = None) -> dict:
    if request is not None:
        worker.stdin.write(request + "\n")
        worker.stdin.flush()
    line = worker.stdout.readline()
    if not line:
        raise RuntimeError(f"worker {worker.args} died: {worker.stderr.read()}")
    return json.loads(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset")
    parser.add_argument("--quick", action="store_true", help="smoke-test size (seconds)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--chunk-size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker, args.scale, args.chunk_size)
        return
    if args.quick:
        args.scale, args.rounds = 0.02, 3
    chunk_size = _chunk_size()
    methods = [m for m in METHODS if m in args.methods.split(",")]
    queries, database = (len(a) for a in _data(args.scale))  # the workers make the same data
    print(f"{queries} queries x {database} database x {FEATURES} features, k = {K}")
    print(
        f"compares mean_knn_distance (torch, faiss) and scikit-learn against the floor: bare "
        f"q @ database.T in chunks of {chunk_size} queries (torch, same threads)"
    )
    command = [sys.executable, __file__, "--scale", str(args.scale), "--chunk-size"]
    workers = {
        m: subprocess.Popen(
            [*command, str(chunk_size), "--worker", m],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for m in methods
    }
    try:
        ready = {m: _ask(w) for m, w in workers.items()}
        flushed = all(r["flushed"] for r in ready.values())
        print(f"subnormals flushed to zero in every worker: {'on' if flushed else 'NOT on'}")
        results: dict[str, list[dict]] = {m: [] for m in methods}
        for round_index in range(args.rounds):
            for m in rotated(methods, round_index):
                results[m].append(_ask(workers[m], "run"))
    finally:
        for worker in workers.values():
            if worker.poll() is None:
                worker.stdin.write("exit\n")
                worker.stdin.close()
                worker.wait(timeout=60)
    seconds = {m: [r["seconds"] for r in rs] for m, rs in results.items()}
    for m in methods:
        last = results[m][-1]
        print(
            f"  {m:8s} s {spread(seconds[m])}; peak {last['peak_mib']:.0f} MiB "
            f"(+{last['extra_mib']:.0f} over the inputs)"
        )
    if "floor" in methods:
        for m in methods[1:]:
            over_floor = ratios(seconds[m], seconds["floor"])
            print_ratio(f"{m} / floor", over_floor, width=30)
            print_floor_check(m, over_floor)
    for m in ("torch", "faiss"):
        if m in methods and "sklearn" in methods:
            print_ratio(f"sklearn / {m} (speed-up)", ratios(seconds["sklearn"], seconds[m]), 30)


if __name__ == "__main__":
    main()
