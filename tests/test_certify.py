"""certify.py end to end: outputs, runner-up bounds, constant sigma and bad input (sharding
over processes: tests/slow/test_certify_sharded.py; resume: tests/test_resume.py)."""

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from idrs_lightning.certification import clopper_pearson_lower, clopper_pearson_upper, idrs_radius
from idrs_lightning.certify_job.config import CertifyConfig
from idrs_lightning.certify_job.results import read_rows
from idrs_lightning.certify_job.run import run_certification
from idrs_lightning.settings import CertificationSettings
from tests.commands import Commands

SMALL = CertificationSettings(n0=10, n=100)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, commands: Commands) -> Path:
    """A LeNet trained for one epoch on digits with IDRS evaluation settings (r = 0.05)."""
    base = tmp_path_factory.mktemp("trained")
    train = [sys.executable, str(ROOT / "train.py"), "fit", f"--runs_dir={base}", "--run_name=run"]
    done = commands.run(
        [
            *train,
            "--data.dataset=digits",
            "--data.k=5",
            "--data.r=0.05",
            f"--data.root={base / 'data'}",
            "--data.eval_subset_size=40",
            "--model.network=lenet",
            "--trainer.max_epochs=1",
            "--trainer.accelerator=cpu",
            "--trainer.enable_progress_bar=false",
        ],
        base,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return base / "run" / "checkpoints" / "last.ckpt"


@pytest.fixture
def certify(commands: Commands, tmp_path: Path) -> Callable[..., subprocess.CompletedProcess]:
    """Run certify.py on a checkpoint into an output directory with extra arguments."""

    def run(checkpoint: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, str(ROOT / "certify.py"), str(checkpoint), str(out)]
        return commands.run([*command, "--N0", "50", "--batch-size", "200", *args], tmp_path)

    return run


def test_outputs(checkpoint, tmp_path) -> None:
    settings = CertificationSettings(n0=50, n=300, batch_size=100)
    config = CertifyConfig(str(checkpoint), str(tmp_path / "out"), settings, indices="0:12")
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
    assert summary.clean_accuracy == pytest.approx(correct / 12)
    assert summary.settings["r"] == 0.05 and summary.settings["n"] == 300
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
    settings = CertificationSettings(n0=50, n=2000, separate_pb=True)
    config = CertifyConfig(str(checkpoint), str(tmp_path / "pb"), settings, indices="0:12")
    summary = run_certification(config)
    rows = read_rows(tmp_path / "pb" / "results.tsv")
    assert summary.name == "IDRS r=0.05, separate pB"
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


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"data": {"r": -0.1}}, ValueError, "r must be a non-negative number"),
        ({"checkpoint": "missing.ckpt"}, ValueError, "missing.ckpt does not exist"),
        ({"data": {"dataset": "disc"}}, ValueError, r"trained on samples of shape \(1, 8, 8\)"),
        ({"indices": "0:501"}, ValueError, "reaches past the test split of 500 inputs"),
        ({"precision": "8"}, ValueError, "precision must be one of"),
    ],
)
def test_bad_input_fails_before_sampling(checkpoint, tmp_path, changes, error, message) -> None:
    settings = {"checkpoint": str(checkpoint), "out": str(tmp_path / "out")} | changes
    with pytest.raises(error, match=message):
        run_certification(CertifyConfig(**settings, settings=CertificationSettings(n0=10, n=100)))
    assert not (tmp_path / "out" / "results.tsv").exists()


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--N0", "500", "--N", "100"], r"--N0 must not exceed n \(100\), got 500"),
        (["--N", "0"], "--N must be an integer >= 1, got 0"),
        (["--alpha", "0"], r"--alpha must be a number in \(0.0, 1.0\), got 0.0"),
        (["--batch-size", "50"], "--batch-size must be an integer >= 100, got 50"),
    ],
)
def test_bad_settings_on_the_command_line_name_the_option(option, message, capsys) -> None:
    sys.path.insert(0, str(ROOT))
    from idrs_lightning.certify_job.command import parse

    with pytest.raises(SystemExit) as stop:
        parse(["ck.ckpt", "out", *option])
    assert stop.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_constant_certification_computes_no_knn(checkpoint, tmp_path, certify) -> None:
    done = certify(
        checkpoint,
        tmp_path / "out",
        "--constant",
        "--N",
        "100",
        "--indices",
        "0:3",
        "--root",
        str(tmp_path / "fresh"),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(read_rows(tmp_path / "out" / "results.tsv")) == 3
    assert not (tmp_path / "fresh" / "knn-cache").exists()


def test_corrupt_checkpoint_and_foreign_output_file(checkpoint, tmp_path) -> None:
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(checkpoint.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"broken\.ckpt is damaged or not a PyTorch file"):
        run_certification(CertifyConfig(str(broken), str(tmp_path / "a"), SMALL))
    foreign = tmp_path / "b" / "results.tsv"
    foreign.parent.mkdir()
    foreign.write_text("my notes\n")
    with pytest.raises(ValueError, match="is not a results file of this format"):
        run_certification(CertifyConfig(str(checkpoint), str(tmp_path / "b"), SMALL))
    assert foreign.read_text() == "my notes\n"


def test_resuming_with_other_settings_is_refused(checkpoint, tmp_path) -> None:
    out = str(tmp_path / "out")
    first = CertificationSettings(n0=50, n=200)
    run_certification(CertifyConfig(str(checkpoint), out, first, indices="0:2"))
    with pytest.raises(ValueError, match="holds results of a run with other settings: n=200 th"):
        other = CertificationSettings(n0=50, n=300)
        run_certification(CertifyConfig(str(checkpoint), out, other, indices="0:2"))
    assert len(read_rows(tmp_path / "out" / "results.tsv")) == 2


def test_command_line_options_reach_the_configuration(monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    from idrs_lightning.certify_job.command import parse

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
    assert config.settings == CertificationSettings(n0=20, n=500, separate_pb=True)
    assert (config.precision, config.channels_last) == ("bf16", True)
    assert config.data == {"r": 0.02, "m": 4.5} and config.constant and config.indices == "0:9"


def test_sigma_from_another_reference_set_is_never_appended(checkpoint, tmp_path) -> None:
    """sigma(x) against the whole training split (val_fraction 0, the convention of
    checkpoints from before validation splits) and against the split less its validation
    part are other rows: the output directory refuses to mix them, naming the reference."""
    out = str(tmp_path / "out")
    whole = CertifyConfig(str(checkpoint), out, SMALL, indices="0:2", data={"val_fraction": 0.0})
    run_certification(whole)
    with pytest.raises(ValueError, match="sigma_reference="):
        run_certification(CertifyConfig(str(checkpoint), out, SMALL, indices="0:2"))
    assert len(read_rows(tmp_path / "out" / "results.tsv")) == 2
