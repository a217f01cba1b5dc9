"""The comparison and the sweep runner refuse bad runs and bad sweep files."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from idrs_lightning.reporting.metrics import certification_summary
from tests.bad_input import assert_refused, assert_unchanged, snapshot
from tests.commands import ROOT

pytestmark = pytest.mark.slow  # a process per case


def _run_dir(tmp: Path, name: str, results: str | None, summary: str | None) -> Path:
    run = tmp / name
    run.mkdir()
    if results is not None:
        (run / "results.tsv").write_text(results)
    if summary is not None:
        (run / "summary.json").write_text(summary)
    return run


HEADER = "idx\tlabel\tpredict\tradius\tcorrect\ttime\n"
GOOD = json.dumps(replace(certification_summary([1], [1], [0.3], [0.0], 2), name="a").to_json())


@pytest.mark.parametrize(
    ("results", "summary", "names"),
    [
        (HEADER + "0\t1\t1\t0.3\t1\t0.1\n", None, "no summary.json in"),
        (HEADER + "0\t1\t1\t0.3\t1\t0.1\n", '{"name": "a", "cou', "summary.json is not valid JSON"),
        (
            HEADER + "0\t1\t1\t0.3\t1\t0.1\n",
            '{"name": "a", "count": 1}',
            "summary.json: not a certification summary: no radii",
        ),
        ("idx\tlabel\tpredict\n0\t1\t1\n", GOOD, "results.tsv is not a results file: it has no"),
        (HEADER, GOOD, "results.tsv holds no results"),
        (HEADER + "0\t1\t1\tabc\t1\t0.1\n", GOOD, "results.tsv holds a value that is not a number"),
    ],
    ids=[
        "no summary",
        "truncated summary",
        "summary without figures",
        "no radius column",
        "header only",
        "not a number",
    ],
)
def test_compare_refuses(tmp_path, commands, results, summary, names) -> None:
    run = _run_dir(tmp_path, "run", results, summary)
    before = snapshot(tmp_path)
    command = [sys.executable, "-m", "idrs_lightning.reporting.compare", str(run), "--output"]
    done = commands.run([*command, str(tmp_path / "cmp")], ROOT)
    assert_refused(done, names)
    assert_unchanged(tmp_path, before)


@pytest.mark.parametrize(
    ("content", "arguments", "names"),
    [
        (None, [], "missing.yaml"),
        ("method: grid\nparameters: [a, b", [], "is not valid YAML"),
        ("- a list\n", [], "is not a sweep"),
        (
            "method: bayes\nmetric: {name: x, goal: maximize}\nparameters:\n  a: {values: [1]}\n",
            [],
            "needs max_runs (--max-runs)",
        ),
        (
            "program: train.py\nmethod: grid\nparameters:\n  data.nonexistent: {values: [1]}\n"
            'command: ["${env}", "${interpreter}", "${program}", "fit", "${args}"]\n',
            [],
            "run 1 of this sweep (data.nonexistent=1) is refused: unrecognized arguments",
        ),
        (
            "program: train.py\nmethod: grid\nparameters:\n  data.sigma_b: {values: [0.25, 0]}\n"
            'command: ["${env}", "${interpreter}", "${program}", "fit", "${args}"]\n',
            [],
            "run 2 of this sweep (data.sigma_b=0) is refused: --data.sigma_b must be a",
        ),
        ("method: grid\nparameters:\n  a: {values: [1]}\n", ["--max-runs", "0"], "at least 1"),
    ],
    ids=[
        "missing file",
        "bad YAML",
        "not a mapping",
        "bayes without --max-runs",
        "unknown key",
        "second run invalid",
        "no runs",
    ],
)
def test_sweep_refuses(tmp_path, commands, content, arguments, names) -> None:
    sweep = tmp_path / "missing.yaml"
    if content is not None:
        sweep = tmp_path / "sweep.yaml"
        sweep.write_text(content)
    if content is not None and "program:" in content:  # where a run would write
        arguments = [*arguments, "--", f"--runs_dir={tmp_path / 'runs'}"]
    command = [sys.executable, "-m", "idrs_lightning.training.sweep", str(sweep), *arguments]
    done = commands.run(command, ROOT)
    assert_refused(done, names)
    assert not (tmp_path / "runs").exists(), "no run trained before the refusal"
