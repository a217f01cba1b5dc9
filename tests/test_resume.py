"""certify.py resumes an interrupted run to exactly the rows of an uninterrupted one.

An interruption is simulated deterministically: a finished ``results.tsv`` cut back to its
first k rows plus a torn partial line, as a kill -9 mid-write leaves it. More cuts, and a run
killed for real, are in tests/slow/test_resume_killed.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.certify_resume import assert_cut_file_resumes, certify, command
from tests.commands import Commands


@pytest.fixture(scope="module")
def reference(tmp_path_factory, commands: Commands) -> Path:
    """An uninterrupted run's output directory (its --root beside it: the recorded settings
    include it, so a resume must reuse it)."""
    base = tmp_path_factory.mktemp("reference")
    certify(commands, command(base / "out", base / "data"))
    return base / "out"


@pytest.mark.parametrize(
    ("rows", "torn"),
    [(-1, True), (0, True), (23, True)],
    ids=["torn-header", "header+torn-row", "23+torn"],
)
def test_a_cut_results_file_resumes_to_the_reference_rows(
    reference, tmp_path, commands: Commands, rows: int, torn: bool
) -> None:
    out = tmp_path / "interrupted"
    line = command(out, reference.parent / "data")
    assert_cut_file_resumes(commands, reference, out, line, rows, torn)
