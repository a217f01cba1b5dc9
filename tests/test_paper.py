"""The paper reproductions (``python -m idrs_lightning.paper``): every theory ID against the
paper's printed numbers and theorems, a tiny-scale run of each experiment ID, the CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import special

from idrs_lightning.certification import renyi_radius, xi_greater
from idrs_lightning.data.vision import FASHION_MNIST_SYSTEM_DIR
from idrs_lightning.paper.__main__ import chosen, main
from idrs_lightning.paper.core import paper_numbers
from idrs_lightning.paper.registry import REPRODUCTIONS

THEORY = [item.id for item in REPRODUCTIONS.values() if item.kind == "theory"]


def _record(out: Path, name: str) -> dict:
    return json.loads((out / name / "results.json").read_text())


def _verdicts(record: dict) -> dict[str, str]:
    return {row["quantity"]: row["verdict"] for row in record["comparisons"]}


@pytest.fixture(scope="module")
def theory_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("paper")
    for name in THEORY:
        main([name, "--out", str(out)])
    return out


@pytest.mark.parametrize("name", THEORY)
def test_theory_ids_write_table_results_and_figures(theory_out: Path, name: str) -> None:
    record = _record(theory_out, name)
    table = (theory_out / name / "table.md").read_text()
    assert record["comparisons"] and "| quantity | paper | ours |" in table
    for figure in record["figures"]:
        assert (theory_out / name / figure).stat().st_size > 10_000
    assert all(row["verdict"] != "differs" or row["note"] for row in record["comparisons"])


def test_table1_matches_the_paper_to_three_decimals(theory_out: Path) -> None:
    """Every entry rounds (or, where the paper truncated, truncates) to the printed value."""
    paper = paper_numbers()["table1"]
    ours = _record(theory_out, "table1")["results"]["thresholds"]
    for name, row in paper["rows"].items():
        for printed, value in zip(row["values"], ours[name], strict=True):
            assert round(value, 3) == printed or math.floor(value * 1000) / 1000 == printed


def test_fig6_7_plateau_is_phi_inverse_of_alpha_to_the_one_over_n(theory_out: Path) -> None:
    """All n samples correct give the Clopper-Pearson bound alpha^(1/n) exactly."""
    plateau = _record(theory_out, "fig6-7")["results"]["plateau_radius"]
    expected = special.ndtri(0.001 ** (1 / 100_000))
    assert expected * (1 - 1e-9) <= plateau <= expected
    assert set(_verdicts(_record(theory_out, "fig6-7")).values()) == {"agrees", "holds"}


def test_fig12_top_row_illustrates_its_sentence(theory_out: Path) -> None:
    """'Already for N = 90 we are not able to certify p_A = 0.99': true at Figure 11's ratio
    0.8, false at the ratio 0.95 the panels used before (the claim can fail)."""
    verdicts = _verdicts(_record(theory_out, "fig12"))
    assert [v for q, v in verdicts.items() if "certified" in q] == ["holds", "holds"]
    assert xi_greater(0.0, 1.0, 0.8, 90, 0.99) >= 0.5 > xi_greater(0.0, 1.0, 0.95, 90, 0.99)


def test_fig11_neyman_pearson_dominates_renyi_and_both_vanish(theory_out: Path) -> None:
    results = _record(theory_out, "fig11")["results"]
    renyi, exact = np.array(results["renyi"]), np.array(results["neyman_pearson"])
    assert renyi[0] > 0 and renyi[-1] == 0 and exact[-1] == 0
    assert np.all(exact >= renyi - 1e-9)
    # The exact radius is where xi_> crosses 1/2 (Theorem 3), checked at N = 10.
    radius = exact[9]
    assert xi_greater(radius * (1 - 1e-6), 1.0, 0.8, 10, 0.99) < 0.5
    assert xi_greater(radius * (1 + 1e-6), 1.0, 0.8, 10, 0.99) >= 0.5
    assert np.array_equal(renyi, renyi_radius(1.0, 0.8, np.arange(1, 121), 0.99))


def test_fig13_constant_bound_and_the_small_sigma_claim(theory_out: Path) -> None:
    verdicts = _verdicts(_record(theory_out, "fig13"))
    assert set(verdicts.values()) == {"agrees", "holds"}


def test_list_and_all_selection() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "idrs_lightning.paper", "list"], capture_output=True, text=True
    )
    assert done.returncode == 0
    assert [line.split()[0] for line in done.stdout.splitlines()] == list(REPRODUCTIONS)
    quick = [item.id for item in chosen("all", "quick")]
    assert "table1" in quick and "cone" in quick and "cifar10" not in quick


def test_unknown_id_is_one_line_and_status_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "idrs_lightning.paper", "table9", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "unknown reproduction 'table9'" in done.stderr
    assert not any(tmp_path.iterdir())


# ------------------------------------------------------------------------------ experiments


@pytest.mark.slow
def test_disc_tiny(tmp_path: Path, offline_env: dict) -> None:
    main(["disc", "--scale", "tiny", "--out", str(tmp_path)])
    record = _record(tmp_path, "disc")
    mean = next(r for r in record["comparisons"] if r["quantity"].startswith("mean sigma"))
    assert mean["ours"] == pytest.approx(0.6, rel=1e-9) and mean["verdict"] == "setting"
    low, high = record["settings"]["sigma_range"]
    assert low < 0.6 < high
    assert {"figure1.png", "figure5.png", "figure8.png", "figure9.png"} <= set(record["figures"])


@pytest.mark.slow
def test_cone_tiny_uses_the_calibrated_angles(tmp_path: Path, offline_env: dict) -> None:
    main(["cone", "--scale", "tiny", "--out", str(tmp_path)])
    record = _record(tmp_path, "cone")
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


needs_fashion = pytest.mark.skipif(
    not FASHION_MNIST_SYSTEM_DIR.is_dir(), reason="apt-get install dataset-fashion-mnist"
)


@pytest.mark.slow
@needs_fashion
def test_fmnist_and_table4_tiny(tmp_path: Path, offline_env: dict) -> None:
    main(["fmnist", "--scale", "tiny", "--out", str(tmp_path)])
    main(["table4", "--scale", "tiny", "--out", str(tmp_path)])
    fmnist = _record(tmp_path, "fmnist")
    assert fmnist["settings"]["seeds"] == [0, 1]
    # two batches of training leave a model near chance: nothing may agree or hold
    assert not {"agrees", "holds"} & set(_verdicts(fmnist).values()), _verdicts(fmnist)
    train_sigma = fmnist["results"]["0.25"]["train_sigma_idrs"]
    assert 0.25 < train_sigma < 0.25 * math.exp(0.01 * 20)  # C sigma_b slightly above sigma_b
    table4 = _record(tmp_path, "table4")
    quantities = [row["quantity"] for row in table4["comparisons"]]
    assert "sigma 0.25: abstention" in quantities
    assert any(q.startswith("abstention grows with sigma") for q in quantities)
    assert {r["verdict"] for r in table4["comparisons"][:-1]} == {"not comparable"}


CONTROLLED = [
    "disc",
    "cone",
    pytest.param("fmnist", marks=needs_fashion),
    pytest.param("table4", marks=needs_fashion),
]


@pytest.mark.slow
@pytest.mark.parametrize("name", CONTROLLED)
def test_an_untrained_model_neither_agrees_nor_holds(
    tmp_path: Path, offline_env: dict, name: str
) -> None:
    """The negative control of every experiment ID: the initial weights (learning rate 1e-12)
    turn every row to differs, does not hold, inconclusive, or a kind that is never judged."""
    main([name, "--scale", "tiny", "--control", "untrained", "--out", str(tmp_path)])
    record = _record(tmp_path, f"{name}-untrained")
    assert record["settings"].get("control", "untrained") == "untrained"
    verdicts = _verdicts(record)
    assert not {"agrees", "holds"} & set(verdicts.values()), verdicts
    assert set(verdicts.values()) <= {
        "differs",
        "does not hold",
        "inconclusive",
        "not comparable",
        "setting",
        "calibrated",
    }


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


@pytest.mark.slow
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
    record = _record(tmp_path / "out", "mnist")
    quantities = [row["quantity"] for row in record["comparisons"]]
    assert "sigma 0.25: clean accuracy, idrs (Table 2)" in quantities
    paper = next(r for r in record["comparisons"] if r["quantity"].endswith("idrs (Table 2)"))
    assert paper["paper"] == paper_numbers()["table2"]["mnist"]["idrs"]["mean"][1]


@pytest.mark.slow  # a certify subprocess
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
