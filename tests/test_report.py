"""report.py and compare.py on a hand-made summary: tables, scalars, files, W&B, comparison."""

import json
import math
from dataclasses import FrozenInstanceError, replace
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from wandb_records import read_run

from idrs_lightning.certify_job.results import COLUMNS, HEADER, read_results
from idrs_lightning.reporting.compare import compare
from idrs_lightning.reporting.compare import main as compare_main
from idrs_lightning.reporting.metrics import certification_summary
from idrs_lightning.reporting.plots import INSIDE_LEGEND, certified_accuracy_figure
from idrs_lightning.reporting.report import write_run_report
from idrs_lightning.reporting.summary import CertificationSummary
from idrs_lightning.reporting.tables import (
    comparison_table,
    curve_label,
    format_table,
    run_name,
)
from idrs_lightning.reporting.wandb_logging import log_run_to_wandb

# Six inputs, three classes: correct with radius 0.5 / 0.2 / 0.0; wrong; abstain; correct 1.0.
LABELS = [0, 0, 1, 1, 2, 2]
PREDICTIONS = [0, 0, 1, 0, -1, 2]
RADIUS = [0.5, 0.2, 0.0, 0.3, 0.0, 1.0]
AT = [0.0, 0.25, 0.5]
SUMMARY = certification_summary(LABELS, PREDICTIONS, RADIUS, AT, num_classes=3)


def test_text_table_shows_the_grid_and_every_headline_figure() -> None:
    lines = format_table("IDRS r=0.01", SUMMARY).splitlines()
    assert lines[0] == "IDRS r=0.01"
    assert lines[1].split() == ["radius", "0.00", "0.25", "0.50"]
    assert lines[2].split() == ["cert.acc", "0.667", "0.333", "0.333"]
    figures = lines[3]
    for text in ("clean accuracy 0.667", "abstention 0.167", "misclassified 0.167", "ACR 0.283"):
        assert text in figures, text
    assert f"class-wise std {np.std([1.0, 0.5, 0.5]):.4f}" in figures and "(n = 6)" in figures


def test_comparison_table_has_one_row_per_run_and_one_column_per_figure() -> None:
    other = certification_summary([0, 1], [0, 1], [0.1, 0.2], AT, num_classes=3)
    lines = comparison_table({"idrs": SUMMARY, "cohen": other}).splitlines()
    assert lines[0] == (
        "| run | clean accuracy | abstention | misclassified | ACR | class-wise std | n |"
    )
    assert lines[1] == "|---|---|---|---|---|---|---|"
    assert lines[2].split(" | ")[1:4] == ["0.667", "0.167", "0.167"]
    assert lines[3] == "| cohen | 1.000 | 0.000 | 0.000 | 0.150 | 0.0000 | 2 |"


def test_scalars_flatten_the_summary_under_a_prefix() -> None:
    values = SUMMARY.scalars("certify")
    assert values["certify/clean_accuracy"] == pytest.approx(4 / 6)
    assert values["certify/accuracy_at_0.25"] == pytest.approx(2 / 6)
    assert values["certify/accuracy_at_0"] == pytest.approx(4 / 6)
    assert values["certify/class_1_accuracy"] == 0.5
    absent = certification_summary([0], [0], [0.1], AT, num_classes=3)
    assert "certify/class_1_accuracy" not in absent.scalars("certify")  # NaN: not logged
    assert all(isinstance(v, float) and not math.isnan(v) for v in values.values())


def test_summary_views_and_its_json() -> None:
    assert [label for label, _, _ in SUMMARY.headline()][:2] == ["clean accuracy", "abstention"]
    assert SUMMARY.accuracy_at(0.25) == pytest.approx(2 / 6)
    with pytest.raises(KeyError, match="not on the grid"):
        SUMMARY.accuracy_at(0.3)
    with pytest.raises(FrozenInstanceError):
        SUMMARY.count = 7  # type: ignore[misc]
    assert isinstance(SUMMARY.radii, tuple) and isinstance(SUMMARY.per_class_accuracy, tuple)
    content = SUMMARY.to_json()
    assert list(content)[:3] == ["count", "radii", "certified_accuracy"]
    assert "forward_passes_mean" not in content and "name" not in content  # None: left out
    costly = replace(SUMMARY, forward_passes_mean=10.0, forward_passes_total=60.0, name="x")
    assert CertificationSummary.from_json(json.loads(json.dumps(costly.to_json()))) == costly
    with pytest.raises(ValueError, match="no clean_accuracy"):
        CertificationSummary.from_json({k: v for k, v in content.items() if k != "clean_accuracy"})


def test_run_names() -> None:
    assert run_name(0.0, False) == "constant sigma"
    assert run_name(0.01, True) == "IDRS r=0.01, separate pB"


def _results(folder: Path, radius: list[float], predictions: list[int]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [HEADER]
    for i, (r, p) in enumerate(zip(radius, predictions, strict=True)):
        values = [i, LABELS[i], p, r, int(p == LABELS[i]), 0.1, 0.25, 0.9, "nan", "1,2,3", 6]
        rows.append("\t".join(str(v) for v in values) + "\n")
    (folder / "results.tsv").write_text("".join(rows))


def test_run_report_files(tmp_path) -> None:
    results = {"radius": np.array(RADIUS), "correct": np.array(PREDICTIONS) == LABELS}
    results["sigma"] = np.full(6, 0.25)
    write_run_report(tmp_path, "demo", SUMMARY, results)
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written == SUMMARY.to_json() and CertificationSummary.from_json(written) == SUMMARY
    assert (tmp_path / "table.txt").read_text() == format_table("demo", SUMMARY) + "\n"
    for plot in ("certified_accuracy", "per_class_accuracy", "sigma_histogram"):
        assert (tmp_path / f"{plot}.png").read_bytes()[:4] == b"\x89PNG", plot
        assert (tmp_path / f"{plot}.pdf").read_bytes()[:5] == b"%PDF-", plot


def test_wandb_run_holds_the_figures_and_the_results(tmp_path, offline_wandb) -> None:
    _results(tmp_path, RADIUS, PREDICTIONS)
    results = read_results(tmp_path / "results.tsv")
    data = {"sigma_b": 0.25, "r": 0.01}
    settings = {"r": 0.01, "n": 100, "checkpoint": str(tmp_path / "model.ckpt"), "data": data}
    summary = replace(SUMMARY, settings={**settings, "checkpoint_sha256": "ab" * 32})
    write_run_report(tmp_path, "demo", summary, results)
    log_run_to_wandb(tmp_path, "demo", summary, results, "idrs-tests", offline=True)
    log_run_to_wandb(tmp_path, "demo", summary, results, "idrs-tests", offline=True)  # again
    runs = [read_run(path) for path in sorted((tmp_path / "wandb").glob("offline-run-*"))]
    assert len(runs) == 2 and runs[0].run_id == runs[1].run_id  # one W&B run
    run = runs[0]
    assert run.job_type == "certify" and run.name == "certify demo"
    assert run.config["sigma_b"] == 0.25 and run.config["n"] == 100  # flat
    assert run.summary["certify/clean_accuracy"] == pytest.approx(4 / 6)
    (row,) = run.history
    assert row["certify/certified_accuracy_table/_type"] == "table-file"
    assert {"plots/certified_accuracy/_type", "plots/per_class_accuracy/_type"} <= set(row)
    assert [a.type for a in run.artifacts if a.type == "certification-results"] == [
        "certification-results"
    ]


def test_compare_writes_the_figure_and_the_table(tmp_path, capsys) -> None:
    for name, radius in (("idrs", RADIUS), ("cohen", [0.6, 0.3, 0.0, 0.3, 0.0, 1.2])):
        _results(tmp_path / name, radius, PREDICTIONS)
        summary = replace(certification_summary(LABELS, PREDICTIONS, radius, AT, 3), name=name)
        (tmp_path / name / "summary.json").write_text(json.dumps(summary.to_json()))
    table = compare([tmp_path / "idrs", tmp_path / "cohen"], tmp_path / "out" / "cmp")
    assert (tmp_path / "out" / "cmp.md").read_text() == table + "\n"
    assert (tmp_path / "out" / "cmp.png").read_bytes()[:4] == b"\x89PNG"
    assert [line.split(" | ")[0] for line in table.splitlines()[2:]] == ["| idrs", "| cohen"]
    assert "| 0.283 |" in table and "| 0.350 |" in table  # ACR of each run
    assert COLUMNS[:6] == ("idx", "label", "predict", "radius", "correct", "time")
    with pytest.raises(SystemExit) as stop:
        compare_main([str(tmp_path / "missing"), "--output", str(tmp_path / "x")])
    assert stop.value.code == 2 and "no summary.json in" in capsys.readouterr().err


def test_callback_curve_labels_stay_distinct() -> None:
    for rate in (0.0, 0.05):
        settings = {"r": rate, "sigma_b": 0.25}
        assert curve_label("certify", settings) != curve_label("certify_constant", settings)
    assert curve_label("certify", {"r": 0.05, "sigma_b": 0.25}) == "IDRS r=0.05"


@pytest.mark.parametrize("count", [1, 5, 10, 12, 20, 33])
def test_every_curve_of_a_comparison_is_distinct_and_its_legend_hides_none(count: int) -> None:
    rng = np.random.default_rng(0)
    curves = {f"run {i}": (rng.uniform(0, 1, 50), rng.uniform(size=50) < 0.8) for i in range(count)}
    figure = certified_accuracy_figure(curves)
    axes = figure.axes[0]
    looks = {(to_hex(line.get_color()), line.get_linestyle()) for line in axes.get_lines()}
    assert len(looks) == count, "no two curves look alike"
    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.tight_layout()
    legend = axes.get_legend().get_window_extent(renderer)
    inside = axes.get_window_extent(renderer)
    if count > INSIDE_LEGEND:
        assert legend.x0 >= inside.x1, "beside the axes, over no curve"
        assert legend.x1 <= figure.bbox.x1 + 1, "and within the figure"
    assert len(axes.get_legend().get_texts()) == count
