"""What a paper reproduction wrote (``python -m idrs_lightning.paper``), read back, and the
negative control every experiment ID must pass."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from idrs_lightning.data.vision import FASHION_MNIST_SYSTEM_DIR
from idrs_lightning.paper.__main__ import main

#: The experiments on Fashion-MNIST need its Debian package's files.
needs_fashion = pytest.mark.skipif(
    not FASHION_MNIST_SYSTEM_DIR.is_dir(), reason="apt-get install dataset-fashion-mnist"
)


def read_record(out: Path, name: str) -> dict[str, Any]:
    """The results.json of reproduction ``name`` under ``out``."""
    return json.loads((out / name / "results.json").read_text())


def verdicts_of(record: dict[str, Any]) -> dict[str, str]:
    """Each compared quantity's verdict."""
    return {row["quantity"]: row["verdict"] for row in record["comparisons"]}


def assert_untrained_control(name: str, out: Path) -> None:
    """The negative control of experiment ``name``: the initial weights (learning rate 1e-12)
    turn every row to differs, does not hold, inconclusive, or a kind that is never judged."""
    main([name, "--scale", "tiny", "--control", "untrained", "--out", str(out)])
    record = read_record(out, f"{name}-untrained")
    assert record["settings"].get("control", "untrained") == "untrained"
    verdicts = verdicts_of(record)
    assert not {"agrees", "holds"} & set(verdicts.values()), verdicts
    assert set(verdicts.values()) <= {
        "differs",
        "does not hold",
        "inconclusive",
        "not comparable",
        "setting",
        "calibrated",
    }
