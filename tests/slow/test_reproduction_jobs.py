"""The reproductions' training job: a finished run is reused only for the same request."""

from __future__ import annotations

import pytest

from idrs_lightning.paper.jobs import REQUEST_FILE, train_grid
from idrs_lightning.validation import InvalidSetting

pytestmark = pytest.mark.slow  # a train.py process

FIXED = {
    "data.dataset": "digits",
    "data.k": 5,
    "model.network": "mlp",
    "trainer.max_epochs": 1,
    "trainer.limit_train_batches": 1,
    "trainer.accelerator": "cpu",
}


def test_a_finished_run_is_reused_only_for_the_same_request(tmp_path) -> None:
    runs = tmp_path / "runs"
    fixed = {**FIXED, "data.root": str(tmp_path / "data")}
    (checkpoint,) = train_grid(runs, {"seed_everything": [0]}, lambda p: "one", fixed).values()
    assert (checkpoint.parent.parent / REQUEST_FILE).is_file()
    written = checkpoint.stat().st_mtime_ns
    train_grid(runs, {"seed_everything": [0]}, lambda p: "one", fixed)
    assert checkpoint.stat().st_mtime_ns == written, "reused, not trained again"
    # the same name asked for with another option (other data: no reuse, no overwrite)
    other = {**fixed, "data.val_fraction": 0.0}
    with pytest.raises(InvalidSetting, match=r"out .*its options differ: --data.val_fraction"):
        train_grid(runs, {"seed_everything": [0]}, lambda p: "one", other)
    # a run kept by a version that recorded no request is not trusted either
    (checkpoint.parent.parent / REQUEST_FILE).unlink()
    with pytest.raises(InvalidSetting, match="records no request"):
        train_grid(runs, {"seed_everything": [0]}, lambda p: "one", fixed)
    assert checkpoint.stat().st_mtime_ns == written
