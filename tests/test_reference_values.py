"""The certification math against independent 50-digit mpmath references.

Expected values come from ``tests/reference/mpmath_reference.py`` (written from the paper,
independently of the implementation) via ``python tests/reference/make_reference_values.py``,
which writes ``reference_values.json``; tests/slow/test_reference_live.py recomputes a few
of them live.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from idrs_lightning.certification import (
    curse_threshold,
    idrs_radius,
    ncx2_cdf,
    ncx2_ppf,
    ncx2_sf,
    practical_threshold,
    xi_greater,
    xi_less,
)

REFERENCE = json.loads((Path(__file__).parent / "reference" / "reference_values.json").read_text())
# The accuracy domain promised by ncx2_*: probabilities in [1e-12, 1 - 1e-12].
SMALLEST = 1e-12


def _rows(name: str) -> list[dict]:
    return REFERENCE[name]


def test_ncx2_cdf_and_sf_to_1e9_relative() -> None:
    rows = _rows("ncx2")
    x, df, nc = (np.array([row[key] for row in rows]) for key in ("x", "df", "nc"))
    cdf, sf = ncx2_cdf(x, df, nc), ncx2_sf(x, df, nc)
    checked = 0
    for row, ours_cdf, ours_sf in zip(rows, cdf, sf, strict=True):
        for ours, ref in ((ours_cdf, row["cdf"]), (ours_sf, row["sf"])):
            if ref >= SMALLEST:
                assert ours == pytest.approx(ref, rel=1e-9), row
                checked += 1
    assert checked > 300
    assert {row["df"] for row in rows} >= {1, 2, 150528, 200000}
    assert max(row["nc"] for row in rows) >= 1e12


def test_ncx2_ppf_to_1e9_relative() -> None:
    rows = [row for row in _rows("ncx2_ppf") if SMALLEST <= row["q"] <= 1 - SMALLEST]
    q, df, nc = (np.array([row[key] for row in rows]) for key in ("q", "df", "nc"))
    np.testing.assert_allclose(ncx2_ppf(q, df, nc), [row["x"] for row in rows], rtol=1e-9)


def test_xi_functions_to_1e8_relative() -> None:
    for row in _rows("xi"):
        args = (row["a"], row["sigma0"], row["sigma1"], row["dim"], row["p_a"])
        if "xi_greater" in row:
            assert xi_greater(*args) == pytest.approx(row["xi_greater"], rel=1e-8), row
        else:
            assert xi_less(*args) == pytest.approx(row["xi_less"], rel=1e-8), row


def test_radius_is_sound_and_within_1e4_of_the_reference() -> None:
    rows = _rows("radius")
    assert {row["dim"] for row in rows} >= {2, 60, 784, 3072, 150528}
    for row in rows:
        ours = float(idrs_radius(row["sigma0"], row["r"], row["dim"], row["p_a"]))
        reference = row["radius"]
        # Never above the true radius (the reference carries its own tolerance) ...
        assert ours <= reference * (1 + row["rel_tol"]), row
        # ... and not needlessly below it.
        assert ours == pytest.approx(reference, rel=1e-4), row


def test_table_1_and_practical_thresholds() -> None:
    for name, function, rtol in (
        ("table1", curse_threshold, 1e-12),
        ("practical", practical_threshold, 1e-9),
    ):
        for row in _rows(name):
            assert function(row["dim"], row["p_a"]) == pytest.approx(row["threshold"], rel=rtol), (
                name,
                row,
            )


def test_both_ncx2_tails_sum_to_one_at_imagenet_dimension() -> None:
    df, nc = 150528, 2500.0
    x = df + nc + np.linspace(-6.0, 6.0, 13) * np.sqrt(2 * df + 4 * nc)
    np.testing.assert_allclose(ncx2_cdf(x, df, nc) + ncx2_sf(x, df, nc), 1.0, rtol=0, atol=1e-10)
