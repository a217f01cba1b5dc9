"""certify.py resumes an interrupted run to exactly the rows of an uninterrupted one.

An interruption is simulated deterministically (a finished ``results.tsv`` cut back to its
first k rows plus a torn partial line, as a kill -9 mid-write leaves it), and once for real
with ``kill -9`` at whatever point the run has reached.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from idrs_lightning.certify_job.results import read_rows

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = Path(__file__).resolve().parent / "data" / "regression" / "digits_lenet.ckpt"
ARGS = ("--N", "300", "--N0", "32", "--batch-size", "1000", "--indices", "0:24")
COUNT = 24


def _command(out: Path, data: Path) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "certify.py"),
        str(CHECKPOINT),
        str(out),
        "--root",
        str(data),
        *ARGS,
    ]


def _certify(out: Path, data: Path, env: dict) -> None:
    done = subprocess.run(_command(out, data), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def _without_time(path: Path) -> list[dict[str, str]]:
    return [{k: v for k, v in row.items() if k != "time"} for row in read_rows(path)]


def _assert_same_rows(results: Path, reference: list[dict[str, str]]) -> None:
    rows = _without_time(results)
    indices = [int(row["idx"]) for row in rows]
    assert len(indices) == len(set(indices)), f"duplicate rows: {indices}"
    assert sorted(indices) == list(range(COUNT)), f"lost rows: {indices}"
    assert rows == reference
    assert results.read_text().endswith("\n"), "no torn line left at the end"


_REFERENCE: dict[str, Path] = {}


@pytest.fixture
def reference(tmp_path_factory, offline_env) -> Path:
    """An uninterrupted run's output directory; one run per test session."""
    if "out" not in _REFERENCE:
        base = tmp_path_factory.mktemp("reference")
        _certify(base / "out", base / "data", offline_env)
        _REFERENCE["out"] = base / "out"
    return _REFERENCE["out"]


def _data(reference: Path) -> Path:
    """The reference's --root: the recorded settings include it, so a resume must reuse it."""
    return reference.parent / "data"


def _interrupted(reference: Path, out: Path, content: str) -> None:
    """What a run killed mid-write leaves: its recorded settings and a partial results.tsv."""
    out.mkdir()
    shutil.copy(reference / "certify_settings.json", out)
    (out / "results.tsv").write_text(content)


def _cut(lines: list[str], rows: int, torn: bool) -> str:
    """The header and the first ``rows`` rows, then (``torn``) half of the next line."""
    kept = "".join(lines[: rows + 1])
    if not torn:
        return kept
    following = lines[rows + 1] if rows + 1 < len(lines) else "7\t3\t3\t0.1\n"
    return kept + following[: len(following) // 2]


@pytest.mark.parametrize(
    ("rows", "torn"),
    [
        (-1, True),
        (0, True),
        pytest.param(12, False, marks=pytest.mark.slow),
        (23, True),
        pytest.param(COUNT, True, marks=pytest.mark.slow),
    ],
    ids=["torn-header", "header+torn-row", "12", "23+torn", "all+torn"],
)
def test_a_cut_results_file_resumes_to_the_reference_rows(
    reference, tmp_path, offline_env, rows: int, torn: bool
) -> None:
    lines = (reference / "results.tsv").read_text().splitlines(keepends=True)
    assert len(lines) == COUNT + 1
    expected = _without_time(reference / "results.tsv")
    out = tmp_path / "interrupted"
    content = lines[0][: len(lines[0]) // 2] if rows < 0 else _cut(lines, rows, torn)
    _interrupted(reference, out, content)
    kept = read_rows(out / "results.tsv") if rows >= 0 else []
    assert len(kept) == max(rows, 0), "the cut file holds exactly the first rows"

    _certify(out, _data(reference), offline_env)

    _assert_same_rows(out / "results.tsv", expected)
    resumed = read_rows(out / "results.tsv")
    assert [r["time"] for r in resumed[: len(kept)]] == [r["time"] for r in kept], (
        "complete rows are kept as they were, not certified again"
    )


@pytest.mark.slow  # two certify.py runs (three alone): about 30 s on two busy cores
def test_a_run_killed_at_any_point_resumes_to_the_reference_rows(
    reference, tmp_path, offline_env
) -> None:
    expected = _without_time(reference / "results.tsv")
    out = tmp_path / "killed"
    results = out / "results.tsv"
    process = subprocess.Popen(
        _command(out, _data(reference)),
        env=offline_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the kill reaches W&B's helpers too
    )
    try:
        deadline = time.monotonic() + 240
        while process.poll() is None and time.monotonic() < deadline:
            if results.exists() and read_rows(results):
                break
            time.sleep(0.01)
        started = results.exists() and read_rows(results)
        assert started, f"no complete row in time (exit status {process.poll()})"
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:  # it had already finished
            pass
        process.wait(timeout=60)
    assert process.returncode in (0, -signal.SIGKILL)
    kept = read_rows(results)
    assert 1 <= len(kept) <= COUNT

    _certify(out, _data(reference), offline_env)

    _assert_same_rows(results, expected)
    resumed = read_rows(results)
    assert [r["time"] for r in resumed[: len(kept)]] == [r["time"] for r in kept]
