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

The ``sigma`` and ``radius`` columns are compared to 1e-12 relative instead of bit for bit:
sigma(x) comes from kNN distances (BLAS reductions) and Theorem 7's radius is a root found with
SciPy's special functions, and their last bits move between library releases (the releases
installed on 2026-12-02 moved sigmas and radii by 1 to 3 units in the last place). Every other
column, counts and bounds included, is still exact.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from tests.commands import Commands

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


def _columns(path: Path) -> tuple[list[list[str]], np.ndarray]:
    """The rows without ``time``, ``sigma`` and ``radius``; sigma and radius as numbers."""
    lines = [line.split("\t") for line in path.read_text().splitlines()]
    header = lines[0]
    close = [header.index("sigma"), header.index("radius")]
    skip = {header.index("time"), *close}
    exact = [[v for i, v in enumerate(line) if i not in skip] for line in lines]
    return exact, np.array([[float(line[i]) for i in close] for line in lines[1:]])


@pytest.mark.parametrize("case", sorted(CASES))
def test_results_are_byte_identical(case: str, tmp_path: Path, commands: Commands) -> None:
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
    done = commands.run(command, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    exact, close = _columns(out / "results.tsv")
    expected_exact, expected_close = _columns(DATA / f"{case}.tsv")
    assert exact == expected_exact
    np.testing.assert_allclose(close, expected_close, rtol=1e-12, atol=0.0)


def test_a_checkpoint_from_before_validation_splits_keeps_the_whole_split() -> None:
    """Written before validation splits existed: sigma(x)'s reference is the whole training
    split (val_fraction 0), so these files keep matching."""
    from idrs_lightning.certify_job.checkpoints import open_checkpoint

    checkpoint = open_checkpoint(str(DATA / "digits_lenet.ckpt"))
    assert "val_fraction" not in checkpoint.file.content["datamodule_hyper_parameters"]
    assert checkpoint.data_settings()["val_fraction"] == 0.0
