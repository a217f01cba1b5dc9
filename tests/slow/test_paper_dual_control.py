"""The negative control of the Dual RS comparison: untrained experts, IDRS models and so a
router taught nothing neither agree nor hold."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.paper_records import assert_untrained_control, needs_fashion

pytestmark = pytest.mark.slow  # six tiny trainings, a router and six certifications


@needs_fashion
def test_an_untrained_dual_model_neither_agrees_nor_holds(tmp_path: Path, offline_env: dict):
    assert_untrained_control("dual", tmp_path)
