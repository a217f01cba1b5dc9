"""The Dual RS comparison's verdicts on runs whose answer is known: its claims hold where
Dual RS certifies more inputs at a radius, fail where it certifies fewer, and stay
inconclusive when a model is no better than chance."""

from __future__ import annotations

import numpy as np
import pytest

from idrs_lightning.paper.dual import GAIN_RADII, IDRS_LEVELS, LEVELS, claim_rows, p_a_lower
from idrs_lightning.paper.jobs import Certified

INPUTS, SEEDS = 200, 3


def runs_with(radius: float, correct: float = 1.0) -> list[Certified]:
    """Seeds of a method that certifies the first ``correct`` share of the inputs correctly,
    each at ``radius``."""
    right = np.arange(INPUTS) < correct * INPUTS
    results = {
        "idx": np.arange(INPUTS),
        "radius": np.where(right, radius, 0.0),
        "correct": right,
        "pA_lower": np.where(right, 0.9, np.nan),
    }
    return [Certified(summary=None, results=results) for _ in range(SEEDS)]


def methods(dual: list[Certified], others: list[Certified]) -> dict[str, list[Certified]]:
    runs = {f"constant {s}": others for s in LEVELS}
    runs |= {f"IDRS {s}": others for s in IDRS_LEVELS}
    return runs | {"Dual RS": dual}


N = 2000  # constant 0.25's largest radius at this n is 0.675, below the large radius


def verdicts(runs: dict[str, list[Certified]], blocked: str = "") -> set[str]:
    return {str(row.verdict) for row in claim_rows(runs, blocked, N)}


def test_claims_hold_where_dual_certifies_more_at_every_radius() -> None:
    assert verdicts(methods(runs_with(1.2), runs_with(0.4, 0.6))) == {"holds"}


def test_claims_fail_where_dual_certifies_less() -> None:
    assert verdicts(methods(runs_with(0.3, 0.5), runs_with(1.2))) == {"does not hold"}


def test_a_blocked_comparison_decides_nothing() -> None:
    runs = methods(runs_with(1.2), runs_with(0.4, 0.6))
    assert verdicts(runs, blocked="a model is not above chance") == {"inconclusive"}


def test_claims_at_the_radii_of_the_largest_reported_gains() -> None:
    """Dual RS beating every constant sigma at 0.25 and 1.0, but no IDRS model at 0.5 to
    1.0, holds the first claims and fails the second."""
    runs = methods(runs_with(1.2, 0.8), runs_with(0.4, 0.6))
    for sigma in IDRS_LEVELS:
        runs[f"IDRS {sigma}"] = runs_with(2.0)
    rows = {row.quantity: str(row.verdict) for row in claim_rows(runs, "", N)}
    for sigma in IDRS_LEVELS:
        for radius in GAIN_RADII:
            assert rows[f"Dual RS beats IDRS (sigma_b {sigma}) at radius {radius:g}"] == (
                "does not hold"
            )
    assert rows["Dual RS beats constant sigma 1.0 at radius 1"] == "holds"


def test_p_a_lower_counts_only_correct_predictions() -> None:
    run = runs_with(0.5, 0.5)[0]
    bounds = p_a_lower(run)
    assert bounds[: INPUTS // 2].tolist() == [0.9] * (INPUTS // 2)
    assert not bounds[INPUTS // 2 :].any()


def test_methods_that_certified_other_inputs_are_not_compared() -> None:
    runs = methods(runs_with(1.2), runs_with(0.4, 0.6))
    moved = runs_with(0.4, 0.6)
    for run in moved:
        run.results["idx"] = run.results["idx"] + 1
    runs["constant 0.5"] = moved
    with pytest.raises(ValueError, match="different inputs"):
        claim_rows(runs, "", N)


def test_dual_rs_against_itself_never_holds() -> None:
    """Dual RS compared with a constant sigma that certifies exactly what it certifies: no
    claim may hold (the differences are zero), and the claim about every constant sigma is
    not decided for it."""
    same = runs_with(0.8, 0.7)
    rows = {row.quantity: str(row.verdict) for row in claim_rows(methods(same, same), "", N)}
    assert "holds" not in rows.values(), rows
    assert rows["Dual RS beats every constant sigma at radii 0.25 and 1"] == "inconclusive"


def test_the_claim_about_every_constant_sigma_needs_every_part() -> None:
    runs = methods(runs_with(1.2, 0.8), runs_with(0.4, 0.6))
    rows = {row.quantity: str(row.verdict) for row in claim_rows(runs, "", N)}
    assert rows["Dual RS beats every constant sigma at radii 0.25 and 1"] == "holds"
    runs["constant 0.5"] = runs_with(1.2, 0.9)  # better than Dual RS at both radii
    rows = {row.quantity: str(row.verdict) for row in claim_rows(runs, "", N)}
    assert rows["Dual RS beats constant sigma 0.5 at radius 1"] == "does not hold"
    assert rows["Dual RS beats every constant sigma at radii 0.25 and 1"] == "does not hold"


def test_rows_beyond_a_constant_sigmas_reach_say_so() -> None:
    runs = methods(runs_with(1.2, 0.8), runs_with(0.4, 0.6))
    notes = {row.quantity: row.note for row in claim_rows(runs, "", N)}
    assert (
        "certifies no radius beyond 0.675" in notes["Dual RS beats constant sigma 0.25 at radius 1"]
    )
    assert "beyond" not in notes["Dual RS beats constant sigma 1.0 at radius 1"]
