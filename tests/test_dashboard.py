"""The W&B dashboard of training, certification and sweep runs, read back from the offline
record files (tests/wandb_records.py): names, groups, job types, config, one row per certified
epoch with epoch as x-axis, best-value summaries, artifacts, and one run across a resume
(the runs themselves: tests/slow/test_dashboard_runs.py)."""

from __future__ import annotations

from pathlib import Path

from idrs_lightning.reporting.wandb_logging import flat_config, run_id, summary_entries
from idrs_lightning.training.run_names import directory_name, run_label

ROOT = Path(__file__).resolve().parents[1]


def test_run_label_names_the_swept_hyperparameters() -> None:
    arguments = [
        "fit",
        "--config",
        "configs/fashion_mnist.yaml",
        "--data.sigma_b=0.25",
        "--data.trr=0.04",
        "--model.init_args.lr=0.05",
        "--data.root=/somewhere",
        "--trainer.max_epochs=3",
        "--run_name=x",
    ]
    assert run_label(arguments) == "sigma_b=0.25 trr=0.04 lr=0.05"
    assert run_label(["fit", "--trainer.max_epochs=3"]) is None
    name = directory_name("sigma_b=0.25 trr=0.04")
    assert name.startswith("sigma_b=0.25_trr=0.04-") and "/" not in name
    assert directory_name("sigma_b=0.25") != directory_name("sigma_b=0.25")


def test_flat_config_and_run_id(tmp_path: Path) -> None:
    tree = {"trainer": {"max_epochs": 2, "callbacks": [{"init_args": {"n": 5}}]}, "seed": 1}
    assert flat_config(tree) == {
        "trainer.max_epochs": 2,
        "trainer.callbacks.0.init_args.n": 5,
        "seed": 1,
    }
    first = run_id(tmp_path / "run")
    assert run_id(tmp_path / "run") == first and run_id(tmp_path / "other") != first


def test_summary_entries_keep_the_best_and_the_last() -> None:
    best: dict[str, float] = {}
    summary_entries(best, {"certify/accuracy_at_0.5": 0.4, "certify/abstention_rate": 0.2})
    entries = summary_entries(
        best, {"certify/accuracy_at_0.5": 0.3, "certify/abstention_rate": 0.1}
    )
    assert entries["certify/accuracy_at_0.5"] == {"max": 0.4, "last": 0.3}
    assert entries["certify/abstention_rate"] == {"min": 0.1, "last": 0.1}
