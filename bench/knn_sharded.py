"""Benchmark: the streamed, sharded exact kNN against the in-memory search and the floor.

A CIFAR-10-shaped random problem (3072 features, database : queries = 5 : 1 as 50,000 : 10,000,
scaled by ``--scale``), k = 20, float32 in [0, 1], written once to ``.npy`` files in a
temporary directory; every variant starts from those files. Variants, in one run:

- ``in-memory``: :func:`~idrs_lightning.sigma.knn.mean_knn_distance` (backend ``torch``) on the
  arrays loaded fully into its process;
- ``streamed 1 process``: :func:`~idrs_lightning.sigma.knn_streamed.streamed_mean_knn_distance` on
  :class:`~idrs_lightning.data.arrays.ArraySplit` views of the memory-mapped files, in chunks of
  ``--query-chunk`` queries and ``--database-chunk`` database rows;
- ``streamed 2 processes``: the same in two ``torch.distributed`` ranks (gloo, CPU), each
  searching its contiguous shard of the database, the top-k merged with ``all_gather``.

The floor is the bare float32 matrix products ``q @ b.T`` over the same chunks (what any exact
search of these shapes must compute), per process: one process over the whole database, or two
processes at once over their shards, on arrays already in memory (no reading, norms, top-k or
float64 re-ranking). Torch threads per process: the CPUs divided by the processes of the
variant, so that the 2-process variants do not oversubscribe the cores.

Every process lives for the whole run (imports and first calls paid before timing, on a
warm-up of random data of the same width), flushes subnormals, and reports its peak resident
memory (``ru_maxrss``) beside its baseline after imports and warm-up; since the pages of a
memory map that a process has touched count in its resident set (file-backed, reclaimable),
the anonymous memory (``RssAnon`` of ``/proc/self/status``, sampled every 2 ms) is reported
too. Variants run in interleaved rounds with a rotating order; wall time is measured by the
parent from the request to the last process's reply. The results of every variant and round
must be bit-identical (``np.array_equal``), else the exit status is 1.
Usage: ``python bench/knn_sharded.py [--scale 0.1] [--rounds 5] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from _common import flush_subnormals, print_floor_check, print_ratio, ratios, rotated, spread

FEATURES = 3072
K = 20
MB = 1e6
# name -> (kind, processes)
VARIANTS = {
    "floor (1 process)": ("floor", 1),
    "floor (2 processes)": ("floor", 2),
    "in-memory": ("memory", 1),
    "streamed 1 process": ("streamed", 1),
    "streamed 2 processes": ("streamed", 2),
}


def _sizes(scale: float) -> tuple[int, int]:
    """``(queries, database)`` rows."""
    return max(int(10_000 * scale), 1), max(int(50_000 * scale), 2 * K)


def _write_data(directory: Path, scale: float) -> None:
    """``queries.npy`` and ``database.npy``, written in blocks (the parent holds one block)."""
    rng = np.random.default_rng(0)
    for name, rows in zip(("queries", "database"), _sizes(scale), strict=True):
        out = np.lib.format.open_memmap(
            directory / f"{name}.npy", mode="w+", dtype=np.float32, shape=(rows, FEATURES)
        )
        for start in range(0, rows, 4096):
            out[start : start + 4096] = rng.random(
                (min(4096, rows - start), FEATURES), dtype=np.float32
            )
        out.flush()
        del out


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class _AnonPeak:
    """The largest ``RssAnon`` seen, sampled every 2 ms by a daemon thread (Linux only)."""

    def __init__(self) -> None:
        self.peak = _status_kib("RssAnon")
        if self.peak is not None:
            threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while True:
            value = _status_kib("RssAnon") or 0
            self.peak = max(self.peak, value)
            time.sleep(0.002)

    def reset(self) -> None:
        self.peak = _status_kib("RssAnon")


def _chunk_starts(stop: int, step: int, start: int = 0) -> list[tuple[int, int]]:
    return [(s, min(s + step, stop)) for s in range(start, stop, step)]


def _make_run(args: argparse.Namespace, rank: int, world: int, directory: Path | None):
    """``run() -> result or None``, the variant's whole work; ``directory=None``: warm-up data."""
    import torch

    from idrs_lightning.data.arrays import ArraySplit
    from idrs_lightning.sigma.knn import mean_knn_distance
    from idrs_lightning.sigma.knn_streamed import shard, streamed_mean_knn_distance

    if directory is None:  # warm-up: the same code on random data of the same width
        rng = np.random.default_rng(1)
        queries = rng.random((min(args.query_chunk, 64) + 3, FEATURES), dtype=np.float32)
        database = rng.random((2 * args.database_chunk + 5, FEATURES), dtype=np.float32)
        files = None
    else:
        files = {name: directory / f"{name}.npy" for name in ("queries", "database")}
    if args.worker == "streamed":
        if files is not None:  # memory-mapped: only the rows asked for are read
            queries, database = (np.load(files[n], mmap_mode="r") for n in ("queries", "database"))
        source_q, source_b = (
            ArraySplit(x, np.zeros(len(x), dtype=np.int64), 1, "random")
            for x in (queries, database)
        )

        def streamed() -> np.ndarray:
            return streamed_mean_knn_distance(
                source_q,
                source_b,
                K,
                query_chunk=args.query_chunk,
                database_chunk=args.database_chunk,
                device="cpu",
            )

        return streamed
    if files is not None:  # in memory: loaded fully
        queries, database = (np.load(files[name]) for name in ("queries", "database"))
    if args.worker == "memory":

        def memory() -> np.ndarray:
            return mean_knn_distance(queries, database, K, backend="torch", device="cpu")

        return memory
    mine = shard(len(database), rank, world)
    q_chunks = [
        torch.from_numpy(queries[a:b]) for a, b in _chunk_starts(len(queries), args.query_chunk)
    ]
    b_chunks = [
        torch.from_numpy(database[a:b])
        for a, b in _chunk_starts(mine.stop, args.database_chunk, mine.start)
    ]

    def floor() -> None:
        for q in q_chunks:
            for b in b_chunks:
                torch.mm(q, b.T)

    return floor


def _worker(args: argparse.Namespace) -> None:
    """Serve requests on stdin ("run <round>" / "exit"), one JSON line on stdout per request."""
    import torch
    import torch.distributed as dist

    torch.set_num_threads(args.threads)
    flushed = flush_subnormals(announce=False)
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if args.worker == "streamed" and world > 1:
        from datetime import timedelta

        dist.init_process_group("gloo", timeout=timedelta(minutes=5))
    warm_up = _make_run(args, rank, world, None)
    warm_up()
    warm_up()
    anon = _AnonPeak()
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    base_anon = _status_kib("RssAnon")
    directory = Path(args.data)
    run = _make_run(args, rank, world, directory)
    print(json.dumps({"ready": True, "flushed": flushed}), flush=True)
    for line in sys.stdin:
        request = line.split()
        if not request or request[0] != "run":
            break
        anon.reset()
        start = time.perf_counter()
        result = run()
        seconds = time.perf_counter() - start
        if result is not None and rank == 0:
            np.save(directory / f"result-{args.worker}-{world}-{request[1]}.npy", result)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        reply = {
            "seconds": seconds,
            "rss_mb": peak * 1024 / MB,
            "base_rss_mb": base_rss * 1024 / MB,
            "anon_mb": None if anon.peak is None else anon.peak * 1024 / MB,
            "base_anon_mb": None if base_anon is None else base_anon * 1024 / MB,
        }
        print(json.dumps(reply), flush=True)
    if dist.is_initialized():
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _Variant:
    """The worker processes of one variant (one per rank)."""

    def __init__(self, name: str, args: argparse.Namespace, directory: Path) -> None:
        kind, processes = VARIANTS[name]
        self.name, self.processes = name, processes
        threads = max(1, args.cpus // processes)
        port = str(_free_port())
        self.logs = [directory / f"log-{kind}-{processes}-{rank}.txt" for rank in range(processes)]
        command = [
            sys.executable,
            __file__,
            "--worker",
            kind,
            "--data",
            str(directory),
            "--threads",
            str(threads),
            "--query-chunk",
            str(args.query_chunk),
            "--database-chunk",
            str(args.database_chunk),
        ]
        self.workers = []
        for rank in range(processes):
            env = {
                **os.environ,
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": port,
                "RANK": str(rank),
                "LOCAL_RANK": str(rank),
                "WORLD_SIZE": str(processes),
                "OMP_NUM_THREADS": str(threads),
                "CUDA_VISIBLE_DEVICES": "",
            }
            with open(self.logs[rank], "w") as log:  # stderr to a file: a full pipe blocks
                self.workers.append(
                    subprocess.Popen(
                        command,
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        stderr=log,
                        text=True,
                        env=env,
                    )
                )

    def _read(self, rank: int) -> dict:
        line = self.workers[rank].stdout.readline()
        if not line:
            self.workers[rank].wait(timeout=30)
            raise RuntimeError(
                f"{self.name} rank {rank} died (status {self.workers[rank].returncode}):\n"
                + self.logs[rank].read_text()[-4000:]
            )
        return json.loads(line)

    def ready(self) -> bool:
        return all(self._read(rank)["flushed"] for rank in range(self.processes))

    def run(self, round_index: int) -> tuple[float, list[dict]]:
        """Wall seconds from the request to the last rank's reply, and each rank's reply."""
        start = time.perf_counter()
        for worker in self.workers:
            worker.stdin.write(f"run {round_index}\n")
            worker.stdin.flush()
        replies = [self._read(rank) for rank in range(self.processes)]
        return time.perf_counter() - start, replies

    def close(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                try:
                    worker.stdin.write("exit\n")
                    worker.stdin.close()
                except OSError:
                    pass
        for worker in self.workers:
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()


def _memory_lines(name: str, replies: list[dict]) -> None:
    for rank, reply in enumerate(replies):
        who = f"{name}, rank {rank}" if len(replies) > 1 else name
        anon = ""
        if reply["anon_mb"] is not None:
            anon = (
                f"; anonymous {reply['anon_mb']:.0f} MB "
                f"(+{reply['anon_mb'] - reply['base_anon_mb']:.0f})"
            )
        print(
            f"  {who + ':':34s} peak RSS {reply['rss_mb']:.0f} MB "
            f"(+{reply['rss_mb'] - reply['base_rss_mb']:.0f} over {reply['base_rss_mb']:.0f} "
            f"after imports){anon}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--query-chunk", type=int, default=256)
    parser.add_argument("--database-chunk", type=int, default=1024)
    parser.add_argument("--cpus", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--quick", action="store_true", help="smoke-test size (seconds)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return 0
    if args.quick:
        args.scale, args.rounds, args.query_chunk, args.database_chunk = 0.01, 3, 32, 128
    n_queries, n_database = _sizes(args.scale)
    data_mb = (n_queries + n_database) * FEATURES * 4 / MB
    qc, dc = args.query_chunk, args.database_chunk
    bound_mb = (qc * (FEATURES + dc) * 4 + n_queries * 8) / MB
    with_base_mb = bound_mb + dc * FEATURES * 4 / MB
    print(f"{n_queries} queries x {n_database} database x {FEATURES} features, k = {K}, float32")
    print(
        f"data set: {data_mb:.1f} MB in .npy files (memory-mapped by the streamed variants, "
        f"loaded fully by the in-memory one and the floor); chunks: {qc} queries x {dc} database "
        f"rows; {args.cpus} CPUs, torch threads per process = CPUs / processes"
    )
    print(
        f"memory bound of the chunks, query_chunk x (features + database_chunk) x 4 B + result: "
        f"{bound_mb:.1f} MB (with the database chunk itself, + database_chunk x features x 4 B: "
        f"{with_base_mb:.1f} MB)"
    )
    print(
        f"floor: bare float32 q @ b.T over the same chunks ({qc} x {dc}), per process (2 "
        f"processes: each over its shard, at once)"
    )
    flush_subnormals(announce=False)  # the parent computes nothing timed; the workers flush
    with tempfile.TemporaryDirectory(prefix="knn_sharded_") as temporary:
        directory = Path(temporary)
        _write_data(directory, args.scale)
        variants: dict[str, _Variant] = {}
        seconds: dict[str, list[float]] = {name: [] for name in VARIANTS}
        last: dict[str, list[dict]] = {}
        try:
            flushed = True
            for name in VARIANTS:  # started one after another: imports do not overlap
                variants[name] = _Variant(name, args, directory)
                flushed = variants[name].ready() and flushed
            print(f"subnormals flushed to zero in every worker: {'on' if flushed else 'NOT on'}")
            for round_index in range(args.rounds):
                for name in rotated(list(VARIANTS), round_index):
                    wall, replies = variants[name].run(round_index)
                    seconds[name].append(wall)
                    last[name] = replies
        finally:
            for variant in variants.values():
                variant.close()
        results = {
            (kind, processes, round_index): np.load(
                directory / f"result-{kind}-{processes}-{round_index}.npy"
            )
            for kind, processes in VARIANTS.values()
            if kind != "floor"
            for round_index in range(args.rounds)
        }
    print("wall time (s), parent-measured from the request to the last process's reply:")
    for name in VARIANTS:
        print(f"  {name:22s} {spread(seconds[name], ' s')}")
    print(
        f"peak resident memory per process (data set {data_mb:.1f} MB, chunk bound "
        f"{bound_mb:.1f} MB, {with_base_mb:.1f} MB with the database chunk):"
    )
    for name in VARIANTS:
        _memory_lines(name, last[name])
    pairs = [
        ("in-memory", "floor (1 process)"),
        ("streamed 1 process", "floor (1 process)"),
        ("streamed 2 processes", "floor (2 processes)"),
    ]
    for name, floor in pairs:
        over_floor = ratios(seconds[name], seconds[floor])
        print_ratio(f"{name} / {floor}", over_floor)
        print_floor_check(name, over_floor, floor)
    for name in ("streamed 1 process", "streamed 2 processes"):
        print_ratio(f"{name} / in-memory", ratios(seconds[name], seconds["in-memory"]))
    print_ratio(
        "streamed 1 process / 2 processes (speed-up)",
        ratios(seconds["streamed 1 process"], seconds["streamed 2 processes"]),
    )
    reference = results[("memory", 1, 0)]
    differing = [key for key, value in results.items() if not np.array_equal(value, reference)]
    if differing:
        worst = max(float(np.max(np.abs(results[key] - reference))) for key in differing)
        print(
            f"results bit-identical across variants and rounds: NO, {len(differing)} of "
            f"{len(results)} differ from in-memory round 0 (largest difference {worst:.3g})"
        )
        return 1
    print(
        f"results bit-identical across variants and rounds: yes ({len(results)} results of "
        f"{n_queries} means, np.array_equal)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
