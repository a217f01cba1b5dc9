"""The Fashion-MNIST experiment ID and Table 4's, at tiny scale, into one output directory (the
constant model of sigma 0.25 is trained once for both)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from idrs_lightning.paper.__main__ import main
from tests.paper_records import needs_fashion, read_record, verdicts_of

pytestmark = pytest.mark.slow  # trainings and certifications, in this process


@needs_fashion
def test_fmnist_and_table4_tiny(tmp_path: Path, offline_env: dict) -> None:
    main(["fmnist", "--scale", "tiny", "--out", str(tmp_path)])
    main(["table4", "--scale", "tiny", "--out", str(tmp_path)])
    fmnist = read_record(tmp_path, "fmnist")
    assert fmnist["settings"]["seeds"] == [0, 1]
    # two batches of training leave a model near chance: nothing may agree or hold
    assert not {"agrees", "holds"} & set(verdicts_of(fmnist).values()), verdicts_of(fmnist)
    train_sigma = fmnist["results"]["0.25"]["train_sigma_idrs"]
    assert 0.25 < train_sigma < 0.25 * math.exp(0.01 * 20)  # C sigma_b slightly above sigma_b
    table4 = read_record(tmp_path, "table4")
    quantities = [row["quantity"] for row in table4["comparisons"]]
    assert "sigma 0.25: abstention" in quantities
    assert any(q.startswith("abstention grows with sigma") for q in quantities)
    assert {r["verdict"] for r in table4["comparisons"][:-1]} == {"not comparable"}
