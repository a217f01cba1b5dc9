"""The cone's radial-scale calibration against Table 5's constant-sigma column, through the
trained pipeline (Appendix A.5): the stored fit, what it may be used for, and the search."""

import json
import math

import numpy as np
import pytest

from idrs_lightning.data.sources import load_split
from idrs_lightning.paper import calibration

STORED = json.loads(calibration.JSON_PATH.read_text(encoding="utf-8"))


def test_stored_rows_are_table5_constant_sigma_fitted_on_trials() -> None:
    table = calibration.table5_constant_rows()
    assert [(r["dim"], r["sigma"], r["target"]) for r in STORED["rows"]] == [
        (r["dim"], r["sigma"], r["accuracy"]) for r in table
    ]
    for row in STORED["rows"]:
        trials = dict(map(tuple, row["trials"]))
        assert trials[row["radial_scale"]] == row["achieved"], "the kept scale was measured"
        nearest = min(abs(a - row["target"]) for a in trials.values())
        assert abs(row["achieved"] - row["target"]) == nearest
        low, high = calibration.SCALE_RANGE
        bracketed = trials[low] < row["target"] <= trials[high]
        expected = (
            "out of reach" if not bracketed else "matched" if abs(row["gap"]) <= 0.01 else "near"
        )
        assert row["status"] == expected
    assert "validation split" in STORED["procedure"] and STORED["epochs"] == calibration.EPOCHS


def test_fixed_generator_options_are_the_small_angle_and_the_defaults(tmp_path) -> None:
    stored = STORED["generator"]
    assert stored["half_angle_deg"] == 5.0 and stored["radial_df"] == 2.0
    assert stored == calibration.generator_options()
    # each stored option is load_split's default: given or left out, the same points
    for split in ("train", "test"):
        default = load_split("cone", split, tmp_path, dim=6, radial_scale=1.0)
        given = load_split("cone", split, tmp_path, dim=6, radial_scale=1.0, **stored)
        np.testing.assert_array_equal(given.x, default.x)
        np.testing.assert_array_equal(given.y, default.y)


def test_load_maps_dimension_to_generator_options() -> None:
    options = calibration.load()
    assert sorted(options) == [2, 6, 18, 60, 180, 400]
    for row in STORED["rows"]:
        assert options[row["dim"]] == {"half_angle_deg": 5.0, "radial_scale": row["radial_scale"]}


def test_load_refuses_a_calibration_with_other_fixed_options(tmp_path) -> None:
    payload = json.loads(json.dumps(STORED))
    payload["generator"]["half_angle_deg"] = 10.0
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(payload), encoding="utf-8")
    with pytest.raises(RuntimeError, match="rerun"):
        calibration.load(path)


@pytest.mark.parametrize(
    ("target", "status"), [(0.83, "matched"), (0.834, "matched"), (0.4, "out of reach")]
)
def test_the_search_keeps_the_trial_nearest_the_target(monkeypatch, tmp_path, target, status):
    """The search alone, on an accuracy that climbs with log(scale) in steps of 0.01 (as a
    validation split of 100 points measures it): bracket, bisect, keep the nearest trial."""

    def staircase(dim: int, sigma: float, scale: float, runs_dir) -> float:
        fraction = (math.log10(scale) + 1) / 5  # 0 at the bracket's low end, 1 at its high end
        return round(0.5 + 0.5 * min(max(fraction, 0.0), 1.0), 2)

    monkeypatch.setattr(calibration, "validation_accuracy", staircase)
    row = calibration.calibrate(60, 1.0, target, tmp_path)
    assert row["status"] == status
    trials = dict(map(tuple, row["trials"]))
    assert len(trials) == (2 + calibration.BISECTIONS if status != "out of reach" else 2)
    assert row["achieved"] == trials[row["radial_scale"]]
    if status == "matched":
        assert abs(row["achieved"] - target) <= 0.01
