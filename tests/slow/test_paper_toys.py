"""A tiny-scale run of the paper's toy experiments (disc, cone) with their negative controls,
MNIST in torchvision's layout, and the refusal of CIFAR-10 without its data (the Fashion-MNIST
experiments: tests/slow/test_paper_fashion*.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from idrs_lightning.paper.__main__ import main
from idrs_lightning.paper.core import paper_numbers
from tests.paper_records import assert_untrained_control, read_record

pytestmark = pytest.mark.slow  # trainings and certifications, in this process


def test_disc_tiny(tmp_path: Path, offline_env: dict) -> None:
    main(["disc", "--scale", "tiny", "--out", str(tmp_path)])
    record = read_record(tmp_path, "disc")
    mean = next(r for r in record["comparisons"] if r["quantity"].startswith("mean sigma"))
    assert mean["ours"] == pytest.approx(0.6, rel=1e-9) and mean["verdict"] == "setting"
    low, high = record["settings"]["sigma_range"]
    assert low < 0.6 < high
    assert {"figure1.png", "figure5.png", "figure8.png", "figure9.png"} <= set(record["figures"])


def test_cone_tiny_uses_the_calibrated_angles(tmp_path: Path, offline_env: dict) -> None:
    main(["cone", "--scale", "tiny", "--out", str(tmp_path)])
    record = read_record(tmp_path, "cone")
    gaps = [r for r in record["comparisons"] if r["quantity"].endswith("IDRS - constant")]
    rows = [r for r in record["comparisons"] if r not in gaps]
    assert len(gaps) == len([r for r in rows if "IDRS" in r["quantity"]])
    expected = [r for r in paper_numbers()["table5"]["rows"] if r["dim"] in (2, 18)]
    # the constant row once, each IDRS row with m = min and m = mean
    per_row = [e for e in expected for _ in range(1 if e["r"] == 0 else 2)]
    assert [r["paper"] for r in rows] == [e["accuracy"] for e in per_row]
    assert all(0 <= r["ours"] <= 1 for r in rows)
    assert all("clamped" in r["note"] for r in rows if "prediction" in r["note"])
    assert {
        r["quantity"].split("m = ")[1].split(":")[0] for r in rows if "IDRS" in r["quantity"]
    } == {
        "min",
        "mean",
    }
    constant = [r for r, e in zip(rows, per_row, strict=True) if e["r"] == 0]
    assert constant and {r["verdict"] for r in constant} == {"calibrated"}, "fitted: no agreement"


@pytest.mark.parametrize("name", ["disc", "cone"])
def test_an_untrained_model_neither_agrees_nor_holds(
    tmp_path: Path, offline_env: dict, name: str
) -> None:
    """The negative control (tests/paper_records.py) of the toys."""
    assert_untrained_control(name, tmp_path)


def _write_mnist(root: Path, per_class_train: int = 4, per_class_test: int = 2) -> None:
    """Random digits in torchvision's raw MNIST layout (IDX files)."""
    import struct

    rng = np.random.default_rng(3)
    folder = root / "MNIST" / "raw"
    folder.mkdir(parents=True)
    for prefix, per_class in (("train", per_class_train), ("t10k", per_class_test)):
        labels = np.repeat(np.arange(10, dtype=np.uint8), per_class)
        images = rng.integers(0, 256, (len(labels), 28, 28), dtype=np.uint8)
        for name, array in (
            (f"{prefix}-images-idx3-ubyte", images),
            (f"{prefix}-labels-idx1-ubyte", labels),
        ):
            header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
            (folder / name).write_bytes(header + array.tobytes())


def test_mnist_tiny_on_torchvision_layout(tmp_path: Path, offline_env: dict) -> None:
    _write_mnist(tmp_path / "data", per_class_train=3, per_class_test=2)
    main(
        [
            "mnist",
            "--scale",
            "tiny",
            "--out",
            str(tmp_path / "out"),
            "--data-root",
            str(tmp_path / "data"),
        ]
    )
    record = read_record(tmp_path / "out", "mnist")
    quantities = [row["quantity"] for row in record["comparisons"]]
    assert "sigma 0.25: clean accuracy, idrs (Table 2)" in quantities
    paper = next(r for r in record["comparisons"] if r["quantity"].endswith("idrs (Table 2)"))
    assert paper["paper"] == paper_numbers()["table2"]["mnist"]["idrs"]["mean"][1]


def test_cifar10_without_data_is_refused_before_training(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "idrs_lightning.paper",
            "cifar10",
            "--scale",
            "tiny",
            "--out",
            str(tmp_path / "out"),
            "--data-root",
            str(tmp_path / "none"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and done.stderr.startswith("error: ")
    assert done.stderr.count("\n") == 1 and "cifar" in done.stderr.lower()
    assert not (tmp_path / "out" / "_runs").exists()
