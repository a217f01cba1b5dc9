"""An interrupted certify.py run and its resume, shared by tests/test_resume.py and
tests/slow/test_resume_killed.py: the command, the reference rows of an uninterrupted run, and
the results file a run killed mid-write leaves."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from idrs_lightning.certify_job.results import read_rows
from tests.commands import Commands

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "tests" / "data" / "regression" / "digits_lenet.ckpt"
COUNT = 24
ARGS = ("--N", "300", "--N0", "32", "--batch-size", "1000", "--indices", f"0:{COUNT}")


def command(out: Path, data: Path, model: Sequence[str] = (str(CHECKPOINT),)) -> list[str]:
    """certify.py over inputs 0:COUNT of ``model`` (a checkpoint, then any options it needs)
    into ``out``, the data in ``data``."""
    checkpoint, *options = model
    script = [sys.executable, str(ROOT / "certify.py"), checkpoint, str(out)]
    return [*script, *options, "--root", str(data), *ARGS]


def certify(commands: Commands, line: list[str], env: dict[str, str] | None = None) -> None:
    """Run ``line`` to its end (in the folder above its output); it must succeed."""
    done = commands.run(line, Path(line[3]).parent, env)
    assert done.returncode == 0, done.stderr[-3000:]


def without_time(path: Path) -> list[dict[str, str]]:
    """The rows of a results file without their timings (which differ from run to run)."""
    return [{k: v for k, v in row.items() if k != "time"} for row in read_rows(path)]


def assert_same_rows(results: Path, reference: list[dict[str, str]]) -> None:
    """Every input once, none lost, the reference's rows, and no torn line at the end."""
    rows = without_time(results)
    indices = [int(row["idx"]) for row in rows]
    assert len(indices) == len(set(indices)), f"duplicate rows: {indices}"
    assert sorted(indices) == list(range(COUNT)), f"lost rows: {indices}"
    assert rows == reference
    assert results.read_text().endswith("\n"), "no torn line left at the end"


def cut(reference: Path, rows: int, torn: bool) -> str:
    """The reference's results file as a kill mid-write leaves it: the header and the first
    ``rows`` rows, then (``torn``) half of the next line; ``rows < 0``: half the header."""
    lines = (reference / "results.tsv").read_text().splitlines(keepends=True)
    assert len(lines) == COUNT + 1
    if rows < 0:
        return lines[0][: len(lines[0]) // 2]
    kept = "".join(lines[: rows + 1])
    if not torn:
        return kept
    following = lines[rows + 1] if rows + 1 < len(lines) else "7\t3\t3\t0.1\n"
    return kept + following[: len(following) // 2]


def assert_cut_file_resumes(
    commands: Commands,
    reference: Path,
    out: Path,
    line: list[str],
    rows: int,
    torn: bool,
    env: dict[str, str] | None = None,
) -> None:
    """A directory holding the reference's settings record and its results cut at ``rows``
    (see :func:`cut`), resumed by ``line`` (which writes into ``out``), ends with exactly the
    reference's rows, the complete rows kept as they were."""
    expected = without_time(reference / "results.tsv")
    out.mkdir()
    shutil.copy(reference / "certify_settings.json", out)
    (out / "results.tsv").write_text(cut(reference, rows, torn))
    kept = read_rows(out / "results.tsv") if rows >= 0 else []
    assert len(kept) == max(rows, 0), "the cut file holds exactly the first rows"

    certify(commands, line, env)

    assert_same_rows(out / "results.tsv", expected)
    resumed = read_rows(out / "results.tsv")
    assert [r["time"] for r in resumed[: len(kept)]] == [r["time"] for r in kept], (
        "complete rows are kept as they were, not certified again"
    )
