"""The sharded kNN precompute in real processes (torchrun, gloo) on a generated image tree:
two processes write the files of one and of brute force, and a run killed mid-run resumes to
the same files."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from idrs_lightning.data.datamodule import SmoothingDataModule
from idrs_lightning.data.sources import load_split
from tests.helpers import brute_force_mean_knn, wait_for_file
from tests.image_tree import make_image_tree
from tests.user_models.gated_precompute import FINISHED

pytestmark = pytest.mark.slow  # torchrun processes

ROOT = Path(__file__).resolve().parents[2]
OPTIONS = {"resize": 32, "crop": 32}
DATA = [
    "--data.dataset=imagefolder",
    "--data.dataset_options={resize: 32, crop: 32}",
    "--data.k=5",
    "--data.trr=0.01",
    "--data.r=0.01",
]


def _precompute(
    root: Path, processes: int, *extra: str, module: str = "idrs_lightning.sigma.precompute"
) -> list[str]:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    launcher.append(f"--nproc_per_node={processes}")
    return [*launcher, "-m", module, *DATA, f"--data.root={root}", *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=300)


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (torchrun starts its workers in sessions of their own)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _entries(root: Path) -> dict[str, bytes]:
    return {file.name: file.read_bytes() for file in sorted((root / "knn-cache").glob("*.npz"))}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return make_image_tree(tmp_path_factory.mktemp("tree"))


def _copy(tree: Path, tmp_path: Path) -> Path:
    """The same files (copied with their modification times: the same identity)."""
    return Path(shutil.copytree(tree, tmp_path / "tree"))


@pytest.fixture(scope="module")
def reference(tree, tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    root = _copy(tree, tmp_path_factory.mktemp("one"))
    done = _run(_precompute(root, 1))
    assert done.returncode == 0, done.stderr
    return root, _entries(root)


def _rows(found: np.ndarray, source: np.ndarray) -> list[int]:
    """For each row of ``found``, the one row of ``source`` it is."""
    return [int(np.flatnonzero(np.all(source == row, axis=(1, 2, 3))).item()) for row in found]


def test_two_processes_write_the_files_of_one_and_of_brute_force(tree, reference, tmp_path) -> None:
    one = reference[1]
    root = _copy(tree, tmp_path)
    done = _run(_precompute(root, 2, "--data.knn_query_chunk=7", "--data.knn_database_chunk=11"))
    assert done.returncode == 0, done.stderr
    assert _entries(root) == one and len(one) == 3  # train (leave-one-out), validation, test
    datamodule = SmoothingDataModule(
        "imagefolder", root=str(root), dataset_options=OPTIONS, k=5, r=0.01, trr=0.01
    )
    datamodule.setup("fit")
    datamodule.prepare_sigma()  # the distances, read from the files just written
    assert _entries(root) == one, "read, not written again"
    inputs = {
        split: datamodule.certification_inputs(range(datamodule.split_size(split)), split=split)
        for split in ("val", "test")
    }
    rows = {split: found.x.numpy() for split, found in inputs.items()}
    # the training split is train/ less the validation rows carved from it
    source = load_split("imagefolder", "train", root, **OPTIONS)
    everything = source.rows(np.arange(len(source)))
    training = np.delete(everything, _rows(rows["val"], everything), axis=0)
    assert len(training) == datamodule.split_size("train") and len(rows["test"]) == 18
    for split in ("val", "test"):
        np.testing.assert_allclose(
            datamodule.distances[split],
            brute_force_mean_knn(rows[split], training, 5, False),
            rtol=1e-14,
        )
    np.testing.assert_allclose(
        datamodule.distances["train"],
        brute_force_mean_knn(training, training, 5, True),
        rtol=1e-14,
    )


def test_a_precompute_killed_mid_run_resumes_to_the_same_files(tree, reference, tmp_path) -> None:
    """The run holds (tests.user_models.gated_precompute) after 3 finished query chunks of the
    training split's 54, both ranks mid-run; then every process is killed."""
    one = reference[1]
    root = _copy(tree, tmp_path)
    chunks = ["--data.knn_query_chunk=1", "--data.knn_database_chunk=1"]
    ready = tmp_path / "holding"
    gate = {
        "IDRS_TEST_KNN_CACHE": str(root / "knn-cache"),
        "IDRS_TEST_GATE_CHUNKS": "3",
        "IDRS_TEST_GATE_READY": str(ready),
    }
    running = subprocess.Popen(
        _precompute(root, 2, *chunks, module="tests.user_models.gated_precompute"),
        env=_env() | gate,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        note = wait_for_file(ready, running)
        workers = _descendants(running.pid)
        assert running.poll() is None and len(workers) >= 2, "torchrun and its workers, held"
    finally:
        for pid in [*_descendants(running.pid), running.pid]:  # the workers, then torchrun
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        running.wait(timeout=60)
    assert running.returncode == -signal.SIGKILL
    finished = list((root / "knn-cache").glob(FINISHED))
    assert note.startswith("chunks=3 ") and len(finished) == 3, (note, finished)
    assert not _entries(root), "no split finished"
    resumed = _run(_precompute(root, 2, *chunks))
    assert resumed.returncode == 0, resumed.stderr
    assert "3 query chunks already done, resuming" in resumed.stderr + resumed.stdout
    assert _entries(root) == one
    assert not list((root / "knn-cache").glob("*.partial"))
