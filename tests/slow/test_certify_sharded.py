"""certify.py sharded over two processes (torchrun, gloo) writes the rows of one process, merges
its shard files away, and a second run redoes nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.certify_resume import without_time
from tests.commands import CHECKPOINT, ROOT, Commands
from tests.dual_models import certify_dual

pytestmark = pytest.mark.slow  # a certify.py process and two torchrun runs of two

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def _certify_arguments(out: Path, data: Path) -> list[str]:
    """certify.py's arguments: the regression LeNet (IDRS, r = 0.05), ten inputs."""
    small = ["--N0", "50", "--batch-size", "200", "--N", "500", "--indices", "0:10"]
    return [str(ROOT / "certify.py"), str(CHECKPOINT), str(out), "--root", str(data), *small]


def test_two_processes_give_the_same_rows_as_one(tmp_path, offline_env, commands: Commands):
    data = tmp_path / "data"
    single = commands.run([sys.executable, *_certify_arguments(tmp_path / "one", data)], tmp_path)
    assert single.returncode == 0, single.stderr[-2000:]

    def two_processes() -> subprocess.CompletedProcess:
        command = [*TORCHRUN, *_certify_arguments(tmp_path / "two", data)]
        return subprocess.run(
            command, env=offline_env, cwd=tmp_path, capture_output=True, text=True, timeout=300
        )

    double = two_processes()
    assert double.returncode == 0, double.stderr[-3000:]
    assert without_time(tmp_path / "two" / "results.tsv") == without_time(
        tmp_path / "one" / "results.tsv"
    )
    assert not list((tmp_path / "two").glob("results.rank*.tsv")), "shard files merged away"
    # run again: every row is in the merged file, so nothing is redone or duplicated
    merged = (tmp_path / "two" / "results.tsv").read_text()
    again = two_processes()
    assert again.returncode == 0, again.stderr[-3000:]
    assert (tmp_path / "two" / "results.tsv").read_text() == merged
    assert not list((tmp_path / "two").glob("results.rank*.tsv"))


def test_a_dual_model_sharded_over_two_processes_gives_the_rows_of_one(
    tmp_path, offline_env, commands: Commands, router: Path
) -> None:
    """certify.py --method dual under torchrun: the merged rows are the single process's."""
    single = certify_dual(commands, router, tmp_path / "one")
    assert single.returncode == 0, single.stderr[-2000:]
    checkpoint = str(router / "checkpoints" / "last.ckpt")
    command = [*TORCHRUN, str(ROOT / "certify.py"), checkpoint, str(tmp_path / "two")]
    command += ["--method", "dual", "--N", "300", "--N0", "32", "--indices", "0:12"]
    double = subprocess.run(
        command, env=offline_env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert double.returncode == 0, double.stderr[-3000:]
    assert without_time(tmp_path / "two" / "results.tsv") == without_time(
        tmp_path / "one" / "results.tsv"
    )
    assert not list((tmp_path / "two").glob("results.rank*.tsv")), "shard files merged away"
