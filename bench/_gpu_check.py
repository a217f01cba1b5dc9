"""The Python sections of ``bench/gpu_check.sh``: one section per process, so that one failing
section (or a crash in an optional library) leaves the others to run.

Sections: ``train`` (ResNet-110 training throughput at fp32, bf16 autocast and channels-last),
``certify`` (``Smooth.certify_many`` against the bare forward pass of the same noisy rows),
``sequential`` (fixed-n against sequential CERTIFY), ``knn`` (the kNN sigma precompute at
CIFAR-10 scale against the GEMM floor). Every variant of a section starts from the same state
and the variants take turns in interleaved rounds with a rotating order (``bench/_common.py``);
ratios are per round, against a baseline measured in the same run. ``--dry-run``: the same code
on CPU at a tiny size (ResNet-20 on 3x8x8 inputs, two steps, a small kNN), seconds each.

Exit status: 0 ran, 3 could not run here (the reason is printed), anything else failed.
Usage: ``python bench/_gpu_check.py SECTION [--dry-run]``.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from _common import (
    flush_subnormals,
    print_floor_check,
    print_ratio,
    ratios,
    rotated,
    sequential_tasks,
    spread,
)

SKIPPED = 3


@dataclass(frozen=True)
class Size:
    model: str
    shape: tuple[int, int, int]
    train_batch: int
    train_steps: int
    train_warmup: int
    rounds: int
    n0: int
    cert_batches: tuple[int, ...]
    cert_n: int
    cert_inputs: int
    seq_inputs: int
    seq_n: int
    seq_batch: int
    seq_budget_s: float
    knn_database: int
    knn_queries: int
    knn_features: int
    k: int


FULL = Size(
    model="resnet110",
    shape=(3, 32, 32),
    train_batch=128,
    train_steps=30,
    train_warmup=10,
    rounds=3,
    n0=100,
    cert_batches=(1000, 4000),
    cert_n=10_000,
    cert_inputs=2,
    seq_inputs=20,
    seq_n=100_000,
    seq_batch=4000,
    seq_budget_s=90.0,
    knn_database=50_000,
    knn_queries=10_000,
    knn_features=3072,
    k=20,
)
DRY = Size(
    model="resnet20",
    shape=(3, 8, 8),
    train_batch=4,
    train_steps=2,
    train_warmup=1,
    rounds=2,
    n0=10,
    cert_batches=(100, 200),
    cert_n=200,
    cert_inputs=1,
    seq_inputs=2,
    seq_n=2000,
    seq_batch=200,
    seq_budget_s=20.0,
    knn_database=2000,
    knn_queries=200,
    knn_features=3072,
    k=20,
)


def _skip(reason: str) -> None:
    print(f"  cannot run: {reason}; skipped")
    sys.exit(SKIPPED)


def _require(*modules: str) -> None:
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        _skip(f"needs {', '.join(missing)} (not installed here)")


def _timed(device: torch.device, work: Callable[[], object]) -> float:
    """Wall seconds of ``work()``, the device synchronised before and after."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    work()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def _frozen_model(size: Size, device: torch.device) -> torch.nn.Module:
    from idrs_lightning.models import build_model

    torch.manual_seed(0)
    model = build_model(size.model, 10, size.shape).to(device).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def _record_batches(model: torch.nn.Module, run: Callable[[], object]) -> list[torch.Tensor]:
    """The batches ``model`` receives during ``run()``, copied."""
    batches: list[torch.Tensor] = []
    hook = model.register_forward_pre_hook(lambda _, args: batches.append(args[0].clone()))
    try:
        run()
    finally:
        hook.remove()
    return batches


def _certify_one(smooth, x: torch.Tensor, sigma: float, index: int, device: torch.device):
    """One input's certificate and the seconds it took."""
    result: list = []
    seconds = _timed(
        device, lambda: result.extend(smooth.certify_many(x.unsqueeze(0), [sigma], [index]))
    )
    return result[0], seconds


# -- training throughput -------------------------------------------------------------------


def section_train(size: Size, device: torch.device) -> None:
    from idrs_lightning.models import build_model

    variants = {  # name: (autocast dtype, channels-last)
        "fp32": (None, False),
        "bf16 autocast": (torch.bfloat16, False),
        "channels-last fp32": (None, True),
        "channels-last bf16": (torch.bfloat16, True),
    }
    torch.manual_seed(0)
    initial = build_model(size.model, 10, size.shape).to(device)
    x = torch.rand(size.train_batch, *size.shape, device=device)
    y = torch.randint(0, 10, (size.train_batch,), device=device)
    sigma = torch.full((size.train_batch, 1, 1, 1), 0.25, device=device)
    models, optimizers, batches = {}, {}, {}
    for name, (_, channels_last) in variants.items():
        model = copy.deepcopy(initial)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        models[name] = model.train()
        optimizers[name] = torch.optim.SGD(
            model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4
        )
        batch = x.contiguous(memory_format=torch.channels_last) if channels_last else x
        batches[name] = batch
    state = copy.deepcopy(initial.state_dict())

    def reset(name: str) -> None:  # the same weights and fresh momentum for every variant
        models[name].load_state_dict(state)
        optimizers[name].state.clear()

    def steps(name: str, count: int) -> None:
        dtype, _ = variants[name]
        model, optimizer, batch = models[name], optimizers[name], batches[name]
        for _ in range(count):
            optimizer.zero_grad(set_to_none=True)
            noisy = batch + torch.randn_like(batch) * sigma  # Gaussian augmentation
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = torch.nn.functional.cross_entropy(model(noisy), y)
            loss.backward()
            optimizer.step()

    for name in variants:  # warm-up (cuDNN algorithm choice, allocator), then reset
        reset(name)
        steps(name, size.train_warmup)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for round_index in range(size.rounds):
        for name in rotated(list(variants), round_index):
            reset(name)
            times[name].append(_timed(device, lambda n=name: steps(n, size.train_steps)))
    images = size.train_batch * size.train_steps
    print(
        f"  {size.model} on random {size.shape} data, batch {size.train_batch}, SGD with "
        f"Gaussian augmentation (sigma 0.25), {size.train_steps} timed steps per variant and "
        f"round after {size.train_warmup} warm-up steps, every round from the same weights"
    )
    for name in variants:
        print(f"  {name:20s} images/s {spread([images / t for t in times[name]])}")
    for name in list(variants)[1:]:
        print_ratio(f"speed-up {name} / fp32", ratios(times["fp32"], times[name]))


# -- certification throughput ---------------------------------------------------------------


def section_certify(size: Size, device: torch.device) -> None:
    _require("scipy")
    from idrs_lightning.settings import CertificationSettings
    from idrs_lightning.smoothing import Smooth

    model = _frozen_model(size, device)
    torch.manual_seed(1)
    xs = torch.rand(size.cert_inputs, *size.shape, device=device)
    sigmas, indices = [0.25] * size.cert_inputs, list(range(size.cert_inputs))
    print(
        f"  {size.model} (random initialisation, eval mode), {size.cert_inputs} inputs, n0 = "
        f"{size.n0}, n = {size.cert_n}; the floor is the bare forward pass of the noisy rows "
        "certify_many feeds the model (recorded from its own call), nothing else"
    )
    for batch_size in size.cert_batches:
        settings = CertificationSettings(n0=size.n0, n=size.cert_n, batch_size=batch_size)
        smooth = Smooth(model, 10, 0.0, settings)
        # the rows certify_many feeds the model, from its own call (also the warm-up)
        recorded = _record_batches(model, lambda s=smooth: s.certify_many(xs, sigmas, indices))
        rows = sum(len(batch) for batch in recorded)
        expected = size.cert_inputs * (size.n0 + size.cert_n)
        assert rows == expected, f"certify_many fed {rows} rows, expected {expected}"

        def floor(batches: list[torch.Tensor] = recorded) -> None:
            with torch.no_grad():
                for batch in batches:
                    model(batch)

        work = {
            "certify_many": lambda s=smooth: s.certify_many(xs, sigmas, indices),
            "floor": floor,
        }
        floor()  # warm-up of the floor's shapes
        times: dict[str, list[float]] = {name: [] for name in work}
        for round_index in range(size.rounds):
            for name in rotated(list(work), round_index):
                times[name].append(_timed(device, work[name]))
        shapes = sorted({len(b) for b in recorded}, reverse=True)
        print(f"  batch {batch_size}: {rows} rows in {len(recorded)} passes of {shapes} rows")
        print(f"    certify_many     samples/s {spread([rows / t for t in times['certify_many']])}")
        print(f"    bare forward     samples/s {spread([rows / t for t in times['floor']])}")
        over = ratios(times["certify_many"], times["floor"])
        print_ratio(f"time certify_many / floor (batch {batch_size})", over)
        print_floor_check("certify_many", over)


# -- fixed-n against sequential CERTIFY -----------------------------------------------------


def section_sequential(size: Size, device: torch.device) -> None:
    _require("scipy")
    from idrs_lightning.settings import CertificationSettings, radius_grid
    from idrs_lightning.smoothing import Smooth

    model = _frozen_model(size, device)
    sigma_b = 0.25
    grid = radius_grid(None, sigma_b)
    modes = ("fixed-n", "sequential")
    smooth = {
        mode: Smooth(
            model,
            10,
            0.0,
            CertificationSettings(
                n0=size.n0, n=size.seq_n, batch_size=size.seq_batch, sequential=mode == modes[1]
            ),
            (0.0, 1.0),
            grid,
        )
        for mode in modes
    }
    torch.manual_seed(2)
    xs = torch.rand(size.seq_inputs, *size.shape, device=device)
    print(
        f"  {size.model} at its random initialisation (eval mode): the figures measure the "
        "sampling machinery, not the savings on a trained model (bench/sequential.py does that)"
    )
    warm = CertificationSettings(n0=size.n0, n=min(size.seq_n, 1000), batch_size=size.seq_batch)
    Smooth(model, 10, 0.0, warm).certify_many(xs[:1], [sigma_b], [0])
    certs: dict[str, list] = {mode: [] for mode in modes}
    seconds: dict[str, list[float]] = {mode: [] for mode in modes}
    count = size.seq_inputs
    for j in range(size.seq_inputs):  # a round is one input; the order rotates
        if j == count:
            break
        for mode in rotated(list(modes), j):
            cert, elapsed = _certify_one(smooth[mode], xs[j], sigma_b, j, device)
            certs[mode].append(cert)
            seconds[mode].append(elapsed)
        if j == 0:  # stay within the section's time: fewer inputs where a round is slow
            per_input = seconds[modes[0]][0] + seconds[modes[1]][0]
            count = min(size.seq_inputs, max(2, int(size.seq_budget_s / per_input)))
            if count < size.seq_inputs:
                print(
                    f"  note: the first input took {per_input:.1f} s; certifying {count} "
                    f"inputs, not {size.seq_inputs}, to stay within {size.seq_budget_s:.0f} s"
                )
    for f, s in zip(certs["fixed-n"], certs["sequential"], strict=True):
        if s.samples == size.seq_n:
            assert np.array_equal(f.counts, s.counts), "noise streams differ at n_max"
    passes = {m: sum(size.n0 + c.samples for c in certs[m]) for m in modes}
    wall = {m: sum(seconds[m]) for m in modes}
    stopped = [c.samples for c in certs["sequential"]]
    print(
        f"  {len(stopped)} random inputs, constant sigma {sigma_b}, n0 = {size.n0}, n = n_max = "
        f"{size.seq_n}, batch {size.seq_batch}, radius grid 0 to {grid[-1]} step {grid[1]}"
    )
    print(
        f"  forward passes: fixed-n {passes['fixed-n']:,}, sequential {passes['sequential']:,}"
        f" (estimation samples per input: median {int(np.median(stopped)):,}, "
        f"min {min(stopped):,}, max {max(stopped):,}); ratio "
        f"{passes['fixed-n'] / passes['sequential']:.3f}x"
    )
    print(
        f"  wall time: fixed-n {wall['fixed-n']:.2f} s, sequential {wall['sequential']:.2f} s;"
        f" ratio fixed-n / sequential {wall['fixed-n'] / wall['sequential']:.3f}x"
    )
    rate = {m: passes[m] / wall[m] for m in modes}
    print(
        f"  forward passes/s: fixed-n {rate['fixed-n']:,.0f}, sequential "
        f"{rate['sequential']:,.0f} (sequential / fixed-n time per pass "
        f"{rate['fixed-n'] / rate['sequential']:.3f}x)"
    )
    per_input = ratios(seconds["fixed-n"], seconds["sequential"])
    print(f"  per input, fixed-n / sequential time: {spread(per_input, 'x')}")
    settings = CertificationSettings(
        n0=size.n0, n=size.seq_n, batch_size=size.seq_batch, sequential=True
    )
    for task, radii in sequential_tasks(sigma_b).items():  # all inputs at once: shared passes
        smooth_task = Smooth(model, 10, 0.0, settings, (0.0, 1.0), radii)
        start = time.perf_counter()
        smooth_task.certify_many(xs[:count], [sigma_b] * count, list(range(count)))
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        rows, made = smooth_task.passes.rows, smooth_task.passes.passes
        print(
            f"  task {task}: forward passes {rows:,}, ratio fixed-n / sequential "
            f"{count * (size.n0 + size.seq_n) / rows:.3f}x; rows per pass "
            f"{rows / made / size.seq_batch:.3f} of the batch ({made:,} passes, {elapsed:.2f} s)"
        )


# -- kNN sigma precompute -------------------------------------------------------------------


def _gpu_faiss() -> tuple[bool, str]:
    if importlib.util.find_spec("faiss") is None:
        return False, "faiss is not installed"
    import faiss

    if not hasattr(faiss, "StandardGpuResources"):
        return False, "the installed faiss has no GPU support (faiss-cpu)"
    if faiss.get_num_gpus() < 1:
        return False, "faiss sees no GPU"
    return True, "faiss-gpu"


def section_knn(size: Size, device: torch.device, dry_run: bool) -> None:
    import inspect

    from idrs_lightning.sigma.knn import mean_knn_distance

    torch.backends.cuda.matmul.allow_tf32 = False  # torch's default: fp32 products are fp32
    rng = np.random.default_rng(0)
    database = rng.random((size.knn_database, size.knn_features), dtype=np.float32)
    queries = rng.random((size.knn_queries, size.knn_features), dtype=np.float32)
    chunk = inspect.signature(mean_knn_distance).parameters["chunk_size"].default
    base_dev = torch.from_numpy(database).to(device)
    query_dev = torch.from_numpy(queries).to(device)

    def gemm() -> None:
        torch.mm(query_dev, base_dev.T)

    def gemm_chunked() -> None:
        for start in range(0, len(query_dev), chunk):
            torch.mm(query_dev[start : start + chunk], base_dev.T)

    results: dict[str, np.ndarray] = {}

    def knn(backend: str) -> Callable[[], None]:
        def run() -> None:
            results[backend] = mean_knn_distance(
                queries, database, size.k, backend=backend, device=device
            )

        return run

    work: dict[str, Callable[[], None]] = {
        "GEMM floor": gemm,
        "GEMM in chunks": gemm_chunked,
        "torch": knn("torch"),
    }
    faiss_ok, why = _gpu_faiss()
    if dry_run and importlib.util.find_spec("faiss") is not None:
        faiss_ok, why = True, "faiss on the CPU (dry run)"
    if faiss_ok:
        work["faiss"] = knn("faiss")
    print(
        f"  {size.knn_queries:,} queries x {size.knn_database:,} database rows x "
        f"{size.knn_features} features, k = {size.k}, {device.type}; the floor is one "
        f"{size.knn_queries} x {size.knn_database} x {size.knn_features} fp32 matrix product "
        "on the device (TF32 off), inputs already there; mean_knn_distance's times are the "
        "whole precompute (host arrays in, copies, chunked search of "
        f"{chunk} queries, float64 re-ranking on the host)"
    )
    if not faiss_ok:
        print(f"  faiss: cannot run ({why}); only the torch backend is measured")
    for name in work:  # warm-up
        work[name]()
    times: dict[str, list[float]] = {name: [] for name in work}
    for round_index in range(size.rounds):
        for name in rotated(list(work), round_index):
            times[name].append(_timed(device, work[name]))
    flops = 2.0 * size.knn_queries * size.knn_database * size.knn_features
    for name in work:
        print(f"  {name:16s} s {spread(times[name])}")
    print(f"  GEMM floor: {flops / statistics.median(times['GEMM floor']) / 1e12:.2f} TFLOP/s")
    for name in ("torch", "faiss"):
        if name in work:
            over = ratios(times[name], times["GEMM floor"])
            print_ratio(f"time {name} / GEMM floor", over)
            print_floor_check(name, over)
    if "faiss" in results:
        gap = np.max(np.abs(results["faiss"] - results["torch"]) / results["torch"])
        print(f"  torch and faiss mean distances agree to {gap:.2e} (largest relative gap)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("section", choices=("train", "certify", "sequential", "knn"))
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU")
    args = parser.parse_args()
    size = DRY if args.dry_run else FULL
    if args.dry_run:
        device = torch.device("cpu")
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    else:
        sys.exit("no CUDA device here (--dry-run runs the same code on the CPU)")
    flush_subnormals(announce=args.section == "train")
    if args.section == "knn":
        section_knn(size, device, args.dry_run)
    else:
        {"train": section_train, "certify": section_certify, "sequential": section_sequential}[
            args.section
        ](size, device)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**30
        print(f"  peak GPU memory allocated: {peak:.1f} GiB")


if __name__ == "__main__":
    main()
