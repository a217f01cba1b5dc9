"""The negative control of Table 4's experiment ID: an untrained model neither agrees nor holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.paper_records import assert_untrained_control, needs_fashion

pytestmark = pytest.mark.slow  # trainings of a full epoch and certifications, in this process


@pytest.mark.parametrize("name", [pytest.param("table4", marks=needs_fashion)])
def test_an_untrained_model_neither_agrees_nor_holds(
    tmp_path: Path, offline_env: dict, name: str
) -> None:
    """The negative control (tests/paper_records.py) on Fashion-MNIST."""
    assert_untrained_control(name, tmp_path)
