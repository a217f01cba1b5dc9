"""train.py interrupted mid-run: a second writer is refused while it trains, Ctrl-C says how to
resume, and the resume continues after the last finished epoch.

The run holds at the start of its third epoch (``tests.user_models.GateCallback``) and says
so, so the second writer and the Ctrl-C land mid-run whatever the machine's speed.
"""

from __future__ import annotations

import signal
import subprocess

import pytest

from tests.commands import Commands
from tests.helpers import wait_for_file
from tests.train_runs import HISTORY, ROOT, epoch, train_command, validation_epochs

pytestmark = pytest.mark.slow  # three training runs

GATE = (
    "trainer:\n"
    "  callbacks:\n"
    "    - class_path: tests.user_models.GateCallback\n"
    "      init_args: {epoch: 2}\n"
)


def test_ctrl_c_says_how_to_resume_and_a_second_writer_is_refused(
    tmp_path, offline_env, commands: Commands
) -> None:
    config = tmp_path / "gate.yaml"
    config.write_text(GATE)
    env = offline_env | {"PYTHONPATH": str(ROOT)}  # the gate, by class_path
    ready = tmp_path / "holding"
    gated = [f"--config={config}", *HISTORY, "--trainer.max_epochs=5", "--run_name=long"]
    first = subprocess.Popen(
        train_command(tmp_path, *gated),
        stderr=subprocess.PIPE,
        text=True,
        env=env | {"IDRS_TEST_GATE_READY": str(ready)},
        cwd=tmp_path,
    )
    last = tmp_path / "runs" / "long" / "checkpoints" / "last.ckpt"
    try:
        note = wait_for_file(ready, first)
        second = commands.run(
            train_command(tmp_path, *HISTORY, f"--ckpt_path={last}"), tmp_path, env
        )
        assert first.poll() is None, "the first run is held mid-run"
    finally:
        first.send_signal(signal.SIGINT)
        _, stderr = first.communicate(timeout=120)
    assert note.startswith("epoch=2 "), note
    assert second.returncode == 2, second.stderr[-2000:]
    assert f"is being written by process {first.pid}" in second.stderr
    assert first.returncode != 0
    assert f"resume with python train.py fit --ckpt_path {last}" in stderr, stderr[-2000:]
    assert epoch(last) == 1, "epochs 0 and 1 finished, the third interrupted"
    resumed = commands.run(
        train_command(tmp_path, *HISTORY, "--trainer.max_epochs=4", f"--ckpt_path={last}"),
        tmp_path,
        env,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert validation_epochs(tmp_path / "runs" / "long") == [0, 1, 2, 3]
