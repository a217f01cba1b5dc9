"""A trial of the cone's radial-scale calibration trains the pipeline and measures the final
model on the validation split only."""

import pytest

from idrs_lightning.paper import calibration

pytestmark = pytest.mark.slow  # one training run


def test_a_trial_measures_the_final_model_on_the_validation_split(monkeypatch, tmp_path) -> None:
    """Nothing of the test split enters the fit: every input a trial certifies is read from the
    validation split."""
    read = []

    class Recording(calibration.SmoothingDataModule):
        def certification_inputs(self, indices, constant=False, split="test"):
            read.append(split)
            return super().certification_inputs(indices, constant, split)

    monkeypatch.setattr(calibration, "SmoothingDataModule", Recording)
    accuracy = calibration.validation_accuracy(2, 0.5, 4.0, tmp_path)
    assert read == ["val"] and 0.5 <= accuracy <= 1.0
