"""One writer per directory: the lock names its holder and dies with it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from idrs_lightning import directory_lock
from idrs_lightning.directory_lock import DirectoryBusy

HOLD = """
import sys, time
from pathlib import Path
from idrs_lightning import directory_lock
directory_lock.acquire(Path(sys.argv[1]))
print("held", flush=True)
time.sleep(600)
"""


def _holder(folder: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_writer_is_refused_by_name_and_a_dead_holder_frees_the_directory(
    tmp_path,
) -> None:
    holder = _holder(tmp_path)
    try:
        with pytest.raises(DirectoryBusy, match=rf"is being written by process {holder.pid} on"):
            directory_lock.acquire(tmp_path)
        assert not directory_lock.holds(tmp_path)
    finally:
        holder.kill()  # as a crash would: no clean-up code runs
        holder.wait()
    directory_lock.acquire(tmp_path)  # the lock died with its holder
    try:
        assert directory_lock.holds(tmp_path)
        assert f"process {os.getpid()} on" in (tmp_path / ".lock").read_text()
    finally:
        directory_lock.release(tmp_path)


def test_a_lock_is_held_once_per_process_and_released(tmp_path) -> None:
    directory_lock.acquire(tmp_path)
    directory_lock.acquire(tmp_path)  # the same process again: no self-refusal
    directory_lock.release(tmp_path)
    assert not directory_lock.holds(tmp_path)
    holder = _holder(tmp_path)  # released: another process takes it at once
    holder.kill()
    holder.wait()


def test_a_directory_that_cannot_hold_a_lock_is_named(tmp_path) -> None:
    with pytest.raises(OSError, match=rf"cannot lock {tmp_path / 'missing'}"):
        directory_lock.acquire(tmp_path / "missing")
