"""Smoke tests of the GPU checks' dry run (``bench/gpu_check.sh --dry-run``: the same code paths
on the CPU at a tiny size) and of ``bench/sequential.py`` at its smallest size: every section
runs, and the figures it prints agree with one another and with the sizes it ran at."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.bench_output import (
    assert_consistent,
    assert_floor_check,
    assert_ratio_of,
    blocks,
    floor_checks,
    measures,
    number,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CHECKPOINT = ROOT / "tests" / "data" / "regression" / "digits_lenet.ckpt"
HEADINGS = (
    "== environment ==",
    "== training throughput: ResNet-110, fp32 / bf16 autocast / channels-last ==",
    "== certification throughput: Smooth.certify_many vs bare forward ==",
    "== fixed-n vs sequential certification: 20 inputs ==",
    "== kNN sigma precompute: CIFAR-10 scale vs GEMM floor ==",
    "== DDP: 1 epoch through train.py on one device ==",
    "== summary ==",
)


def _env(offline_env: dict[str, str]) -> dict[str, str]:
    """The offline environment, with the repository importable from the bench scripts."""
    path = offline_env.get("PYTHONPATH")
    return {**offline_env, "PYTHONPATH": str(ROOT) + (f":{path}" if path else "")}


# five sections, one process each, about 50 s
def test_gpu_check_dry_run_runs_every_section(offline_env: dict[str, str]) -> None:
    result = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu_check.sh"), "--dry-run"],
        cwd=ROOT,
        env={**_env(offline_env), "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for heading in HEADINGS:
        assert heading in output, f"no heading {heading!r} in:\n{output}"
    assert "FAILED" not in output, output
    assert "distributed_backend=gloo" in output, output
    sections = dict(zip(HEADINGS, blocks(output, "^== "), strict=True))
    _training(sections[HEADINGS[1]])
    batches = blocks(sections[HEADINGS[2]], r"^  batch \d+:")
    assert len(batches) == 2, sections[HEADINGS[2]]
    for batch in batches:
        _certification(batch)
    _sequential(sections[HEADINGS[3]])
    _knn(sections[HEADINGS[4]])
    _ddp_and_summary(sections[HEADINGS[5]], sections[HEADINGS[6]])


def _all_consistent(block: str) -> dict:
    found = measures(block)
    assert found, block
    for name, measure in found.items():
        assert_consistent(name, measure)
    return found


def _training(block: str) -> None:
    m = _all_consistent(block)
    for variant in ("bf16 autocast", "channels-last fp32", "channels-last bf16"):
        speed_up = m[f"ratio speed-up {variant} / fp32"]
        assert_ratio_of(speed_up, m[f"{variant} images/s"], m["fp32 images/s"])


def _certification(block: str) -> None:
    m, floors = _all_consistent(block), floor_checks(block)
    batch = int(number(r"batch (\d+):", block))
    over_floor = m[f"ratio time certify_many / floor (batch {batch})"]
    assert_ratio_of(over_floor, m["bare forward samples/s"], m["certify_many samples/s"])
    assert_floor_check(floors["certify_many"], over_floor)


def _sequential(block: str) -> None:
    inputs = number(r"(\d+) random inputs", block)
    n0, n = number(r"n0 = (\d+)", block), number(r"n = n_max = (\d+)", block)
    fixed = number(r"forward passes: fixed-n ([\d,]+)", block)
    sequential = number(r"forward passes: fixed-n [\d,]+, sequential ([\d,]+)", block)
    low, high = number(r"min ([\d,]+)", block), number(r"max ([\d,]+)\)", block)
    assert fixed == inputs * (n0 + n), "fixed n draws n0 + n per input"
    assert low <= high <= n and inputs * (n0 + low) <= sequential <= inputs * (n0 + high)
    ratio = number(r"\); ratio ([0-9.]+)x", block)
    assert ratio == pytest.approx(fixed / sequential, abs=5e-4)
    wall_fixed = number(r"wall time: fixed-n ([0-9.]+) s", block)
    wall_sequential = number(r"sequential ([0-9.]+) s;", block)
    rate_fixed = number(r"forward passes/s: fixed-n ([\d,]+)", block)
    assert fixed / rate_fixed == pytest.approx(wall_fixed, abs=0.005 + 1e-3 * wall_fixed)
    rate_sequential = number(r"forward passes/s: fixed-n [\d,]+, sequential ([\d,]+)", block)
    assert sequential / rate_sequential == pytest.approx(wall_sequential, abs=0.006)
    per_pass = number(r"time per pass ([0-9.]+)x", block)
    assert per_pass == pytest.approx(rate_fixed / rate_sequential, abs=1e-3)
    (per_input,) = _all_consistent(block).values()
    assert per_input.rounds == inputs, "a round is one input"
    for task in ("one radius", "four radii", "full grid"):
        rows = number(rf"task {task}: forward passes ([\d,]+)", block)
        ratio = number(
            rf"task {task}: forward passes [\d,]+, ratio fixed-n / sequential ([0-9.]+)x", block
        )
        full = number(rf"task {task}: .* rows per pass ([0-9.]+) of the batch", block)
        made = number(rf"task {task}: .* of the batch \(([\d,]+) passes", block)
        assert inputs * n0 <= rows <= inputs * (n0 + n)
        assert ratio == pytest.approx(inputs * (n0 + n) / rows, abs=5e-4)
        batch = number(r"batch (\d+), radius grid", block)
        assert full == pytest.approx(rows / made / batch, abs=5e-4) and 0 < full <= 1


def _knn(block: str) -> None:
    m, floors = _all_consistent(block), floor_checks(block)
    for name in ("torch", "faiss"):
        over_floor = m[f"ratio time {name} / GEMM floor"]
        assert_ratio_of(over_floor, m[f"{name} s"], m["GEMM floor s"])
        assert_floor_check(floors[name], over_floor)
    queries = number(r"([\d,]+) queries x", block)
    database = number(r"x ([\d,]+) database rows", block)
    features = number(r"x (\d+) features", block)
    flops = 2 * queries * database * features / m["GEMM floor s"].median / 1e12
    tflops = number(r"GEMM floor: ([0-9.]+) TFLOP/s", block)
    assert tflops == pytest.approx(flops, rel=0.01, abs=0.005)
    assert number(r"mean distances agree to (\S+) \(largest relative gap\)", block) < 1e-5


def _ddp_and_summary(ddp: str, summary: str) -> None:
    assert number(r"wall time ([0-9.]+) s", ddp) > 0
    checkpoints = number(r"checkpoints: best-epoch0-acc([0-9.]+)\.ckpt last\.ckpt", ddp)
    assert 0 <= checkpoints <= 1, "a validation accuracy in its name"
    sections = [int(s) for s in re.findall(r": ok \((\d+) s\)", summary)]
    assert len(sections) == 5 and number(r"total (\d+) s; exit status 0", summary) >= sum(sections)


# a bench smoke test, as tests/slow/test_bench.py's
def test_sequential_bench_smallest_size(offline_env: dict[str, str], tmp_path: Path) -> None:
    # n = 2000 gives 14 looks (100 ... 1900, 2000), so sequential stopping is exercised
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "sequential.py"),
            "--quick",
            "--inputs",
            "4",
            "--n",
            "2000",
            "--checkpoint",
            str(CHECKPOINT),
            "--root",
            str(tmp_path / "data"),
            "--threads",
            "1",
        ],
        cwd=ROOT,
        env=_env(offline_env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    lines = out.strip().splitlines()
    tasks = ("one radius", "four radii", "full grid")
    pattern = r"forward-pass ratios: " + ", ".join(rf"{t} ([0-9]+\.[0-9]+)" for t in tasks)
    last = re.fullmatch(pattern, lines[-1])
    assert last, out
    n0, n = 100, 2000
    for i, task in enumerate(tasks):
        per_input = re.findall(rf"  {task}: sequential ([\d,]+) per input, ratio ([0-9.]+)x", out)
        assert len(per_input) == 2, out  # constant and IDRS
        rows = [float(a.replace(",", "")) for a, _ in per_input]
        for row, (_, ratio) in zip(rows, per_input, strict=True):
            assert n0 <= row <= n0 + n and float(ratio) == pytest.approx((n0 + n) / row, abs=6e-3)
        assert float(last[i + 1]) == pytest.approx((n0 + n) / np.mean(rows), abs=6e-3)
    for smoothing in ("constant (sigma = 0.25, r = 0)", "IDRS (r = 0.05"):
        assert any(line.startswith(smoothing) for line in lines), out
    assert out.count("certified accuracy, sequential - fixed n on 4 inputs") == 6, out
