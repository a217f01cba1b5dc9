"""Bad input through the real entry points (tests/slow/test_bad_input_*.py): what a refusal must
look like (exit status 2, no traceback, one ``error:`` line naming what is wrong), that it
changed no file, and files that are no checkpoint of ours."""

from __future__ import annotations

import subprocess
from pathlib import Path

import torch

from tests.commands import CHECKPOINT


def snapshot(folder: Path) -> dict[Path, bytes]:
    """Every file under ``folder`` and its bytes."""
    return {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def assert_unchanged(folder: Path, before: dict[Path, bytes]) -> None:
    """Every file in ``folder`` is byte-identical to ``before`` and none was added."""
    after = snapshot(folder)
    changed = sorted(str(p) for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    assert not changed, f"files added, removed or changed: {changed}"


def assert_refused(done: subprocess.CompletedProcess, names: str) -> None:
    """Exit status 2, no traceback, and an ``error:`` line naming what is wrong (the only
    one; jsonargparse's own messages add indented details below theirs)."""
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert errors and names in errors[0], done.stderr[-2000:]


def checkpoint_cases(tmp: Path) -> dict[str, tuple[Path, str]]:
    """Files that are no checkpoint of ours, and what the message says of each."""
    (tmp / "folder.ckpt").mkdir()
    (tmp / "empty.ckpt").write_bytes(b"")
    (tmp / "random.ckpt").write_bytes(bytes(range(256)) * 8)
    (tmp / "cut.ckpt").write_bytes(CHECKPOINT.read_bytes()[:5000])
    state = torch.load(CHECKPOINT, weights_only=True)
    torch.save(state["state_dict"], tmp / "plain.ckpt")
    return {
        "missing": (tmp / "missing.ckpt", "missing.ckpt does not exist"),
        "directory": (tmp / "folder.ckpt", "folder.ckpt is a directory, not a checkpoint file"),
        "empty": (tmp / "empty.ckpt", "empty.ckpt is empty"),
        "random bytes": (tmp / "random.ckpt", "random.ckpt is damaged or not a PyTorch file"),
        "truncated": (tmp / "cut.ckpt", "cut.ckpt is damaged or not a PyTorch file"),
        "plain state_dict": (
            tmp / "plain.ckpt",
            "plain.ckpt is a state_dict checkpoint, which holds no data settings (nor its model",
        ),
    }
