"""idrs_lightning.certify_job.results: the resumable results file, its readers, the shard merge."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from idrs_lightning.certify_job.results import (
    COLUMNS,
    HEADER,
    ResultsWriter,
    RowRules,
    check_rows,
    merge,
    read_results,
    read_rows,
)

COHEN_HEADER = "idx\tlabel\tpredict\tradius\tcorrect\ttime\n"


def _row(idx: int, **changes: object) -> dict[str, object]:
    """A results row for input ``idx`` (the values a certify run writes, as strings)."""
    row = {
        "idx": idx,
        "label": idx % 10,
        "predict": idx % 10 if idx % 3 else -1,
        "radius": repr(0.1 * idx + 1e-17 * idx),
        "correct": int(idx % 3 != 0),
        "time": "0.0123",
        "sigma": repr(0.25 + idx / 1000),
        "pA_lower": repr(0.5 + idx / 100),
        "pB_upper": "nan",
        "counts": f"{idx},0,{300 - idx}",
        "samples": 300,
    }
    return {**row, **changes}


def _line(row: dict[str, object]) -> str:
    return "\t".join(str(row[column]) for column in COLUMNS) + "\n"


def _written(path: Path, indices: list[int]) -> None:
    with ResultsWriter(path) as writer:
        for idx in indices:
            writer.write(**_row(idx))


def test_new_file_gets_the_header_once(tmp_path) -> None:
    path = tmp_path / "deep" / "er" / "results.tsv"
    with ResultsWriter(path) as writer:
        assert writer.done == set()
        assert path.read_text() == HEADER, "the header is on disk before any row"
    with ResultsWriter(path) as writer:  # reopened: appends, no second header
        writer.write(**_row(0))
    with ResultsWriter(path) as writer:
        writer.write(**_row(1))
    assert path.read_text() == HEADER + _line(_row(0)) + _line(_row(1))
    assert HEADER.split("\t")[0] == "idx" and HEADER.rstrip("\n").split("\t") == list(COLUMNS)


def test_an_empty_file_is_started_afresh(tmp_path) -> None:
    path = tmp_path / "results.tsv"
    path.touch()  # killed after creating the file, before its header
    with ResultsWriter(path) as writer:
        assert writer.done == set()
        writer.write(**_row(4))
    assert path.read_text() == HEADER + _line(_row(4))


def test_every_row_is_on_disk_as_soon_as_it_is_written(tmp_path) -> None:
    path = tmp_path / "results.tsv"
    with ResultsWriter(path) as writer:
        for idx in (3, 1, 2):
            writer.write(**_row(idx))
            # read through another file object while the writer is still open
            assert [int(row["idx"]) for row in read_rows(path)][-1] == idx
            assert path.read_text().endswith(_line(_row(idx)))
        assert writer.done == {1, 2, 3}


@pytest.mark.parametrize("torn", ["", "7", "7\t3\t3\t0.1", _line(_row(7))[:-1]])
def test_reopening_keeps_complete_rows_and_drops_a_torn_last_line(tmp_path, torn: str) -> None:
    path = tmp_path / "results.tsv"
    _written(path, [0, 5, 2])
    complete = path.read_text()
    with path.open("a") as file:  # the row being written when the run was killed
        file.write(torn)
    with ResultsWriter(path) as writer:
        assert writer.done == {0, 2, 5}
        assert path.read_text() == complete, "the torn line is gone before anything is appended"
        writer.write(**_row(7))
    assert path.read_text() == complete + _line(_row(7))
    assert [int(row["idx"]) for row in read_rows(path)] == [0, 5, 2, 7]


def test_reopening_a_torn_header_starts_afresh(tmp_path) -> None:
    # A kill while the header was being written leaves a prefix of it: the same torn last line.
    path = tmp_path / "results.tsv"
    path.write_text(HEADER[:11])
    with ResultsWriter(path) as writer:
        assert writer.done == set()
        writer.write(**_row(0))
    assert path.read_text() == HEADER + _line(_row(0))


@pytest.mark.parametrize(
    "content",
    [
        b"a\tb\n1\t2\n",
        b"a\tb\n1\t2",  # no final newline: not "repaired" either
        (COHEN_HEADER + "0\t3\t3\t0.5\t1\t0.1\n").encode(),
        (HEADER.replace("counts", "count") + "0\t1").encode(),
        b"\x00\xffbinary",
    ],
    ids=["other-tsv", "other-tsv-torn", "cohen-log", "other-columns", "binary"],
)
def test_a_foreign_file_is_refused_and_left_byte_identical(tmp_path, content: bytes) -> None:
    path = tmp_path / "results.tsv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not a results file") as error:
        ResultsWriter(path)
    assert str(path) in str(error.value)
    assert path.read_bytes() == content


def test_read_rows_reads_cohen_et_al_six_column_logs(tmp_path) -> None:
    path = tmp_path / "cohen.tsv"
    path.write_text(COHEN_HEADER + "0\t7\t7\t0.913\t1\t1.2345\n3\t2\t-1\t0.0\t0\t0.9\n12\t4\t1")
    rows = read_rows(path)
    assert rows == [
        {
            "idx": "0",
            "label": "7",
            "predict": "7",
            "radius": "0.913",
            "correct": "1",
            "time": "1.2345",
        },
        {"idx": "3", "label": "2", "predict": "-1", "radius": "0.0", "correct": "0", "time": "0.9"},
    ], "strings as written, the torn last line left out"
    results = read_results(path)
    assert set(results) == {"idx", "label", "predict", "radius", "correct"}, "no sigma column"
    np.testing.assert_array_equal(results["idx"], [0, 3])
    np.testing.assert_array_equal(results["predict"], [7, -1])
    np.testing.assert_array_equal(results["radius"], [0.913, 0.0])
    np.testing.assert_array_equal(results["correct"], [True, False])


def test_read_results_sorts_by_index_and_types_the_columns(tmp_path) -> None:
    path = tmp_path / "results.tsv"
    order = [9, 2, 14, 0, 5]
    _written(path, order)
    results = read_results(path)
    assert set(results) == {
        "idx",
        "label",
        "predict",
        "radius",
        "correct",
        "sigma",
        "pA_lower",
        "samples",
    }
    expected = sorted(order)
    np.testing.assert_array_equal(results["idx"], expected)
    assert results["idx"].dtype == np.int64
    assert results["label"].dtype == np.int64 and results["predict"].dtype == np.int64
    assert results["radius"].dtype == np.float64 and results["sigma"].dtype == np.float64
    assert results["correct"].dtype == np.bool_
    rows = [_row(i) for i in expected]
    np.testing.assert_array_equal(results["label"], [r["label"] for r in rows])
    np.testing.assert_array_equal(results["predict"], [r["predict"] for r in rows])
    np.testing.assert_array_equal(results["correct"], [bool(r["correct"]) for r in rows])
    # repr round trip: exactly the floats that were certified, not rounded
    assert results["radius"].tolist() == [float(r["radius"]) for r in rows]
    assert results["sigma"].tolist() == [float(r["sigma"]) for r in rows]


def test_read_results_of_a_header_only_file(tmp_path) -> None:
    path = tmp_path / "results.tsv"
    path.write_text(HEADER)
    results = read_results(path)
    assert all(len(column) == 0 for column in results.values())
    assert results["idx"].dtype == np.int64


def test_merge_sorts_the_rows_of_the_shards(tmp_path) -> None:
    shards = [tmp_path / "results.rank0.tsv", tmp_path / "results.rank1.tsv"]
    _written(shards[0], [0, 4, 2, 8])
    _written(shards[1], [7, 1, 3])
    with shards[1].open("a") as file:  # a torn row in a shard is not merged
        file.write("5\t5\t5")
    target = tmp_path / "results.tsv"
    target.write_text(HEADER + _line(_row(99)))  # an earlier merge: replaced, not appended to
    merge(shards, target)
    assert target.read_text() == HEADER + "".join(_line(_row(i)) for i in (0, 1, 2, 3, 4, 7, 8))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["results.tsv", *(s.name for s in shards)]
    ), "no temporary file left behind"
    with ResultsWriter(target) as writer:  # the merged file is itself a resumable results file
        assert writer.done == {0, 1, 2, 3, 4, 7, 8}


def test_merge_never_leaves_a_partial_target(tmp_path) -> None:
    good = tmp_path / "results.rank0.tsv"
    _written(good, [0, 1, 2])
    cohen = tmp_path / "results.rank1.tsv"  # lacks the sigma ... counts columns
    cohen.write_text(COHEN_HEADER + "3\t1\t1\t0.5\t1\t0.1\n")
    target = tmp_path / "results.tsv"
    before = HEADER + _line(_row(42))
    target.write_text(before)
    with pytest.raises((KeyError, ValueError)):
        merge([good, cohen], target)
    assert target.read_text() == before, "the old target is intact until the new one is complete"


def _rules(indices: range = range(12), **changes: object) -> RowRules:
    """The rules of a run over ``indices`` whose rows are :func:`_row`'s (labels idx % 10,
    three classes' worth of counts summing to 300 samples)."""
    values = {
        "labels": {i: i % 10 for i in indices},
        "num_classes": 10,
        "n": 300,
        "sequential": False,
        "shortcut": False,
    }
    return RowRules(**{**values, **changes})


def _ten_counts(idx: int, total: int = 300) -> str:
    return ",".join([str(idx), str(total - idx)] + ["0"] * 8)


def _valid(index: int, **changes: object) -> dict[str, str]:
    row = {k: str(v) for k, v in _row(index, counts=_ten_counts(index)).items()}
    return {**row, **{k: str(v) for k, v in changes.items()}}


BROKEN_ROWS = {
    "outside the run": ({"idx": "40", "label": "0", "predict": "0"}, "input 40 is not one of"),
    "another label": ({"label": "3", "predict": "3"}, "label 3 is not input 2's label (2)"),
    "no class": ({"predict": "10"}, "prediction 10 is no class of 10"),
    "correct flipped": ({"correct": "0"}, "correct is 0 for prediction 2 and label 2"),
    "nan radius": ({"radius": "nan"}, "radius nan is not a finite number >= 0"),
    "inf radius": ({"radius": "inf"}, "radius inf is not a finite number"),
    "negative radius": ({"radius": "-0.5"}, "radius -0.5 is not a finite"),
    "zero sigma": ({"sigma": "0.0"}, "sigma 0.0 is not a positive number"),
    "other n": ({"samples": "100", "counts": _ten_counts(2, 100)}, "100 estimation samples"),
    "counts off": ({"counts": _ten_counts(2, 299)}, "are not 300 votes"),
    "not a number": ({"radius": "abc"}, "a value is missing or not a number"),
    "empty field": ({"counts": ""}, "a value is missing or not a number"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_ROWS))
def test_a_row_this_run_cannot_have_written_is_named(tmp_path, case: str) -> None:
    changes, names = BROKEN_ROWS[case]
    rows = [_valid(0), _valid(1), _valid(2, **changes)]
    check_rows(tmp_path / "r.tsv", rows[:2], _rules())  # the intact rows pass
    with pytest.raises(ValueError, match=re.escape(names)) as error:
        check_rows(tmp_path / "r.tsv", rows, _rules())
    assert "r.tsv, line 4:" in str(error.value)


def test_an_input_certified_twice_is_named(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"line 4: input 1 appears a second time"):
        check_rows(tmp_path / "r.tsv", [_valid(0), _valid(1), _valid(1)], _rules())


def test_sequential_and_shortcut_rows_follow_their_rules(tmp_path) -> None:
    early = _valid(2, samples=120, counts=_ten_counts(2, 120))
    skipped = _valid(4, samples=0, counts=",".join(["0"] * 10))
    check_rows(tmp_path / "r.tsv", [early], _rules(sequential=True))
    check_rows(tmp_path / "r.tsv", [skipped], _rules(shortcut=True))
    with pytest.raises(ValueError, match="120 estimation samples, where this run draws 300"):
        check_rows(tmp_path / "r.tsv", [early], _rules())
    with pytest.raises(ValueError, match="0 estimation samples, where this run draws 1 to 300"):
        check_rows(tmp_path / "r.tsv", [skipped], _rules(sequential=True))


def test_a_resumed_file_with_a_broken_row_is_refused_and_left_alone(tmp_path) -> None:
    path = tmp_path / "results.tsv"
    with ResultsWriter(path) as writer:
        for idx in (0, 1):
            writer.write(**_valid(idx))
        writer.write(**_valid(1))  # as two writers interleaving would leave it
    before = path.read_bytes()
    with pytest.raises(ValueError, match="input 1 appears a second time"):
        ResultsWriter(path, _rules())
    assert path.read_bytes() == before
