"""Smoke tests of the benchmarks: each runs at its tiniest size (``--quick``) and prints the
subnormal setting, its ratio lines (median, min-max, spread over rounds) and its floor check."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NUMBER = r"[-+0-9.e]+"
SPREAD = rf"median {NUMBER}{{unit}} \(min-max {NUMBER}-{NUMBER}, spread {NUMBER}% over \d+ rounds\)"

CASES = {
    "radius.py": [
        "Algorithm 3 / idrs_radius, per input",
        "Algorithm 3 / idrs_radius, per distinct p_a",
        "idrs_radius / cohen_radius (floor)",
        "idrs_radius(p_a, p_b) / idrs_radius(p_a)",
        "idrs_radius(p_a, p_b) / floor",
    ],
    "knn_sigma.py": [
        "torch / floor",
        "faiss / floor",
        "sklearn / floor",
        "sklearn / torch (speed-up)",
    ],
    "train_step.py": [
        "time input-dependent / constant",
        "time constant / no noise (floor)",
        "time input-dependent / no noise (floor)",
    ],
    "certify_throughput.py": [
        "time Smooth.certify / floor",
        "time baseline loop / Smooth.certify",
        "time baseline loop / floor",
    ],
    "callback_cost.py": ["time callback / floor"],
    "knn_sharded.py": [
        "in-memory / floor (1 process)",
        "streamed 1 process / floor (1 process)",
        "streamed 2 processes / floor (2 processes)",
        "streamed 1 process / in-memory",
        "streamed 2 processes / in-memory",
        "streamed 1 process / 2 processes (speed-up)",
    ],
}


def _run(script: str, offline_env: dict[str, str], *extra: str) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), "--quick", *extra],
        cwd=ROOT,
        env=offline_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.slow  # six bench processes, about 65 s
@pytest.mark.parametrize("script", sorted(CASES))
def test_bench_quick_prints_ratios_with_spread(
    script: str, offline_env: dict[str, str], tmp_path: Path
) -> None:
    extra = ("--root", str(tmp_path)) if script == "callback_cost.py" else ()
    output = _run(script, offline_env, *extra)
    assert re.search(r"subnormals flushed to zero( in every worker)?: on", output), output
    for label in CASES[script]:
        line = rf"ratio {re.escape(label)}: +{SPREAD.format(unit='x')}"
        assert re.search(line, output), f"no line {line!r} in:\n{output}"
    assert re.search(r"floor check: .* below .* in \d+ of \d+ rounds", output), output
    if script == "callback_cost.py":
        assert re.search(rf"callback / epoch: {SPREAD.format(unit='%')}", output), output
