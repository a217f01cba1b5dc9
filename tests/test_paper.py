"""The paper reproductions (``python -m idrs_lightning.paper``): every theory ID against the
paper's printed numbers and theorems, and the CLI (a tiny-scale run of each experiment ID:
tests/slow/test_paper_experiments.py)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import special

from idrs_lightning.certification import renyi_radius, xi_greater
from idrs_lightning.paper.__main__ import chosen, main
from idrs_lightning.paper.core import paper_numbers
from idrs_lightning.paper.registry import REPRODUCTIONS
from tests.commands import Commands
from tests.paper_records import read_record, verdicts_of

THEORY = [item.id for item in REPRODUCTIONS.values() if item.kind == "theory"]


@pytest.fixture(scope="module")
def theory_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("paper")
    for name in THEORY:
        main([name, "--out", str(out)])
    return out


@pytest.mark.parametrize("name", THEORY)
def test_theory_ids_write_table_results_and_figures(theory_out: Path, name: str) -> None:
    record = read_record(theory_out, name)
    table = (theory_out / name / "table.md").read_text()
    assert record["comparisons"] and "| quantity | paper | ours |" in table
    for figure in record["figures"]:
        assert (theory_out / name / figure).stat().st_size > 10_000
    assert all(row["verdict"] != "differs" or row["note"] for row in record["comparisons"])


def test_table1_matches_the_paper_to_three_decimals(theory_out: Path) -> None:
    """Every entry rounds (or, where the paper truncated, truncates) to the printed value."""
    paper = paper_numbers()["table1"]
    ours = read_record(theory_out, "table1")["results"]["thresholds"]
    for name, row in paper["rows"].items():
        for printed, value in zip(row["values"], ours[name], strict=True):
            assert round(value, 3) == printed or math.floor(value * 1000) / 1000 == printed


def test_fig6_7_plateau_is_phi_inverse_of_alpha_to_the_one_over_n(theory_out: Path) -> None:
    """All n samples correct give the Clopper-Pearson bound alpha^(1/n) exactly."""
    plateau = read_record(theory_out, "fig6-7")["results"]["plateau_radius"]
    expected = special.ndtri(0.001 ** (1 / 100_000))
    assert expected * (1 - 1e-9) <= plateau <= expected
    assert set(verdicts_of(read_record(theory_out, "fig6-7")).values()) == {"agrees", "holds"}


def test_fig12_top_row_illustrates_its_sentence(theory_out: Path) -> None:
    """'Already for N = 90 we are not able to certify p_A = 0.99': true at Figure 11's ratio
    0.8, false at the ratio 0.95 the panels used before (the claim can fail)."""
    verdicts = verdicts_of(read_record(theory_out, "fig12"))
    assert [v for q, v in verdicts.items() if "certified" in q] == ["holds", "holds"]
    assert xi_greater(0.0, 1.0, 0.8, 90, 0.99) >= 0.5 > xi_greater(0.0, 1.0, 0.95, 90, 0.99)


def test_fig11_neyman_pearson_dominates_renyi_and_both_vanish(theory_out: Path) -> None:
    results = read_record(theory_out, "fig11")["results"]
    renyi, exact = np.array(results["renyi"]), np.array(results["neyman_pearson"])
    assert renyi[0] > 0 and renyi[-1] == 0 and exact[-1] == 0
    assert np.all(exact >= renyi - 1e-9)
    # The exact radius is where xi_> crosses 1/2 (Theorem 3), checked at N = 10.
    radius = exact[9]
    assert xi_greater(radius * (1 - 1e-6), 1.0, 0.8, 10, 0.99) < 0.5
    assert xi_greater(radius * (1 + 1e-6), 1.0, 0.8, 10, 0.99) >= 0.5
    assert np.array_equal(renyi, renyi_radius(1.0, 0.8, np.arange(1, 121), 0.99))


def test_fig13_constant_bound_and_the_small_sigma_claim(theory_out: Path) -> None:
    verdicts = verdicts_of(read_record(theory_out, "fig13"))
    assert set(verdicts.values()) == {"agrees", "holds"}


def test_list_and_all_selection(commands: Commands, tmp_path: Path) -> None:
    done = commands.run([sys.executable, "-m", "idrs_lightning.paper", "list"], tmp_path)
    assert done.returncode == 0
    assert [line.split()[0] for line in done.stdout.splitlines()] == list(REPRODUCTIONS)
    quick = [item.id for item in chosen("all", "quick")]
    assert "table1" in quick and "cone" in quick and "cifar10" not in quick


def test_unknown_id_is_one_line_and_status_2(tmp_path: Path, commands: Commands) -> None:
    out = tmp_path / "out"
    out.mkdir()
    done = commands.run(
        [sys.executable, "-m", "idrs_lightning.paper", "table9", "--out", str(out)], tmp_path
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "unknown reproduction 'table9'" in done.stderr
    assert not any(out.iterdir())
