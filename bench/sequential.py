"""Benchmark: what sequential CERTIFY saves, per task, against fixed-n CERTIFY on a trained model.

On one frozen model (the Fashion-MNIST default, trained here with ``train.py`` unless
``--checkpoint`` is given) and the class-stratified evaluation subset (``--inputs``, 200 by
default), for constant sigma and for IDRS (the checkpoint's ``r``), three tasks:

* ``one radius``: is each input certified at sigma_b / 2 (the yes/no question of Voracek 2024
  and of "Halt Fast" 2026);
* ``four radii``: the curve at sigma_b / 2, sigma_b, 1.5 sigma_b and 2 sigma_b;
* ``full grid``: the default grid, 0 to 3 sigma_b in steps of sigma_b / 4.

Sequential CERTIFY (``n_max = n = 100,000``) settles each task's radii on every input. With the
evaluation shortcut (``skip_misclassified``) an input whose selected class is not its label
skips estimation and draws only its ``n0`` selection samples; the others draw exactly what
they draw without it, so the shortcut's forward passes are derived from the run without it
and the selection, and checked against a real run of the shortcut on the fixed-n subset.
Fixed-n CERTIFY (``n0 + n`` per input) runs for real on the first ``--fixed-inputs`` of them
(all by default; 4 with ``--quick``); both variants see the
same noise streams (seeded per input), so sequential's samples are a prefix of fixed-n's
(checked) and their certified accuracy is compared input by input on that subset, at every
radius of each task. Forward passes are counted as the base classifier sees them (rows of its
batches, selection included); rows per pass against the batch size shows how full the passes
were. The floor no sequential test with these stopping rules can beat (checked input by input): on
each input's own noise stream, a look after every noise block, the lower bound at the full
``alpha`` (no price for looking) and the product's futility rule; it is compared with
sequential CERTIFY on the same (fixed-n) inputs.
The last line is ``forward-pass ratios: one radius <x>, four radii <y>, full grid <z>``
(fixed-n / sequential forward passes without the shortcut, both smoothings together).
``--quick``: 50 inputs on the sequential side (n_max = 100,000), fixed n on 4, the model
trained for 30 batches.
Usage: ``python bench/sequential.py [--inputs 200] [--fixed-inputs N] [--checkpoint CKPT]
[--quick]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from _common import flush_subnormals, sequential_tasks

from idrs_lightning.certification import clopper_pearson_lower, clopper_pearson_upper
from idrs_lightning.certification.sequential import (
    STOP_LEVEL,
    budget_thresholds,
    radius_thresholds,
)
from idrs_lightning.certify_job.checkpoints import load_checkpoint
from idrs_lightning.data.datamodule import SmoothingDataModule
from idrs_lightning.noise import ESTIMATION, NOISE_BLOCK, Work, blocks_needed
from idrs_lightning.reporting.metrics import certified_accuracy
from idrs_lightning.settings import CertificationSettings
from idrs_lightning.smoothing import Certificate, Smooth
from idrs_lightning.smoothing.estimation import SequentialEstimation

ROOT = Path(__file__).resolve().parents[1]


def _train(limit_train_batches: int | None, threads: int | None) -> tuple[object, dict, str]:
    """Train the Fashion-MNIST default with ``train.py`` into a temporary runs directory and
    load its last checkpoint (the directory is removed once it is loaded)."""
    limit = (
        []
        if limit_train_batches is None
        else [f"--trainer.limit_train_batches={limit_train_batches}"]
    )
    env = {**os.environ, "WANDB_MODE": os.environ.get("WANDB_MODE", "offline")}
    env.setdefault("WANDB_SILENT", "true")
    env.pop("IDRS_RUN_DIR", None)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    with tempfile.TemporaryDirectory(prefix="idrs-bench-sequential-") as runs:
        command = [
            sys.executable,
            str(ROOT / "train.py"),
            "fit",
            "--run_name=bench",
            f"--runs_dir={runs}",
            "--trainer.enable_progress_bar=false",
            *limit,
        ]
        start = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"training failed ({' '.join(command[1:])}):\n{done.stderr[-3000:]}")
        module, data = load_checkpoint(str(Path(runs) / "bench" / "checkpoints" / "last.ckpt"))
    what = "a full epoch" if limit_train_batches is None else f"{limit_train_batches} batches"
    note = f"the Fashion-MNIST default trained here ({what}, {time.perf_counter() - start:.0f} s)"
    return module, data, note


def _data_root(data: dict, root: str | None) -> dict:
    """The checkpoint's data arguments with ``--root`` applied, or a relative root that does
    not exist here resolved against the repository (train.py runs from there)."""
    data = dict(data)
    if root is not None:
        data["root"] = root
    elif not Path(data.get("root", "data")).is_absolute():
        given = Path(data.get("root", "data"))
        if not given.exists() and (ROOT / given).exists():
            data["root"] = str(ROOT / given)
    return data


def _realized_floor(
    counter: Smooth,
    inputs: tuple[torch.Tensor, np.ndarray, list[int]],
    selected: np.ndarray,
    samples: np.ndarray,
    thresholds: np.ndarray,
    alpha: float,
    looks: np.ndarray,
) -> np.ndarray:
    """Per input, the fewest samples at which the stopping rules of sequential CERTIFY, freed
    of every price for looking, settle every radius on the input's own noise stream: the same
    estimation samples (a prefix of them, counted block by block), a look after every noise
    block, the lower bound at the full ``alpha`` and the upper bound at the stopping level
    against the product's budget. Each rule settles a radius no later than the product's does
    on the same samples, so no input can stop before its floor (checked by the caller)."""
    xs, sigma, indices = inputs
    budget = budget_thresholds(thresholds, int(looks[-1]), alpha / len(looks))
    count = np.zeros(len(xs), dtype=np.int64)
    lower, upper = np.zeros(len(xs)), np.ones(len(xs))
    settled = np.zeros(thresholds.shape, dtype=bool)
    floor = samples.copy()
    for block in range(blocks_needed(int(samples.max()))):
        rows = np.flatnonzero(samples > block * NOISE_BLOCK)
        work: list[Work] = [(i, block, NOISE_BLOCK) for i in range(len(rows))]
        votes = counter.block_counts(
            xs[rows], sigma[rows], [indices[r] for r in rows], ESTIMATION, work
        )
        count[rows] += votes[np.arange(len(rows)), selected[rows]]
        n = (block + 1) * NOISE_BLOCK
        lower[rows] = np.maximum(lower[rows], clopper_pearson_lower(count[rows], n, alpha))
        upper[rows] = np.minimum(upper[rows], clopper_pearson_upper(count[rows], n, STOP_LEVEL))
        settled[rows] |= (lower[rows, None] >= thresholds[rows]) | (
            upper[rows, None] < budget[rows]
        )
        first = rows[settled[rows].all(axis=1) & (floor[rows] > n)]
        floor[first] = n
    return floor


class Run(NamedTuple):
    """One variant's certificates and what they cost: rows of the base classifier's batches
    (noisy samples, selection included), forward passes and wall time."""

    certificates: list[Certificate]
    rows: int
    passes: int
    seconds: float


def _run(smooth: Smooth, xs: torch.Tensor, sigma: np.ndarray, indices: list[int], labels) -> Run:
    start = time.perf_counter()
    certificates = smooth.certify_many(xs, sigma, indices, labels)
    if xs.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return Run(certificates, smooth.passes.rows, smooth.passes.passes, seconds)


def _check_prefix(fixed: list[Certificate], sequential: list[Certificate], n: int, what: str):
    """The noise-stream premise: sequential's samples are a prefix of fixed-n's."""
    for i, (f, s) in enumerate(zip(fixed, sequential, strict=True)):
        if not 0 < s.samples <= n or int(s.counts.sum()) != s.samples:
            sys.exit(f"{what}: input {i}: sequential drew {s.samples} samples (n_max {n})")
        if s.samples == n and not np.array_equal(s.counts, f.counts):
            sys.exit(f"{what}: input {i}: all {n} samples drawn, but counts differ from fixed-n's")
        if -1 not in (f.prediction, s.prediction) and f.prediction != s.prediction:
            sys.exit(f"{what}: input {i}: fixed-n and sequential predict different classes")


def _bootstrap_interval(per_input: np.ndarray, fixed: int, draws: int = 2000) -> np.ndarray:
    """The 5th and 95th percentile of the ratio ``fixed / mean(per_input)`` over resamples
    of the inputs (with replacement): how much the ratio depends on which inputs were drawn."""
    rng = np.random.default_rng(0)
    means = per_input[rng.integers(0, len(per_input), (draws, len(per_input)))].mean(axis=1)
    return np.percentile(fixed / means, [5, 95])


def _accuracy(certificates: list[Certificate], labels: np.ndarray, radii: list[float]):
    radius = np.array([c.radius for c in certificates])
    correct = np.array([c.prediction for c in certificates]) == labels
    return 100 * certified_accuracy(radius, correct, radii)


def _sequential_run(
    smooth: Smooth, inputs, xs: torch.Tensor, indices: list[int], chosen: slice, shortcut: bool
) -> Run:
    """Sequential CERTIFY of the ``chosen`` inputs, with or without the evaluation shortcut."""
    labels = inputs.y[chosen] if shortcut else None
    return _run(smooth, xs[chosen], inputs.sigma[chosen], indices[chosen], labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a train.py checkpoint (default: train one here)")
    parser.add_argument("--inputs", type=int, help="test inputs (default 200; --quick 50)")
    parser.add_argument(
        "--fixed-inputs",
        type=int,
        help="inputs certified with fixed n too (default all; --quick 4)",
    )
    parser.add_argument("--n", type=int, default=100_000, help="fixed n = n_max (100,000)")
    parser.add_argument("--n0", type=int, default=100)
    parser.add_argument("--alpha", type=float, default=0.001)
    parser.add_argument("--batch", type=int, default=1000, help="noisy samples per forward pass")
    parser.add_argument("--root", help="data directory (default: the checkpoint's)")
    parser.add_argument(
        "--train-batches",
        type=int,
        help="limit_train_batches when training here (default: a full epoch; --quick 30)",
    )
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument(
        "--tasks",
        nargs="+",
        choices=("one", "four", "grid"),
        default=("one", "four", "grid"),
        help="the tasks to run (default all): one radius, four radii, the full grid",
    )
    parser.add_argument("--quick", action="store_true", help="50 inputs, fixed n on 4, 30 batches")
    args = parser.parse_args()
    if args.quick:
        args.inputs = args.inputs or 50
        args.fixed_inputs = args.fixed_inputs or 4
        args.train_batches = args.train_batches or 30
    args.inputs = args.inputs or 200
    fixed_count = min(args.fixed_inputs or args.inputs, args.inputs)
    if args.threads:
        torch.set_num_threads(args.threads)
    flush_subnormals()

    if args.checkpoint:
        module, data, model_note = *load_checkpoint(args.checkpoint), args.checkpoint
    else:
        module, data, model_note = _train(args.train_batches, args.threads)
    datamodule = SmoothingDataModule(**_data_root(data, args.root))
    datamodule.setup("test")
    indices = datamodule.evaluation_subset(args.inputs).tolist()
    sigma_b = float(datamodule.hparams.sigma_b)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    classifier = module.classifier.to(device).eval()
    for parameter in classifier.parameters():
        parameter.requires_grad_(False)
    num_classes = module.hparams.num_classes
    smoothings = {"constant": datamodule.certification_inputs(indices, constant=True)}
    if datamodule.r > 0:
        smoothings["IDRS"] = datamodule.certification_inputs(indices)

    def settings(sequential: bool) -> CertificationSettings:
        return CertificationSettings(
            n0=args.n0, n=args.n, alpha=args.alpha, batch_size=args.batch, sequential=sequential
        )

    print(
        "Sequential vs fixed-n CERTIFY per task: forward passes of the base classifier (rows of "
        "its batches, selection included) and certified accuracy, constant sigma and IDRS."
    )
    print(
        f"model: {module.hparams.network} on {datamodule.hparams.dataset}, {model_note}; "
        f"{len(indices)} inputs of the class-stratified evaluation subset, fixed n on the first "
        f"{fixed_count}; n0 = {args.n0}, alpha = {args.alpha}, fixed n = n_max = {args.n}, looks "
        f"{SequentialEstimation(settings(True), np.zeros(1)).looks.tolist()}, batch "
        f"{args.batch}, {device.type}, {torch.get_num_threads()} threads"
    )
    if "IDRS" not in smoothings:
        print("IDRS skipped: the checkpoint's r is 0 (its sigma(x) is constant)")
    chosen = {"one": "one radius", "four": "four radii", "grid": "full grid"}
    grids = {
        task: radii
        for task, radii in sequential_tasks(sigma_b).items()
        if task in {chosen[t] for t in args.tasks}
    }
    fixed_total = dict.fromkeys(grids, 0)
    sequential_total = {(task, cut): 0 for task in grids for cut in (False, True)}
    for name, inputs in smoothings.items():
        xs, sigma, labels = inputs.x.to(device), inputs.sigma, inputs.y
        level = (
            f"sigma = {sigma_b:g}, r = 0"
            if name == "constant"
            else f"r = {inputs.r:g}, sigma(x) in [{sigma.min():.4g}, {sigma.max():.4g}]"
        )
        part = slice(0, fixed_count)
        fixed = _run(
            Smooth(classifier, num_classes, inputs.r, settings(False), datamodule.value_range),
            xs[part],
            sigma[part],
            indices[part],
            None,
        )
        per_input = fixed.rows / fixed_count
        if per_input != args.n0 + args.n:
            sys.exit(f"{name}: fixed-n drew {per_input} samples per input, not n0 + n")
        print(
            f"\n{name} ({level}): fixed n {per_input:,.0f} forward passes per input (counted on "
            f"{fixed_count}), {1e6 * fixed.seconds / fixed.rows:.2f} us each, rows per pass "
            f"{fixed.rows / fixed.passes / args.batch:.3f} of the batch"
        )
        selector = Smooth(
            classifier, num_classes, inputs.r, settings(False), datamodule.value_range
        )
        selected = selector.select(xs, sigma, indices)
        kept = selected == labels  # the inputs the shortcut keeps

        def make(radii: list[float], r: float = inputs.r) -> Smooth:
            return Smooth(classifier, num_classes, r, settings(True), datamodule.value_range, radii)

        for task, radii in grids.items():
            full = _sequential_run(make(radii), inputs, xs, indices, slice(None), False)
            _check_prefix(fixed.certificates, full.certificates[part], args.n, f"{name}, {task}")
            samples = np.array([c.samples for c in full.certificates])
            if full.rows != len(indices) * args.n0 + samples.sum():
                sys.exit(f"{name}, {task}: the passes held other rows than n0 + the samples")
            # the shortcut draws the same samples for the inputs it keeps and none for the rest
            cut_rows = len(indices) * args.n0 + int(samples[kept].sum())
            real_cut = _sequential_run(make(radii), inputs, xs, indices, part, True)
            skipped = np.array([c.skipped for c in real_cut.certificates])
            expected = fixed_count * args.n0 + int(samples[part][kept[part]].sum())
            if real_cut.rows != expected or np.any(skipped == kept[part]):
                sys.exit(f"{name}, {task}: the shortcut drew other samples than derived")
            fixed_cut = len(indices) * args.n0 + int(kept.sum()) * args.n
            fixed_total[task] += len(indices) * (args.n0 + args.n)
            sequential_total[task, False] += full.rows
            sequential_total[task, True] += cut_rows
            thresholds = radius_thresholds(radii, sigma[part], inputs.r, inputs.x[0].numel())
            floor = _realized_floor(
                selector,
                (xs[part], sigma[part], indices[part]),
                selected[part],
                samples[part],
                thresholds,
                args.alpha,
                SequentialEstimation(settings(True), np.zeros(1)).looks,
            )
            if (samples[part] < floor).any():
                sys.exit(f"{name}, {task}: an input stopped before its realized floor")
            floor += args.n0
            diff = _accuracy(full.certificates[part], labels[part], radii) - _accuracy(
                fixed.certificates, labels[part], radii
            )
            print(
                f"  {task}: sequential {full.rows / len(indices):,.0f} per input, ratio "
                f"{len(indices) * (args.n0 + args.n) / full.rows:.2f}x; with the shortcut "
                f"{cut_rows / len(indices):,.0f}, ratio {fixed_cut / cut_rows:.2f}x (fixed n with "
                f"the shortcut {fixed_cut / len(indices):,.0f}); on the {fixed_count} fixed-n "
                f"inputs {(args.n0 + args.n) / (args.n0 + samples[part]).mean():.2f}x against "
                f"the realized floor's {(args.n0 + args.n) / floor.mean():.2f}x"
            )
            low, high = _bootstrap_interval(args.n0 + samples, args.n0 + args.n)
            print(
                f"    ratio over resampled inputs: 90% of 2,000 resamples within {low:.1f}x to "
                f"{high:.1f}x (which inputs are drawn matters: a few near a threshold dominate)"
            )
            print(
                f"    rows per pass {full.rows / full.passes / args.batch:.3f} of the batch "
                f"({full.passes:,} passes), {1e6 * full.seconds / full.rows:.2f} us per row; "
                f"{int((samples == args.n).sum())} of {len(samples)} inputs ran to n_max"
            )
            print(
                f"    certified accuracy, sequential - fixed n on {fixed_count} inputs (points): "
                + ", ".join(f"{r:g}: {d:+.1f}" for r, d in zip(radii, diff, strict=True))
                + f"; largest |difference| {np.abs(diff).max():.1f}"
            )
    with_cut = ", ".join(
        f"{task} {fixed_total[task] / sequential_total[task, True]:.2f}" for task in grids
    )
    print(f"\nwith the shortcut (fixed n without it as the baseline): {with_cut}")
    print(
        "forward-pass ratios: "
        + ", ".join(
            f"{task} {fixed_total[task] / sequential_total[task, False]:.2f}" for task in grids
        )
    )


if __name__ == "__main__":
    main()
