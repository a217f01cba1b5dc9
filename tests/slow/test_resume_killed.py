"""certify.py killed for real resumes to exactly the rows of an uninterrupted run; and the
results files cut at the places the fast tests (tests/test_resume.py) leave out.

The model is ``tests.user_models.GatedNet``: ungated it certifies as any network, gated it
holds after a chosen number of rows and says so, so the kill -9 lands mid-run, after exactly
the rows it saw, whatever the machine's speed. (A kill within a row's write is the torn line
of the cut files.)
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from idrs_lightning.certify_job.results import read_rows
from tests.certify_resume import (
    COUNT,
    ROOT,
    assert_cut_file_resumes,
    assert_same_rows,
    certify,
    command,
    without_time,
)
from tests.commands import Commands
from tests.helpers import wait_for_file
from tests.user_models import GatedNet

pytestmark = pytest.mark.slow  # three certify.py runs and a resume each

GATED = "{class_path: tests.user_models.GatedNet, init_args: {num_classes: 10, channels: 1}}"
#: Rows the gated run certifies before it holds: mid-run.
HOLD_AFTER = 12


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> list[str]:
    """A GatedNet's weights (seeded) and the options certify.py needs for a state_dict."""
    torch.manual_seed(0)
    weights = tmp_path_factory.mktemp("model") / "gated.pt"
    torch.save(GatedNet(num_classes=10, channels=1).state_dict(), weights)
    return [str(weights), "--arch", GATED, "--dataset", "digits"]


@pytest.fixture(scope="module")
def env(offline_env) -> dict[str, str]:
    """The subprocesses import the gate from this checkout."""
    return offline_env | {"PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, model, env, commands: Commands) -> Path:
    """An uninterrupted (ungated) run's output directory, its --root beside it."""
    base = tmp_path_factory.mktemp("reference")
    certify(commands, command(base / "out", base / "data", model), env)
    return base / "out"


@pytest.mark.parametrize(("rows", "torn"), [(12, False), (COUNT, True)], ids=["12", "all+torn"])
def test_a_cut_results_file_resumes_to_the_reference_rows(
    reference, model, tmp_path, env, commands: Commands, rows: int, torn: bool
) -> None:
    out = tmp_path / "interrupted"
    line = command(out, reference.parent / "data", model)
    assert_cut_file_resumes(commands, reference, out, line, rows, torn, env)


def test_a_run_killed_mid_run_resumes_to_the_reference_rows(
    reference, model, tmp_path, env, commands: Commands
) -> None:
    out = tmp_path / "killed"
    results = out / "results.tsv"
    line = command(out, reference.parent / "data", model)
    ready = tmp_path / "holding"
    gated = env | {
        "IDRS_TEST_GATE": str(results),
        "IDRS_TEST_GATE_ROWS": str(HOLD_AFTER),
        "IDRS_TEST_GATE_READY": str(ready),
    }
    process = subprocess.Popen(
        line,
        env=gated,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the kill reaches W&B's helpers too
    )
    try:
        note = wait_for_file(ready, process)
        assert process.poll() is None, "held mid-run"
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:  # it had ended: the status below says how
            pass
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "killed, not finished"
    kept = read_rows(results)
    assert note.startswith(f"rows={len(kept)} "), (note, len(kept))
    assert HOLD_AFTER <= len(kept) < COUNT

    certify(commands, line, env)

    assert_same_rows(results, without_time(reference / "results.tsv"))
    resumed = read_rows(results)
    assert [r["time"] for r in resumed[: len(kept)]] == [r["time"] for r in kept]
