"""Benchmark: kNN mean-distance precompute against the matrix-product floor and scikit-learn.

A CIFAR-10-shaped random problem (3072 features, database : queries = 5 : 1 as 50,000 : 10,000,
scaled by ``--scale``), k = 20. Each method runs in its own process so that its peak resident
memory is measured alone. Prints time, ratio to the floor ``X @ Y.T`` (torch, same shapes) and
peak memory (``torch`` is the default backend on CPU, ``faiss`` the one on GPU).
Usage: ``python bench/knn_sigma.py [--scale 0.5]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

FEATURES = 3072
K = 20


def _data(scale: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    database = rng.random((int(50_000 * scale), FEATURES), dtype=np.float32)
    queries = rng.random((int(10_000 * scale), FEATURES), dtype=np.float32)
    return queries, database


def _run_method(method: str, scale: float) -> dict[str, float]:
    queries, database = _data(scale)
    baseline_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    if method == "matmul":
        import torch

        torch.from_numpy(queries) @ torch.from_numpy(database).T
    elif method == "sklearn":
        from sklearn.neighbors import NearestNeighbors

        search = NearestNeighbors(n_neighbors=K, algorithm="brute").fit(database)
        search.kneighbors(queries)[0].mean(axis=1)
    else:
        from idrs_lightning.knn import mean_knn_distance

        mean_knn_distance(queries, database, K, backend=method)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": seconds, "peak_mib": peak / 1024, "extra_mib": (peak - baseline_rss) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.5)
    parser.add_argument(
        "--methods", default="matmul,faiss,torch,sklearn", help="comma-separated subset"
    )
    parser.add_argument("--method", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.method:
        print(json.dumps(_run_method(args.method, args.scale)))
        return
    queries, database = (int(10_000 * args.scale), int(50_000 * args.scale))
    print(f"{queries} queries x {database} database x {FEATURES} features, k = {K}")
    results = {}
    for method in args.methods.split(","):
        output = subprocess.run(
            [sys.executable, __file__, "--scale", str(args.scale), "--method", method],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        results[method] = json.loads(output.strip().splitlines()[-1])
    floor = results["matmul"]["seconds"] if "matmul" in results else float("nan")
    for method, result in results.items():
        print(
            f"  {method:8s} {result['seconds']:7.2f} s  {result['seconds'] / floor:5.2f}x floor  "
            f"peak {result['peak_mib']:7.0f} MiB (+{result['extra_mib']:.0f} over the inputs)"
        )
    for method in ("torch", "faiss"):
        if method not in results or "sklearn" not in results:
            continue
        speedup = results["sklearn"]["seconds"] / results[method]["seconds"]
        print(f"  mean_knn_distance({method}) vs scikit-learn: {speedup:.2f}x faster")


if __name__ == "__main__":
    main()
