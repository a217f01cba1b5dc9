"""Compare certification runs: one figure of their curves and a table of their figures.

    python -m idrs_lightning.reporting.compare out/idrs out/cohen --output out/comparison

reads each directory's ``results.tsv`` and ``summary.json`` (written by ``certify.py``) and
writes ``<output>.png`` (certified accuracy against radius, like the paper's Figure 4) and
``<output>.md`` (clean accuracy, abstention, ACR and class-wise std side by side, like its
Tables 2 and 3), and prints the table.
"""

from __future__ import annotations

import json
from pathlib import Path

from idrs_lightning.atomic_files import write_text
from idrs_lightning.certify_job.results import read_results
from idrs_lightning.errors import OneLineParser, exit_on_user_error
from idrs_lightning.reporting.plots import plot_certified_accuracy
from idrs_lightning.reporting.summary import CertificationSummary
from idrs_lightning.reporting.tables import comparison_table


def _summary(run: Path) -> CertificationSummary:
    path = run / "summary.json"
    try:
        return CertificationSummary.from_json(json.loads(path.read_text()))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); rerun certify.py there") from None
    except ValueError as error:
        raise ValueError(f"{path}: {error}; rerun certify.py there") from None


def compare(runs: list[Path], output: Path) -> str:
    """Write ``<output>.png`` and ``<output>.md`` for the runs and return the table.

    Runs are labelled by their summary's name, followed by the directory where two share one.

    Raises:
        ValueError: naming the file, for a missing, unreadable or empty summary or results file.
    """
    loaded = []
    for run in runs:
        summary = _summary(run)
        results = read_results(run / "results.tsv")
        if not len(results["idx"]):
            raise ValueError(f"{run / 'results.tsv'} holds no results")
        loaded.append((summary.name or run.name, run, summary, results))
    names = [name for name, *_ in loaded]
    summaries, curves = {}, {}
    for name, run, summary, results in loaded:
        label = name if names.count(name) == 1 else f"{name} ({run})"
        summaries[label] = summary
        curves[label] = (results["radius"], results["correct"])
    output.parent.mkdir(parents=True, exist_ok=True)
    plot_certified_accuracy(curves, output.with_suffix(".png"))
    table = comparison_table(summaries)
    write_text(output.with_suffix(".md"), table + "\n")
    return table


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="output directories of certify.py")
    parser.add_argument("--output", type=Path, required=True, help="path without suffix")
    args = parser.parse_args(argv)
    missing = [str(run) for run in args.runs if not (run / "summary.json").is_file()]
    if missing:
        parser.error(f"no summary.json in: {', '.join(missing)}")
    print(exit_on_user_error(lambda: compare(args.runs, args.output)))


if __name__ == "__main__":
    main()
