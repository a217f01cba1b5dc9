"""certify.py end to end: outputs, resume after kill -9, sharding, and bad input."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from idrs_lightning.certification import clopper_pearson_lower, clopper_pearson_upper, idrs_radius
from idrs_lightning.certify_run import CertifyConfig, run_certification
from idrs_lightning.results import read_rows

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A LeNet trained for one epoch on digits with IDRS evaluation settings (r = 0.05)."""
    base = tmp_path_factory.mktemp("trained")
    env = {key: value for key, value in ENV.items() if key != "IDRS_RUN_DIR"}
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            "fit",
            f"--runs_dir={base}",
            "--run_name=run",
            "--data.dataset=digits",
            "--data.k=5",
            "--data.r=0.05",
            f"--data.root={base / 'data'}",
            "--data.eval_subset_size=40",
            "--model.model=lenet",
            "--trainer.max_epochs=1",
            "--trainer.accelerator=cpu",
            "--trainer.enable_progress_bar=false",
        ],
        check=True,
        capture_output=True,
        env=env,
        cwd=base,
        timeout=300,
    )
    return base / "run" / "checkpoints" / "last.ckpt"


def _rows_without_time(path: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "time"} for row in read_rows(path)]


def _certify_command(checkpoint: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "certify.py"),
        str(checkpoint),
        str(out),
        "--N0",
        "50",
        "--batch-size",
        "200",
        *extra,
    ]


def _certify(checkpoint: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        _certify_command(checkpoint, out, *args), env=ENV, capture_output=True, timeout=300
    )


def test_outputs(checkpoint, tmp_path) -> None:
    config = CertifyConfig(
        str(checkpoint), str(tmp_path / "out"), n0=50, n=300, indices="0:12", batch_size=100
    )
    summary = run_certification(config)
    out = tmp_path / "out"
    rows = read_rows(out / "results.tsv")
    assert [int(r["idx"]) for r in rows] == list(range(12))
    assert set(rows[0]) >= {
        "idx",
        "label",
        "predict",
        "radius",
        "correct",
        "time",
        "sigma",
        "pA_lower",
        "pB_upper",
        "counts",
    }
    correct = sum(int(r["correct"]) for r in rows)
    assert summary["clean_accuracy"] == pytest.approx(correct / 12)
    assert summary["settings"]["rate"] == 0.05
    for name in (
        "summary.json",
        "table.txt",
        "certified_accuracy.png",
        "per_class_accuracy.png",
        "sigma_histogram.png",
    ):
        assert (out / name).exists(), name
    assert list((out / "wandb").glob("offline-run-*"))
    # The evaluation sigma(x) is the training run's kNN design (varies across inputs).
    assert len({r["sigma"] for r in rows}) > 1


def test_separate_runner_up_bound(checkpoint, tmp_path) -> None:
    config = CertifyConfig(
        str(checkpoint), str(tmp_path / "pb"), n0=50, n=2000, indices="0:12", separate_pb=True
    )
    summary = run_certification(config)
    rows = read_rows(tmp_path / "pb" / "results.tsv")
    assert summary["name"] == "IDRS r=0.05, separate pB"
    separate = 0
    for row in rows:
        p_a, p_b = float(row["pA_lower"]), float(row["pB_upper"])
        predicted = int(row["predict"])
        if predicted < 0:
            assert p_a <= p_b
            continue
        counts = [int(c) for c in row["counts"].split(",")]
        runner_up = max(c for label, c in enumerate(counts) if label != predicted)
        expected = min(float(clopper_pearson_upper(runner_up, 2000, 5e-4)), 1.0 - p_a)
        assert p_a == float(clopper_pearson_lower(counts[predicted], 2000, 5e-4)) > p_b == expected
        radius = float(idrs_radius(float(row["sigma"]), 0.05, 64, p_a, p_b))
        assert float(row["radius"]) == radius > 0.0
        separate += p_b < 1.0 - p_a
    assert separate > 0, "some runner-up bound below 1 - p_a"


def test_killed_run_resumes_to_the_same_rows(checkpoint, tmp_path) -> None:
    args = ("--N", "2000", "--indices", "0:24")
    reference = _certify(checkpoint, tmp_path / "whole", *args)
    assert reference.returncode == 0, reference.stderr[-2000:]
    out = tmp_path / "killed"
    process = subprocess.Popen(
        _certify_command(checkpoint, out, *args),
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results = out / "results.tsv"
    deadline = time.time() + 120
    while time.time() < deadline and not (results.exists() and len(read_rows(results)) >= 6):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    written = len(read_rows(results))
    assert 6 <= written < 24, "killed mid-run"
    with results.open("a") as file:  # a row torn by the kill
        file.write("7\t3\t3\t0.1")
    resumed = _certify(checkpoint, out, *args)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _rows_without_time(results) == _rows_without_time(tmp_path / "whole" / "results.tsv")


@pytest.mark.slow
def test_two_processes_give_the_same_rows_as_one(checkpoint, tmp_path) -> None:
    args = ("--N", "500", "--indices", "0:10")
    single = _certify(checkpoint, tmp_path / "one", *args)
    assert single.returncode == 0, single.stderr[-2000:]
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29517",
    ]
    double = subprocess.run(
        [*torchrun, *_certify_command(checkpoint, tmp_path / "two", *args)[1:]],
        env=ENV,
        capture_output=True,
        timeout=300,
    )
    assert double.returncode == 0, double.stderr[-3000:]
    assert _rows_without_time(tmp_path / "two" / "results.tsv") == _rows_without_time(
        tmp_path / "one" / "results.tsv"
    )


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"n0": 500, "n": 100}, ValueError, r"n0 \(500\) must not exceed n \(100\)"),
        ({"alpha": 0.0}, ValueError, r"alpha must lie in \(0, 1\)"),
        ({"data": {"r": -0.1}}, ValueError, "r must be non-negative"),
        ({"checkpoint": "missing.ckpt"}, FileNotFoundError, "missing.ckpt does not exist"),
        ({"data": {"dataset": "disc"}}, ValueError, "sample shape"),
    ],
)
def test_bad_input_fails_before_sampling(checkpoint, tmp_path, changes, error, message) -> None:
    settings = {"checkpoint": str(checkpoint), "out": str(tmp_path / "out"), "n": 100} | changes
    with pytest.raises(error, match=message):
        run_certification(CertifyConfig(**settings))
    assert not (tmp_path / "out" / "results.tsv").exists()


def test_corrupt_checkpoint_and_foreign_output_file(checkpoint, tmp_path) -> None:
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(checkpoint.read_bytes()[:1000])
    with pytest.raises(ValueError, match="cannot load checkpoint"):
        run_certification(CertifyConfig(str(broken), str(tmp_path / "a"), n=100))
    foreign = tmp_path / "b" / "results.tsv"
    foreign.parent.mkdir()
    foreign.write_text("my notes\n")
    with pytest.raises(ValueError, match="is not a results file of this format"):
        run_certification(CertifyConfig(str(checkpoint), str(tmp_path / "b"), n=100))
    assert foreign.read_text() == "my notes\n"


def test_resuming_with_other_settings_is_refused(checkpoint, tmp_path) -> None:
    out = str(tmp_path / "out")
    run_certification(CertifyConfig(str(checkpoint), out, n0=50, n=200, indices="0:2"))
    with pytest.raises(ValueError, match="holds results of a run with other settings: n=200 th"):
        run_certification(CertifyConfig(str(checkpoint), out, n0=50, n=300, indices="0:2"))
    assert len(read_rows(tmp_path / "out" / "results.tsv")) == 2


def test_command_line_options_reach_the_configuration(monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    from certify import parse

    config = parse(
        [
            "ck.ckpt",
            "out",
            "--N",
            "500",
            "--N0",
            "20",
            "--precision",
            "bf16",
            "--channels-last",
            "--r",
            "0.02",
            "--m",
            "4.5",
            "--constant",
            "--separate-pb",
            "--indices",
            "0:9",
        ]
    )
    assert config.separate_pb
    assert (config.n, config.n0, config.precision, config.channels_last) == (500, 20, "bf16", True)
    assert config.data == {"r": 0.02, "m": 4.5} and config.constant and config.indices == "0:9"
