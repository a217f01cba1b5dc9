"""Per-input certification results as a TSV file that survives interruption.

Columns are Cohen et al.'s ``idx label predict radius correct time`` followed by ``sigma``,
``pA_lower``, ``pB_upper`` (``nan`` unless the runner-up was bounded separately), ``counts``
(the estimation counts, comma-separated) and ``samples`` (estimation samples drawn: ``n``, or
where sequential CERTIFY stopped; 0 where the evaluation shortcut skipped estimation because the
selected class, in ``predict``, is not the label: such a row is not a certificate), so one
reader serves both. A dual randomized smoothing run's rows hold the chosen expert's certificate
in those columns (``sigma`` its noise level, NaN where the router abstained and no expert was
sampled) and the router's in ``DUAL_COLUMNS``: its choice of level (-1: abstain), both radii
(``radius`` is the smaller), its bound and its counts over the levels.
Every row is written and flushed as soon as it is produced. Reopening a file for the same run
keeps every complete row, drops a torn last line (a kill mid-write), and reports which indices
are done, so a restarted run continues after the last complete row.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import numpy as np

from idrs_lightning.smoothing.certificate import ABSTAIN, Certificate

if TYPE_CHECKING:
    from idrs_lightning.smoothing.dual import DualCertificate

COLUMNS = (
    "idx",
    "label",
    "predict",
    "radius",
    "correct",
    "time",
    "sigma",
    "pA_lower",
    "pB_upper",
    "counts",
    "samples",
)
HEADER = "\t".join(COLUMNS) + "\n"
DUAL_COLUMNS = (
    *COLUMNS,
    "level",
    "router_radius",
    "classifier_radius",
    "router_pA_lower",
    "router_counts",
)
#: The headers of the two formats.
HEADERS = {COLUMNS: HEADER, DUAL_COLUMNS: "\t".join(DUAL_COLUMNS) + "\n"}


def _repair(path: Path) -> None:
    """Cut a last line that lacks its newline (the row being written when the run died)."""
    with path.open("rb+") as file:
        data = file.read()
        if data and not data.endswith(b"\n"):
            file.truncate(data.rfind(b"\n") + 1)


def check_results_file(path: Path, columns: tuple[str, ...] | None = None) -> bool:
    """Whether ``path`` holds rows to resume (its header is complete: that of ``columns``, or
    of either format); ``False`` when it is absent, empty or holds a header torn by a kill
    (start afresh).

    Raises:
        ValueError: naming the file, when it is something else.
    """
    headers = [HEADERS[columns]] if columns else list(HEADERS.values())
    data = path.read_bytes() if path.exists() else b""
    head = data[: data.find(b"\n") + 1] if b"\n" in data else data
    if any(head == header.encode() for header in headers):
        return True
    if not any(header.encode().startswith(head) and b"\n" not in head for header in headers):
        raise ValueError(
            f"{path} exists and is not a results file of this format; "
            "choose another output directory"
        )
    return False


def file_columns(path: Path) -> tuple[str, ...]:
    """The columns of a complete results file, as its header names them."""
    with path.open() as file:
        return tuple(file.readline().rstrip("\n").split("\t"))


class ResultsWriter:
    """Appends rows to ``path``; ``done`` holds the indices already in the file.

    Raises:
        ValueError: when ``path`` exists but is not a results file of this format (its header
            differs, and it is not a header torn by a kill), or holds a row that breaks
            ``rules`` (:func:`check_rows`); the file is left untouched.
    """

    def __init__(self, path: str | os.PathLike, rules: RowRules | None = None) -> None:
        self.path = Path(path)
        self.columns = rules.columns if rules is not None else COLUMNS
        self.done: set[int] = set()
        resuming = check_results_file(self.path, self.columns)
        if resuming:
            rows = read_rows(self.path)
            if rules is not None:
                check_rows(self.path, rows, rules)
            _repair(self.path)
            self.done = {int(row["idx"]) for row in rows}
            self._file: TextIO = self.path.open("a")
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("w")
            self._file.write(HEADERS[self.columns])
            self._file.flush()

    def write(self, **row: object) -> None:
        try:
            self._file.write("\t".join(str(row[column]) for column in self.columns) + "\n")
            self._file.flush()
        except OSError as error:  # e.g. a full disk: rows written so far stay and resume
            raise OSError(f"cannot write {self.path}: {error.strerror or error}") from None
        self.done.add(int(row["idx"]))

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def certificate_row(index: int, label: int, cert: Certificate, seconds: float) -> dict[str, str]:
    """The row of one certified input; floats in ``repr`` (exact: no bound is rounded up on
    its way to disk)."""
    return {
        "idx": str(index),
        "label": str(label),
        "predict": str(cert.prediction),
        "radius": repr(cert.radius),
        "correct": str(int(cert.prediction == label)),
        "time": f"{seconds:.4f}",
        "sigma": repr(cert.sigma),
        "pA_lower": repr(cert.p_a_lower),
        "pB_upper": repr(cert.p_b_upper),
        "counts": ",".join(str(c) for c in cert.counts),
        "samples": str(cert.samples),
    }


def dual_certificate_row(
    index: int, label: int, cert: DualCertificate, seconds: float, num_classes: int
) -> dict[str, str]:
    """The row of one input certified by dual randomized smoothing: the chosen expert's
    certificate in the usual columns with the dual classifier's radius (NaN and no votes
    where the router abstained), the router's in :data:`DUAL_COLUMNS`."""
    nan = float("nan")
    votes = np.zeros(num_classes, dtype=np.int64)
    expert = cert.classifier or Certificate(ABSTAIN, 0.0, nan, votes, nan, nan, 0)
    return {
        **certificate_row(index, label, expert, seconds),
        "radius": repr(cert.radius),
        "level": str(cert.choice),
        "router_radius": repr(cert.router_radius),
        "classifier_radius": repr(cert.classifier_radius),
        "router_pA_lower": repr(cert.router.p_a_lower),
        "router_counts": ",".join(str(c) for c in cert.router.counts),
    }


@dataclass(frozen=True)
class RowRules:
    """What every row of one run satisfies: its input is one of the run's (``labels``: index
    to label), once; the prediction a class or -1 (abstain); a finite radius >= 0 and a
    positive sigma; ``n`` estimation samples (at most ``n`` where ``sequential`` CERTIFY stops
    early, 0 where the evaluation ``shortcut`` skipped the input) and as many counted votes.
    A dual run's rows (``dual_sigmas``: the experts' noise levels) also hold a router choice
    among them and ``n`` router votes, a radius that is the smaller of the two stages', and
    no expert sample, no vote and no class where the router abstained."""

    labels: Mapping[int, int]
    num_classes: int
    n: int
    sequential: bool
    shortcut: bool
    dual_sigmas: tuple[float, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return DUAL_COLUMNS if self.dual_sigmas else COLUMNS

    def problem(self, row: Mapping[str, str]) -> str | None:
        """What is wrong with ``row`` (``None`` if nothing)."""
        try:
            index, label, predict = (int(row[key]) for key in ("idx", "label", "predict"))
            radius, sigma = float(row["radius"]), float(row["sigma"])
            correct, samples = int(row["correct"]), int(row["samples"])
            counts = [int(c) for c in row["counts"].split(",")]
        except (TypeError, ValueError, AttributeError):
            return "a value is missing or not a number"
        if index not in self.labels:
            return f"input {index} is not one of this run's inputs"
        if label != self.labels[index]:
            return f"label {label} is not input {index}'s label ({self.labels[index]})"
        if not -1 <= predict < self.num_classes:
            return f"prediction {predict} is no class of {self.num_classes} (nor -1, abstain)"
        if correct != int(predict == label):
            return f"correct is {correct} for prediction {predict} and label {label}"
        if not (math.isfinite(radius) and radius >= 0):
            return f"radius {radius} is not a finite number >= 0"
        if self.dual_sigmas:
            return self._dual_problem(row, predict, radius, sigma)
        if not (math.isfinite(sigma) and sigma > 0):
            return f"sigma {sigma} is not a positive number"
        allowed = range(1, self.n + 1) if self.sequential else (self.n,)
        if samples not in allowed and not (self.shortcut and samples == 0):
            expected = f"1 to {self.n}" if self.sequential else str(self.n)
            return f"{samples} estimation samples, where this run draws {expected}"
        if len(counts) != self.num_classes or min(counts) < 0 or sum(counts) != samples:
            return f"its counts ({row['counts']}) are not {samples} votes over the classes"
        return None

    def _dual_problem(
        self, row: Mapping[str, str], predict: int, radius: float, sigma: float
    ) -> str | None:
        try:
            level, samples = int(row["level"]), int(row["samples"])
            router_radius, classifier_radius = (
                float(row[key]) for key in ("router_radius", "classifier_radius")
            )
            router_votes = [int(c) for c in row["router_counts"].split(",")]
            votes = [int(c) for c in row["counts"].split(",")]
        except (TypeError, ValueError, AttributeError):
            return "a router value is missing or not a number"
        levels = len(self.dual_sigmas)
        if len(router_votes) != levels or min(router_votes) < 0 or sum(router_votes) != self.n:
            return f"its router counts ({row['router_counts']}) are not {self.n} votes"
        if level == -1:
            if predict != -1 or samples or any(votes) or radius or not math.isnan(sigma):
                return "the router abstained, yet an expert was sampled or a class predicted"
            return None
        if not 0 <= level < levels or sigma != self.dual_sigmas[level]:
            return f"level {level} with sigma {sigma} is none of the levels {self.dual_sigmas}"
        if radius != min(router_radius, classifier_radius):
            return f"radius {radius} is not the smaller of {router_radius}, {classifier_radius}"
        if samples not in (self.n, 0) or (samples == 0 and not self.shortcut):
            return f"{samples} expert samples, where this run draws {self.n}"
        if len(votes) != self.num_classes or min(votes) < 0 or sum(votes) != samples:
            return f"its counts ({row['counts']}) are not {samples} votes over the classes"
        return None


def check_rows(path: str | os.PathLike, rows: Sequence[Mapping[str, str]], rules: RowRules) -> None:
    """Refuse rows that this run cannot have written (see :class:`RowRules`), or an input
    certified twice.

    Raises:
        ValueError: naming the file, the line and what is wrong with it.
    """
    seen: set[str] = set()
    for line, row in enumerate(rows, start=2):
        problem = rules.problem(row)
        if problem is None and row["idx"] in seen:
            problem = f"input {row['idx']} appears a second time"
        if problem is not None:
            raise ValueError(
                f"{path}, line {line}: {problem}; this run did not write it (the file was "
                "edited, or mixes another run's rows): remove the line, or choose another "
                "output directory"
            )
        seen.add(row["idx"])


def read_rows(path: str | os.PathLike) -> list[dict[str, str]]:
    """Complete rows of a results file (also Cohen et al.'s six-column logs)."""
    with Path(path).open(newline="") as file:
        lines = [line for line in file if line.endswith("\n")]
    return list(csv.DictReader(lines, delimiter="\t"))


def read_results(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Columns as arrays, sorted by ``idx``: idx, label, predict, radius, correct (+ sigma,
    pA_lower, samples and a dual run's level where the file has them).

    Raises:
        ValueError: naming the file, when it lacks one of those columns or a value is not a
            number.
    """
    with Path(path).open() as file:
        header = file.readline().rstrip("\n").split("\t")
    missing = [column for column in COLUMNS[:5] if column not in header]
    if missing:
        raise ValueError(f"{path} is not a results file: it has no column {', '.join(missing)}")
    try:
        rows = sorted(read_rows(path), key=lambda row: int(row["idx"]))
        columns = {
            "idx": np.array([int(r["idx"]) for r in rows], dtype=np.int64),
            "label": np.array([int(r["label"]) for r in rows], dtype=np.int64),
            "predict": np.array([int(r["predict"]) for r in rows], dtype=np.int64),
            "radius": np.array([float(r["radius"]) for r in rows]),
            "correct": np.array([int(r["correct"]) for r in rows], dtype=bool),
        }
        for name in ("sigma", "pA_lower"):
            if name in header:
                columns[name] = np.array([float(r[name]) for r in rows])
        if "samples" in header:
            columns["samples"] = np.array([int(r["samples"]) for r in rows], dtype=np.int64)
        if "level" in header:
            columns["level"] = np.array([int(r["level"]) for r in rows], dtype=np.int64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path} holds a value that is not a number: {error}") from None
    return columns


def completed_indices(path: Path, rules: RowRules) -> set[int]:
    """Indices of the complete rows of a results file (checked against ``rules``); empty when
    it is absent."""
    if not check_results_file(path):
        return set()
    rows = read_rows(path)
    check_rows(path, rows, rules)
    return {int(row["idx"]) for row in rows}


def merge(parts: list[Path], target: Path) -> None:
    """Rows of several results files (the target itself may be one), one per index, sorted by
    index, into one results file (atomically)."""
    unique = {int(row["idx"]): row for part in reversed(parts) for row in read_rows(part)}
    rows = [unique[index] for index in sorted(unique)]
    columns = file_columns(parts[0]) if file_columns(parts[0]) in HEADERS else COLUMNS
    temporary = target.with_suffix(".tmp")
    with temporary.open("w") as file:
        file.write(HEADERS[columns])
        for row in rows:
            file.write("\t".join(row[column] for column in columns) + "\n")
    os.replace(temporary, target)
