"""The W&B dashboard of real runs, read back from their offline record files
(tests/wandb_records.py): a training run with the certification callback, resumed into one W&B
run, a certification run linked to it, and a local sweep's runs, grouped and named."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.commands import Commands
from tests.wandb_records import read_run

pytestmark = pytest.mark.slow  # training, certification and sweep processes

ROOT = Path(__file__).resolve().parents[2]


DIGITS = [
    "--data.dataset=digits",
    "--data.sigma_b=0.25",
    "--data.r=0.05",
    "--data.k=5",
    "--data.batch_size=128",
    "--trainer.limit_train_batches=3",
    "--trainer.enable_progress_bar=false",
]
CALLBACK = {
    "trainer": {
        "callbacks": [
            {
                "class_path": "callbacks.certification.CertificationCallback",
                "init_args": {
                    "num_examples": 20,
                    "settings": {"n0": 16, "n": 2000, "sequential": True},
                    "compare_constant": True,
                },
            }
        ]
    }
}


def _run(commands: Commands, command: list[str]) -> subprocess.CompletedProcess:
    done = commands.run(command, ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _offline_runs(directory: Path) -> list:
    return [read_run(d) for d in sorted(directory.glob("wandb/offline-run-*"))]


def test_training_and_certification_runs_read_back(tmp_path: Path, commands: Commands) -> None:
    config = tmp_path / "callback.yaml"
    config.write_text(yaml.safe_dump(CALLBACK))
    runs = tmp_path / "runs"
    train = [sys.executable, "train.py", "fit", "--config", str(config), f"--runs_dir={runs}"]
    data = [f"--data.root={tmp_path / 'data'}", *DIGITS]
    _run(commands, [*train, *data, "--trainer.max_epochs=2"])
    (run_dir,) = runs.iterdir()
    assert run_dir.name.startswith("dataset=digits_sigma_b=0.25_r=0.05_k=5_batch_size=128-")
    last = run_dir / "checkpoints" / "last.ckpt"
    # resuming without --run_name continues the run: same directory, same W&B run
    _run(commands, [*train, *data, "--trainer.max_epochs=3", f"--ckpt_path={last}"])
    assert list(runs.iterdir()) == [run_dir]
    first, resumed = _offline_runs(run_dir)
    assert first.run_id == resumed.run_id == (run_dir / "wandb_run_id").read_text().strip()
    assert first.name == "dataset=digits sigma_b=0.25 r=0.05 k=5 batch_size=128"
    assert first.job_type == "train"

    # the full config, flat: trainer, seed, callback settings, the model as built
    for key, value in {
        "trainer.max_epochs": 2,
        "seed_everything": 0,
        "data.sigma_b": 0.25,
        "sigma_b": 0.25,
        "num_classes": 10,
        "sample_shape": [1, 8, 8],
        "certify_callback.n": 2000,
        "certify_callback.n0": 16,
        "certify_callback.num_examples": 20,
        "certify_callback.compare_constant": True,
        "certify_callback.every_n_epochs": 1,
        "resolved.precision": "32-true",
    }.items():
        assert first.config.get(key) == value, key
    assert "config.yaml" in first.files

    # one row per certified epoch: scalars, curves and tables together, with the epoch
    rows = [
        row for run in (first, resumed) for row in run.history if "certify/clean_accuracy" in row
    ]
    assert [row["epoch"] for row in rows] == [0, 1, 2]
    for row in rows:
        assert "certify/accuracy_at_0.25" in row and "certify_constant/accuracy_at_0.25" in row
        for table in (
            "certify/certified_accuracy_table",
            "certify_constant/certified_accuracy_table",
            "certify/idrs_vs_constant_table",
            "certify/curves_by_epoch_table",
            "certify/per_class",
        ):
            assert row.get(f"{table}/_type") == "table-file", table
    epochs = {m.name: m.step_metric for m in first.metrics}
    assert epochs["certify/accuracy_at_0\\.25"] == "epoch"
    assert epochs["certify/abstention_rate"] == "epoch"
    # summaries: best and last; the resumed run continues the best over all three epochs
    values = [row["certify/accuracy_at_0.125"] for row in rows]
    assert resumed.summary["certify/accuracy_at_0.125"] == {"max": max(values), "last": values[-1]}
    abstention = [row["certify/abstention_rate"] for row in rows]
    assert resumed.summary["certify/abstention_rate"] == {
        "min": min(abstention),
        "last": abstention[-1],
    }
    assert resumed.summary["certify/accuracy_at_0"] == {
        "max": max(r["certify/accuracy_at_0"] for r in rows),
        "last": rows[-1]["certify/accuracy_at_0"],
    }
    # files: one figure per epoch (PNG and PDF), the summary JSON with epoch and settings
    folder = run_dir / "certification"
    assert (folder / "epoch_2.png").exists() and (folder / "epoch_2.pdf").exists()
    record = json.loads((folder / "epoch_2.json").read_text())
    assert record["settings"]["epoch"] == 2 and record["settings"]["certify_callback"]["n"] == 2000
    assert len(record["radius"]) == len(record["correct"]) == 20

    # certification: a run linked to the training run, resumed into one W&B run
    out = tmp_path / "certify"
    certify = [sys.executable, "certify.py", str(last), str(out), "--N", "200", "--N0", "16"]
    _run(commands, [*certify, "--indices", "0:4", "--root", str(tmp_path / "data")])
    _run(commands, [*certify, "--indices", "0:4", "--root", str(tmp_path / "data")])  # resumes
    one, two = _offline_runs(out)
    assert one.run_id == two.run_id and one.job_type == "certify"
    assert one.config["train_run_id"] == first.run_id == one.group
    assert one.config["sigma_b"] == 0.25 and "data.sigma_b" not in one.config  # training's key
    produced = [a for a in two.artifacts if a.type == "certification-results"]
    assert [a.name for a in produced] == [f"results-{two.run_id}"]
    assert two.history[-1].get("certify/certified_accuracy_table/_type") == "table-file"


def test_a_local_sweep_groups_and_names_its_runs(tmp_path: Path, commands: Commands) -> None:
    config = tmp_path / "callback.yaml"
    config.write_text(yaml.safe_dump(CALLBACK))
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(
        yaml.safe_dump(
            {
                "program": "train.py",
                "method": "grid",
                "metric": {"name": "certify/average_certified_radius", "goal": "maximize"},
                "parameters": {"data.sigma_b": {"values": [0.12, 0.5]}},
                "command": [
                    "${env}",
                    "${interpreter}",
                    "${program}",
                    "fit",
                    "--config",
                    str(config),
                    "${args}",
                ],
            }
        )
    )
    runs = tmp_path / "runs"
    extra = [f"--runs_dir={runs}", f"--data.root={tmp_path / 'data'}", "--trainer.max_epochs=1"]
    extra += [a for a in DIGITS if not a.startswith("--data.sigma_b")]
    _run(
        commands, [sys.executable, "-m", "idrs_lightning.training.sweep", str(sweep), "--", *extra]
    )
    found = [run for directory in sorted(runs.iterdir()) for run in _offline_runs(directory)]
    assert len(found) == 2
    assert found[0].group == found[1].group and found[0].group.startswith("sweep-")
    assert sorted(run.name.split()[0] for run in found) == ["sigma_b=0.12", "sigma_b=0.5"]
    objective = [run.summary["certify/average_certified_radius"]["max"] for run in found]
    assert objective[0] != objective[1]
