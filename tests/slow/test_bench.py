"""Smoke tests of the benchmarks: each runs at its tiniest size (``--quick``) and prints the
subnormal setting, its measurements and ratios (median, min-max, spread over rounds) and its
floor checks; the figures must agree with one another (a ratio within the quotient of its
parts, a floor check with its ratio's range) and the correctness figures must be in range."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.bench_output import (
    assert_consistent,
    assert_floor_check,
    assert_product,
    assert_ratio_of,
    floor_checks,
    measures,
    number,
    scaled,
)

pytestmark = pytest.mark.slow  # six bench processes, about 65 s

ROOT = Path(__file__).resolve().parents[2]


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


def _all_consistent(block: str) -> dict:
    """The block's measurements, each consistent and all over the same number of rounds."""
    found = measures(block)
    assert found, block
    rounds = next(iter(found.values())).rounds
    for name, measure in found.items():
        assert_consistent(name, measure, rounds)
    return found


def _radius(output: str) -> None:
    head, *costs = re.split(r"^(?=cost N=)", output, flags=re.MULTILINE)
    _radius_cost(costs)
    parts = re.split(r"^(?=N=)", head, flags=re.MULTILINE)[1:]
    assert len(parts) == 4, output  # two dimensions, each with and without a runner-up bound
    for block in parts:
        m, floors = _all_consistent(block), floor_checks(block)
        if "distinct p_a" in block.splitlines()[0]:
            inputs = number(r": (\d+) inputs", block)
            distinct = number(r"\((\d+) distinct p_a\)", block)
            per_input = m["ratio Algorithm 3 / idrs_radius, per input"]
            assert_ratio_of(per_input, m["Algorithm 3 scipy ms/input"], m["idrs_radius ms/input"])
            assert per_input.low > 1, "the vectorised radius is faster than Algorithm 3 on scipy"
            per_distinct = m["ratio Algorithm 3 / idrs_radius, per distinct p_a"]
            assert per_distinct.median == pytest.approx(
                per_input.median * distinct / inputs, rel=0.01
            )
            over_floor = m["ratio idrs_radius / cohen_radius (floor)"]
            assert_ratio_of(
                over_floor, m["idrs_radius ms/input"], m["cohen_radius (floor) ms/input"]
            )
            assert_floor_check(floors["idrs_radius"], over_floor)
            assert number(r"max relative radius difference to the baseline: (\S+)", block) < 1e-4
        else:
            ours = m["idrs_radius(p_a, p_b) ms/input"]
            alone = m["ratio idrs_radius(p_a, p_b) / idrs_radius(p_a)"]
            assert_ratio_of(alone, ours, m["idrs_radius(p_a) alpha ms/input"])
            over_floor = m["ratio idrs_radius(p_a, p_b) / floor"]
            assert_ratio_of(over_floor, ours, m["floor, its p_a alone ms/input"])
            assert_floor_check(floors["idrs_radius(p_a, p_b)"], over_floor)
            certified = number(r"certified ([0-9.]+)% of inputs", block)
            assert 0 <= certified <= 100
        assert "subnormals not flushed: identical" in block


def _radius_cost(costs: list[str]) -> None:
    """Each low-N setting: the radius step's times, and their shares of the sampling."""
    assert len(costs) == 4, costs  # the cone at three N, Fashion-MNIST
    rows = {
        "idrs_radius, one per call": "idrs_radius, one per call ms/input",
        "idrs_radius, vectorised": "idrs_radius, vectorised ms/input",
        "radius_thresholds, 13 radii": "radius_thresholds, 13 radii ms/input",
        "idrs_radius(p_a, p_b)": "idrs_radius(p_a, p_b) ms/input",
    }
    worst = 0.0
    for block in costs:
        m = _all_consistent(block)
        sampling = m["sampling, n = 100,000 s/input"]
        for text, time_key in rows.items():
            share = m[f"share of sampling, {text}"]
            # share (%) = step (ms) / sampling (s) / 10, round by round
            assert_ratio_of(scaled(share, 1e-2), scaled(m[time_key], 1e-3), sampling)
            worst = max(worst, share.high)
    largest = number(r"largest share of the sampling in any round: (\S+)%", costs[-1])
    assert largest == pytest.approx(worst, rel=0.01, abs=1e-3)


def _knn_sigma(output: str) -> None:
    m, floors = _all_consistent(output), floor_checks(output)
    for method in ("torch", "faiss", "sklearn"):
        over_floor = m[f"ratio {method} / floor"]
        assert_ratio_of(over_floor, m[f"{method} s"], m["floor s"])
        assert_floor_check(floors[method], over_floor)
    for method in ("torch", "faiss"):
        speed_up = m[f"ratio sklearn / {method} (speed-up)"]
        assert_ratio_of(speed_up, m["sklearn s"], m[f"{method} s"])
    for peak, increase in re.findall(r"peak (\d+) MiB \(\+(\d+) over the inputs\)", output):
        assert 0 <= int(increase) <= int(peak)


def _train_step(output: str) -> None:
    m, floors = _all_consistent(output), floor_checks(output)
    rate = {name: m[f"{name} steps/s"] for name in ("input-dependent", "constant", "no noise")}
    # a ratio of times is the inverse ratio of the rates
    versus_constant = m["ratio time input-dependent / constant"]
    assert_ratio_of(versus_constant, rate["constant"], rate["input-dependent"])
    constant_floor = m["ratio time constant / no noise (floor)"]
    assert_ratio_of(constant_floor, rate["no noise"], rate["constant"])
    over_floor = m["ratio time input-dependent / no noise (floor)"]
    assert_ratio_of(over_floor, rate["no noise"], rate["input-dependent"])
    assert_product(over_floor, versus_constant, constant_floor)
    assert_floor_check(floors["input-dependent"], over_floor)
    assert number(r"subnormal values in weights and momentum after the rounds: (\d+)", output) == 0


def _certify_throughput(output: str) -> None:
    head, *steps = re.split(r"^(?=  \S.* radius step:)", output, flags=re.MULTILINE)
    m, floors = _all_consistent(head), floor_checks(head)
    rate = {
        "floor": m["bare forward, its noisy rows (floor) samples/s"],
        "identical": m["bare forward, identical rows samples/s"],
        "ours": m["Smooth.certify samples/s"],
        "baseline": m["baseline loop samples/s"],
    }
    ours_floor = m["ratio time Smooth.certify / floor"]
    assert_ratio_of(ours_floor, rate["floor"], rate["ours"])
    baseline_ours = m["ratio time baseline loop / Smooth.certify"]
    assert_ratio_of(baseline_ours, rate["ours"], rate["baseline"])
    baseline_floor = m["ratio time baseline loop / floor"]
    assert_ratio_of(baseline_floor, rate["floor"], rate["baseline"])
    assert_product(baseline_floor, baseline_ours, ours_floor)
    assert_ratio_of(m["ratio time identical rows / floor"], rate["floor"], rate["identical"])
    assert_floor_check(floors["Smooth.certify"], ours_floor)
    assert_floor_check(floors["baseline loop"], baseline_floor)
    rows = number(r": (\d+) rows in", head)
    assert len(steps) == 2, output
    for step in steps:
        found = _all_consistent(step)
        (milliseconds,) = [v for k, v in found.items() if k.endswith("radius step: ms")]
        share = found["share of Smooth.certify"]
        # share = radius step / Smooth.certify's time, and that time is rows / its rate
        assert_product(scaled(share, 1e-2), scaled(milliseconds, 1e-3 / rows), rate["ours"])
        assert share.high < 100


def _callback_cost(output: str) -> None:
    m, floors = _all_consistent(output), floor_checks(output)
    assert_ratio_of(scaled(m["callback / epoch"], 1e-2), m["callback s"], m["epoch s"])
    over_floor = m["ratio time callback / floor"]
    assert_ratio_of(over_floor, m["callback s"], m["floor (its bare passes) s"])
    assert_floor_check(floors["callback"], over_floor)
    assert 0 <= number(r"clean accuracy ([0-9.]+)", output) <= 1
    assert number(r"ACR ([0-9.]+)", output) >= 0


def _knn_sharded(output: str) -> None:
    m, floors = _all_consistent(output), floor_checks(output)
    for name, floor in (
        ("in-memory", "floor (1 process)"),
        ("streamed 1 process", "floor (1 process)"),
        ("streamed 2 processes", "floor (2 processes)"),
    ):
        over_floor = m[f"ratio {name} / {floor}"]
        assert_ratio_of(over_floor, m[name], m[floor])
        assert_floor_check(floors[name], over_floor)
    for name in ("streamed 1 process", "streamed 2 processes"):
        assert_ratio_of(m[f"ratio {name} / in-memory"], m[name], m["in-memory"])
    speed_up = m["ratio streamed 1 process / 2 processes (speed-up)"]
    assert_ratio_of(speed_up, m["streamed 1 process"], m["streamed 2 processes"])
    peaks = re.findall(r"peak RSS (\d+) MB \(\+(\d+) over (\d+) after imports\)", output)
    assert len(peaks) == 7, output  # floor 1 + 2 ranks, in-memory, streamed 1 + 2 ranks
    for peak, increase, base in peaks:
        assert abs(int(peak) - int(base) - int(increase)) <= 1, (peak, increase, base)
    results = number(
        r"results bit-identical across variants and rounds: yes \((\d+) results", output
    )
    assert results == 3 * m["in-memory"].rounds, "every variant in every round"


CHECKS: dict[str, Callable[[str], None]] = {
    "radius.py": _radius,
    "knn_sigma.py": _knn_sigma,
    "train_step.py": _train_step,
    "certify_throughput.py": _certify_throughput,
    "callback_cost.py": _callback_cost,
    "knn_sharded.py": _knn_sharded,
}


@pytest.mark.parametrize("script", sorted(CHECKS))
def test_bench_quick_figures_agree_with_one_another(
    script: str, offline_env: dict[str, str], tmp_path: Path
) -> None:
    extra = ("--root", str(tmp_path)) if script == "callback_cost.py" else ()
    output = _run(script, offline_env, *extra)
    assert re.search(r"subnormals flushed to zero( in every worker)?: on", output), output
    assert floor_checks(output), output
    CHECKS[script](output)
