"""Smoke tests of the GPU checks' dry run (``bench/gpu_check.sh --dry-run``: the same code paths
on the CPU at a tiny size) and of ``bench/sequential.py`` at its smallest size."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
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


@pytest.mark.slow  # five sections, one process each, about 50 s
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
    assert re.search(r"images/s median [0-9.e+]+", output), output
    assert re.search(r"ratio time certify_many / floor \(batch \d+\)", output), output
    assert re.search(r"ratio time torch / GEMM floor", output), output
    assert "distributed_backend=gloo" in output, output


@pytest.mark.slow  # a bench smoke test, as tests/test_bench.py's
def test_sequential_bench_smallest_size(offline_env: dict[str, str], tmp_path: Path) -> None:
    # n = 2000 gives two looks (1000, 2000), so sequential stopping is exercised
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
    lines = result.stdout.strip().splitlines()
    assert re.fullmatch(r"forward-pass ratio: [0-9]+\.[0-9]+", lines[-1]), result.stdout
    assert float(lines[-1].split(": ")[1]) >= 1.0, result.stdout
    for smoothing in ("constant (sigma = 0.25, r = 0)", "IDRS (r = 0.05"):
        assert any(line.startswith(smoothing) for line in lines), result.stdout
    assert result.stdout.count("certified accuracy (%; the shortcut's") == 2, result.stdout
    assert result.stdout.count("oracle floor (one test at alpha") == 2, result.stdout
    ratios = re.search(
        r"ratios: with the shortcut ([0-9.]+), oracle floor ([0-9.]+)", result.stdout
    )
    assert ratios and float(ratios[2]) >= float(lines[-1].split(": ")[1]), result.stdout
    assert "looks [1000, 2000]" in result.stdout, result.stdout
