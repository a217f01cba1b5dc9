"""The project's commands (certify.py, train.py, ``python -m idrs_lightning...``) as the tests run
them: each a process of its own, started from a preloaded interpreter (tests/preloaded.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.preloaded import Preloaded

ROOT = Path(__file__).resolve().parents[1]
#: The regression LeNet on digits (IDRS, r = 0.05), trained once and kept.
CHECKPOINT = ROOT / "tests" / "data" / "regression" / "digits_lenet.ckpt"
#: certify.py at its smallest: 100 samples, 10 for selection, one batch.
CERTIFY_SMALL = ("--N", "100", "--N0", "10", "--batch-size", "100")
#: train.py at its smallest: one epoch of digits on an MLP.
TRAIN_FAST = (
    "--data.dataset=digits",
    "--data.k=5",
    "--model.network=mlp",
    "--trainer.max_epochs=1",
    "--trainer.accelerator=cpu",
    "--trainer.enable_progress_bar=false",
)


class Commands:
    """The project's commands, each a process of its own started from a preloaded interpreter
    (tests/preloaded.py), in the offline environment ``env`` unless another is given."""

    def __init__(self, runner: Preloaded, env: dict[str, str]) -> None:
        self.runner, self.env = runner, env

    def run(
        self,
        command: list[str],
        cwd: Path,
        env: dict[str, str] | None = None,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        """``command`` run to its end (at most ``timeout`` seconds) in ``cwd``, its output
        captured."""
        return self.runner.run(command, cwd, self.env if env is None else env, timeout)

    def certify(
        self, checkpoint: Path, out: Path, tmp: Path, *arguments: str, env: dict | None = None
    ) -> subprocess.CompletedProcess[str]:
        """certify.py at its smallest (:data:`CERTIFY_SMALL`), its data under ``tmp``."""
        command = [sys.executable, str(ROOT / "certify.py"), str(checkpoint), str(out)]
        small = [*CERTIFY_SMALL, "--root", str(tmp / "data")]
        return self.run([*command, *small, *arguments], tmp, env)

    def train(
        self, tmp: Path, *arguments: str, env: dict | None = None
    ) -> subprocess.CompletedProcess[str]:
        """train.py fit at its smallest (:data:`TRAIN_FAST`), its runs and data under ``tmp``."""
        command = [sys.executable, str(ROOT / "train.py"), "fit", f"--runs_dir={tmp / 'runs'}"]
        data = f"--data.root={tmp / 'data'}"
        return self.run([*command, data, *TRAIN_FAST, *arguments], tmp, env)
