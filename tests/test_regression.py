"""certify.py reproduces, byte for byte, results files written by an earlier version.

``data/regression/`` holds a LeNet trained for two epochs on digits (k = 5, r = trr = 0.05,
sigma_b = 0.25, m = mean; optimiser state stripped) and the ``results.tsv`` that the code of
commit d6013a6 wrote for it with the arguments below. Every column but ``time`` must match
exactly: the same seed gives the same noise, counts, bounds and radii, whatever the code's
internal layout.

One deliberate change since: sigma(x) is carried in float64 to the noise (it was rounded to
float32, which Theorem 7 does not cover). Counts and predictions are unchanged; the ``sigma``
and ``radius`` columns of the three input-dependent files were rewritten then (radii moved by
at most 2.4e-8); the constant-sigma file is still d6013a6's. A ``samples`` column (the
estimation samples drawn, ``--N`` for fixed-n CERTIFY) was appended to all four files when
sequential certification came; every other column is unchanged.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data" / "regression"

CASES = {
    "idrs": ["--N", "300", "--N0", "32", "--batch-size", "1000", "--indices", "0:16"],
    "constant": [
        "--constant",
        "--N",
        "500",
        "--N0",
        "32",
        "--batch-size",
        "200",
        "--indices",
        "0:16",
    ],
    "pb": [
        "--separate-pb",
        *("--N", "1000", "--N0", "32", "--batch-size", "400", "--indices", "3:40:3", "--seed", "7"),
    ],
    "subset": ["--N", "200", "--N0", "16", "--batch-size", "600", "--eval-subset-size", "12"],
}


def _without_time(path: Path) -> list[list[str]]:
    lines = path.read_text().splitlines()
    time_column = lines[0].split("\t").index("time")
    return [[v for i, v in enumerate(line.split("\t")) if i != time_column] for line in lines]


@pytest.mark.parametrize("case", sorted(CASES))
def test_results_are_byte_identical(case: str, tmp_path: Path, offline_env: dict) -> None:
    out = tmp_path / case
    command = [
        sys.executable,
        str(ROOT / "certify.py"),
        str(DATA / "digits_lenet.ckpt"),
        str(out),
        "--root",
        str(tmp_path / "data"),
        *CASES[case],
    ]
    done = subprocess.run(command, env=offline_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _without_time(out / "results.tsv") == _without_time(DATA / f"{case}.tsv")
