"""The certification job's side of dual randomized smoothing: its rows, their rules, its
options and the router's record of its experts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from idrs_lightning.certify_job.config import CertifyConfig
from idrs_lightning.certify_job.dual_model import DUAL_RECORD, DualRecord
from idrs_lightning.certify_job.results import (
    DUAL_COLUMNS,
    ResultsWriter,
    RowRules,
    check_results_file,
    dual_certificate_row,
    merge,
    read_results,
    read_rows,
)
from idrs_lightning.settings import CertificationSettings
from idrs_lightning.smoothing import ABSTAIN, Certificate
from idrs_lightning.smoothing.dual import DualCertificate
from idrs_lightning.validation import InvalidSetting

SIGMAS = (0.25, 0.5, 1.0)
N = 1000


def _router(choice: int, radius: float) -> Certificate:
    votes = np.zeros(len(SIGMAS), dtype=np.int64)
    votes[max(choice, 0)] = N
    return Certificate(choice, radius, 0.9, votes, 1.0, float("nan"), N)


def _expert(prediction: int, radius: float, sigma: float) -> Certificate:
    votes = np.zeros(3, dtype=np.int64)
    votes[prediction] = N
    return Certificate(prediction, radius, 0.8, votes, sigma, float("nan"), N)


def _routed(index: int, label: int) -> dict[str, str]:
    router, expert = _router(1, 0.7), _expert(label, 0.4, 0.5)
    certificate = DualCertificate(label, 0.4, router, expert, 0.5)
    return dual_certificate_row(index, label, certificate, 0.1, 3)


def _abstained(index: int, label: int) -> dict[str, str]:
    certificate = DualCertificate(ABSTAIN, 0.0, _router(ABSTAIN, 0.0), None, float("nan"))
    return dual_certificate_row(index, label, certificate, 0.1, 3)


def _rules(shortcut: bool = False) -> RowRules:
    return RowRules({0: 2, 1: 0, 2: 1}, 3, N, False, shortcut, dual_sigmas=SIGMAS)


def test_rows_of_both_stages_and_of_an_abstaining_router_pass_the_rules() -> None:
    rules = _rules()
    assert rules.problem(_routed(0, 2)) is None
    assert rules.problem(_abstained(1, 0)) is None
    assert rules.columns == DUAL_COLUMNS


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"radius": "0.7"}, "not the smaller"),
        ({"level": "3"}, "none of the levels"),
        ({"sigma": "0.25"}, "none of the levels"),
        ({"router_counts": "1,2,3"}, "router counts"),
        ({"samples": "10"}, "expert samples"),
    ],
)
def test_rules_refuse_rows_no_dual_run_writes(change: dict, problem: str) -> None:
    assert problem in _rules().problem({**_routed(0, 2), **change})


def test_an_abstaining_router_leaves_no_expert_trace() -> None:
    row = _abstained(1, 0)
    assert "router abstained" in _rules().problem({**row, "samples": str(N)})
    assert "router abstained" in _rules().problem({**row, "sigma": "0.5"})


def test_dual_results_files_resume_merge_and_read(tmp_path: Path) -> None:
    parts = [tmp_path / "results.rank0.tsv", tmp_path / "results.rank1.tsv"]
    with ResultsWriter(parts[0], _rules()) as writer:
        writer.write(**_routed(0, 2))
    with ResultsWriter(parts[1], _rules()) as writer:
        writer.write(**_abstained(1, 0))
    with ResultsWriter(parts[0], _rules()) as writer:  # resumes: no second header
        assert writer.done == {0}
        writer.write(**_routed(2, 1))
    target = tmp_path / "results.tsv"
    merge(parts, target)
    assert check_results_file(target, DUAL_COLUMNS)
    assert [row["level"] for row in read_rows(target)] == ["1", "-1", "1"]
    results = read_results(target)
    assert results["level"].tolist() == [1, -1, 1]
    assert np.isnan(results["sigma"][1]) and results["radius"].tolist() == [0.4, 0.0, 0.4]


def test_a_results_file_of_the_other_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "results.tsv"
    with ResultsWriter(path) as writer:  # a single-stage run's file
        writer.write(
            idx=0,
            label=2,
            predict=2,
            radius=0.1,
            correct=1,
            time=0.1,
            sigma=0.25,
            pA_lower=0.7,
            pB_upper="nan",
            counts="0,0,1000",
            samples=N,
        )
    with pytest.raises(ValueError, match="not a results file of this format"):
        ResultsWriter(path, _rules())


@pytest.mark.parametrize(
    ("changes", "option"),
    [
        ({"method": "dual", "constant": True}, "constant"),
        ({"method": "dual", "arch": "lenet"}, "arch"),
        (
            {"method": "dual", "settings": CertificationSettings(n0=10, n=100, sequential=True)},
            "sequential",
        ),
        ({"experts": ["a.ckpt"]}, "experts"),
        ({"method": "dual", "data": {"sigma_b": 0.5}}, "sigma_b"),
        ({"method": "dual", "data": {"r": 0.01}}, "r"),
        ({"method": "triple"}, "method"),
    ],
)
def test_options_that_do_not_fit_the_method_are_refused(
    tmp_path: Path, changes: dict, option: str
) -> None:
    config = CertifyConfig(checkpoint="router.ckpt", out=str(tmp_path / "out"), **changes)
    with pytest.raises(InvalidSetting) as error:
        config.validate()
    assert error.value.setting == option


def test_the_record_names_its_experts_and_refuses_others(tmp_path: Path) -> None:
    experts = []
    for i, sigma in enumerate((0.25, 0.5)):
        experts.append(tmp_path / f"expert{sigma}.ckpt")
        experts[-1].write_bytes(bytes([i]) * 10)
    record = DualRecord.for_experts([str(e) for e in experts], [0.25, 0.5], 1.0)
    content = {DUAL_RECORD: record.to_checkpoint()}
    assert DualRecord.from_checkpoint("router.ckpt", content) == record
    record.check_experts([str(e) for e in experts])
    with pytest.raises(InvalidSetting, match=r"not the sigma = 0\.25 expert"):
        record.check_experts([str(experts[1]), str(experts[1])])
    with pytest.raises(InvalidSetting, match="needs 2 checkpoints"):
        record.check_experts([str(experts[0])])
    for content in ({"state_dict": {}}, None):  # a train.py model; a TorchScript file
        with pytest.raises(InvalidSetting, match="no dual model's router"):
            DualRecord.from_checkpoint("model.ckpt", content)


def test_a_shortcut_row_of_a_routed_input_passes_only_with_the_shortcut() -> None:
    row = {**_routed(0, 2), "samples": "0", "counts": "0,0,0", "predict": "1", "correct": "0"}
    row["radius"] = row["classifier_radius"] = "0.0"
    assert _rules(shortcut=True).problem(row) is None
    assert "expert samples" in _rules().problem(row)
