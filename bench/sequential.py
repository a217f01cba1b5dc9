"""Benchmark: sequential CERTIFY against fixed-n CERTIFY on a trained model.

What is compared, in the same run on one frozen model (the Fashion-MNIST default, trained here
with ``train.py`` unless ``--checkpoint`` is given): Cohen et al.'s CERTIFY with a fixed
``n = 100,000`` estimation samples per input, and sequential CERTIFY with ``n_max = 100,000``
(``CertificationSettings(sequential=True)``: estimation samples drawn look by look until the
answer at every radius of the default grid is settled), on the same test inputs (the
class-stratified evaluation subset), for constant sigma and for IDRS (the checkpoint's ``r``).

Both variants see the same inputs and the same noise streams: each input's noise is seeded by
its index (selection and estimation streams apart), so both select the top class from the same
``n0`` samples, and the estimation samples sequential CERTIFY draws are a prefix of fixed-n's
(checked: where sequential drew all ``n_max`` samples its counts equal fixed-n's, and where
both predict they predict the same class). The four variants (constant / IDRS x fixed-n /
sequential) take turns input by input in a rotating order, so machine noise and the order
itself hit them alike (a round is one input). Reported per smoothing: forward passes of the
base classifier (``n0`` + estimation samples, summed over inputs), wall time, their ratios,
the time per forward pass (sequential's overhead: smaller batches at the looks and the
radius thresholds), and certified accuracy at every grid radius side by side. The last line is
``forward-pass ratio: <fixed-n / sequential forward passes, both smoothings together>``.
A third variant, ``shortcut``, is sequential CERTIFY with the evaluation shortcut (inputs whose
selected class is not the label skip estimation; certified accuracy must equal sequential's).
The floor no sequential test can beat: per input, the fewest samples at which one fixed-size
Clopper-Pearson test at the full ``alpha`` (no price for looking), with the count at its
expectation under fixed-n's estimate of ``p_A``, settles every grid radius (capped at n_max);
its ratio bounds what any anytime-valid method could reach at this grid on these inputs.
``--quick``: 10 inputs (one per class), n = n_max = 10,000, the model trained for 30 batches:
about two to three minutes on a small shared CPU (``--threads 1`` is faster there).
Usage: ``python bench/sequential.py [--inputs 200] [--n 100000] [--checkpoint CKPT] [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import flush_subnormals, rotated, spread

from idrs_lightning.certification import clopper_pearson_lower, clopper_pearson_upper
from idrs_lightning.certification.sequential import look_schedule, radius_thresholds
from idrs_lightning.certify_job.checkpoints import load_checkpoint
from idrs_lightning.data.datamodule import SmoothingDataModule
from idrs_lightning.reporting.metrics import certified_accuracy
from idrs_lightning.settings import CertificationSettings, radius_grid
from idrs_lightning.smoothing import ABSTAIN, Certificate, Smooth

ROOT = Path(__file__).resolve().parents[1]
MODES = ("fixed-n", "sequential", "shortcut")
# The oracle floor's sample sizes: geometric from 10 to n_max, 200 steps.
_FLOOR_STEPS = 200


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


def _certify(
    smooth: Smooth, x: torch.Tensor, sigma: float, index: int, label: int | None
) -> tuple[Certificate, float]:
    start = time.perf_counter()
    labels = None if label is None else [label]
    cert = smooth.certify_many(x.unsqueeze(0), [sigma], [index], labels)[0]
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return cert, time.perf_counter() - start


def _check_prefix(
    fixed: list[Certificate], sequential: list[Certificate], n: int, label: str
) -> None:
    """The noise-stream premise: sequential's samples are a prefix of fixed-n's."""
    for i, (f, s) in enumerate(zip(fixed, sequential, strict=True)):
        if not 0 < s.samples <= n or int(s.counts.sum()) != s.samples:
            sys.exit(
                f"{label}: input {i}: sequential drew {s.samples} samples, counts sum to "
                f"{int(s.counts.sum())} (n_max {n})"
            )
        if s.samples == n and not np.array_equal(s.counts, f.counts):
            sys.exit(
                f"{label}: input {i}: sequential drew all {n} samples but its counts differ "
                "from fixed-n's: the noise streams are not shared"
            )
        if ABSTAIN not in (f.prediction, s.prediction) and f.prediction != s.prediction:
            sys.exit(
                f"{label}: input {i}: fixed-n predicts {f.prediction}, sequential "
                f"{s.prediction}, from the same selection samples"
            )


def _oracle_floor(p_a: np.ndarray, thresholds: np.ndarray, alpha: float, n_max: int) -> np.ndarray:
    """Per input, the fewest samples (on a geometric grid, capped at ``n_max``) at which the
    Clopper-Pearson bounds at ``alpha`` of the count ``p_a * n`` settle every threshold."""
    sizes = np.unique(np.geomspace(10, n_max, _FLOOR_STEPS).round()).astype(np.int64)
    need = np.full(p_a.size, n_max, dtype=np.int64)
    for n in sizes[::-1]:  # settled at n => recorded; the smallest settled size wins
        count = np.floor(p_a * n)
        lower = clopper_pearson_lower(count, n, alpha)[:, None]
        upper = clopper_pearson_upper(count, n, alpha)[:, None]
        settled = ((lower >= thresholds) | (upper < thresholds)).all(axis=1)
        need = np.where(settled, n, need)
    return need


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a train.py checkpoint (default: train one here)")
    parser.add_argument("--inputs", type=int, help="test inputs (default 200; --quick 10)")
    parser.add_argument("--n", type=int, help="fixed n = n_max (default 100,000; --quick 10,000)")
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
    parser.add_argument("--quick", action="store_true", help="smoke-test size (about 2 minutes)")
    args = parser.parse_args()
    quick = {"inputs": 10, "n": 10_000, "train_batches": 30}
    full = {"inputs": 200, "n": 100_000, "train_batches": None}
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
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
    grid = radius_grid(None, sigma_b)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    classifier = module.classifier.to(device).eval()
    for parameter in classifier.parameters():
        parameter.requires_grad_(False)
    num_classes = module.hparams.num_classes

    smoothings = {"constant": datamodule.certification_inputs(indices, constant=True)}
    if datamodule.r > 0:
        smoothings["IDRS"] = datamodule.certification_inputs(indices)
    settings = {
        mode: CertificationSettings(
            n0=args.n0,
            n=args.n,
            alpha=args.alpha,
            batch_size=args.batch,
            sequential=mode != MODES[0],
        )
        for mode in MODES
    }
    labels = {name: inputs.y.tolist() for name, inputs in smoothings.items()}
    smooth = {
        (name, mode): Smooth(
            classifier, num_classes, inputs.r, settings[mode], datamodule.value_range, grid
        )
        for name, inputs in smoothings.items()
        for mode in MODES
    }
    xs = {name: inputs.x.to(device) for name, inputs in smoothings.items()}
    sigmas = {name: inputs.sigma.tolist() for name, inputs in smoothings.items()}
    variants = list(smooth)

    # Warm-up (first calls, the radius thresholds' set-up) on the first input at a small n.
    for name, mode in variants:
        small = CertificationSettings(
            n0=args.n0,
            n=max(args.n0, min(args.n, 1000)),
            alpha=args.alpha,
            batch_size=args.batch,
            sequential=mode != MODES[0],
        )
        warm = Smooth(
            classifier, num_classes, smoothings[name].r, small, datamodule.value_range, grid
        )
        _certify(warm, xs[name][0], sigmas[name][0], indices[0], None)

    certificates: dict[tuple[str, str], list[Certificate]] = {v: [] for v in variants}
    seconds: dict[tuple[str, str], list[float]] = {v: [] for v in variants}
    for j, index in enumerate(indices):  # a round is one input; the order rotates
        for name, mode in rotated(variants, j):
            label = labels[name][j] if mode == "shortcut" else None
            cert, elapsed = _certify(smooth[name, mode], xs[name][j], sigmas[name][j], index, label)
            certificates[name, mode].append(cert)
            seconds[name, mode].append(elapsed)

    print(
        "Sequential vs fixed-n CERTIFY: forward passes of the base classifier (n0 + estimation "
        "samples, summed over inputs), wall time and certified accuracy at the default radius "
        "grid, for constant sigma and IDRS."
    )
    print(
        "Both variants see the same inputs and the same noise streams (seeded per input: the "
        "same n0 selection samples, and sequential's estimation samples are a prefix of "
        "fixed-n's); the variants take turns input by input in a rotating order."
    )
    dataset = datamodule.hparams.dataset
    print(
        f"model: {module.hparams.network} on {dataset}, {model_note}; {len(indices)} inputs of the "
        f"class-stratified evaluation subset; n0 = {args.n0}, alpha = {args.alpha}, fixed n = "
        f"n_max = {args.n}, looks {look_schedule(args.n).tolist()}, batch {args.batch}, "
        f"{device.type}, {torch.get_num_threads()} threads"
    )
    print(f"radius grid (0 to 3 sigma_b, step sigma_b / 4): {grid}")
    if "IDRS" not in smoothings:
        print("IDRS skipped: the checkpoint's r is 0 (its sigma(x) is constant)")

    total = dict.fromkeys((*MODES, "floor"), 0)
    for name, inputs in smoothings.items():
        fixed, sequential = certificates[name, MODES[0]], certificates[name, MODES[1]]
        _check_prefix(fixed, sequential, args.n, name)
        passes = {m: sum(args.n0 + c.samples for c in certificates[name, m]) for m in MODES}
        wall = {m: sum(seconds[name, m]) for m in MODES}
        for mode in MODES:
            total[mode] += passes[mode]
        sigma = inputs.sigma
        level = (
            f"sigma = {sigma_b:g}, r = 0"
            if name == "constant"
            else f"r = {inputs.r:g}, sigma(x) in [{sigma.min():.4g}, {sigma.max():.4g}]"
        )
        stopped = np.array([c.samples for c in sequential])
        p_a = np.array([c.counts.max() / args.n for c in fixed])
        thresholds = radius_thresholds(grid, sigma, inputs.r, inputs.x[0].numel())
        floor = _oracle_floor(p_a, thresholds, args.alpha, args.n)
        passes["floor"] = int(np.sum(args.n0 + floor))
        total["floor"] += passes["floor"]
        skipped = sum(c.skipped for c in certificates[name, "shortcut"])
        print(f"\n{name} ({level})")
        print(
            f"  forward passes: fixed-n {passes['fixed-n']:,}, sequential {passes['sequential']:,}"
            f"; ratio fixed-n / sequential {passes['fixed-n'] / passes['sequential']:.3f}x"
        )
        print(
            f"  with the evaluation shortcut ({skipped} inputs skipped): "
            f"{passes['shortcut']:,}; ratio {passes['fixed-n'] / passes['shortcut']:.3f}x"
        )
        print(
            f"  oracle floor (one test at alpha, count at its expectation): "
            f"{passes['floor']:,}; ratio {passes['fixed-n'] / passes['floor']:.3f}x; "
            f"{int((floor == args.n).sum())} inputs need n_max even there"
        )
        print(
            f"  sequential estimation samples per input: median {int(np.median(stopped)):,}, "
            f"min {stopped.min():,}, max {stopped.max():,}; {int((stopped == args.n).sum())} of "
            f"{len(stopped)} inputs ran to n_max"
        )
        print(
            f"  wall time: fixed-n {wall['fixed-n']:.2f} s, sequential {wall['sequential']:.2f} s"
            f"; ratio fixed-n / sequential {wall['fixed-n'] / wall['sequential']:.3f}x"
        )
        per_input = [
            f / s
            for f, s in zip(seconds[name, "fixed-n"], seconds[name, "sequential"], strict=True)
        ]
        print(f"    per input, fixed-n / sequential time: {spread(per_input, 'x')}")
        per_pass = {m: wall[m] / passes[m] for m in MODES}
        print(
            f"  time per forward pass: fixed-n {1e6 * per_pass['fixed-n']:.1f} us, sequential "
            f"{1e6 * per_pass['sequential']:.1f} us; sequential / fixed-n "
            f"{per_pass['sequential'] / per_pass['fixed-n']:.3f}x (its overhead)"
        )
        labels = inputs.y
        accuracy = {}
        for mode in MODES:
            certs = certificates[name, mode]
            radius = np.array([c.radius for c in certs])
            correct = np.array([c.prediction for c in certs]) == labels
            accuracy[mode] = 100 * certified_accuracy(radius, correct, grid)
        if not np.array_equal(accuracy["sequential"], accuracy["shortcut"]):
            sys.exit(f"{name}: the evaluation shortcut changed certified accuracy")
        print("  certified accuracy (%; the shortcut's equals sequential's, checked):")
        print(f"    {'radius':>8s} {'fixed-n':>8s} {'sequential':>11s} {'diff (points)':>14s}")
        for i, r in enumerate(grid):
            a, b = accuracy["fixed-n"][i], accuracy["sequential"][i]
            print(f"    {r:8.4f} {a:8.1f} {b:11.1f} {b - a:+14.1f}")
    print(
        f"\nboth smoothings: forward passes fixed-n {total['fixed-n']:,}, sequential "
        f"{total['sequential']:,}, with the shortcut {total['shortcut']:,}, oracle floor "
        f"{total['floor']:,}; checks: where sequential drew n_max its counts equal fixed-n's, "
        "and predictions agree where both predict: ok"
    )
    print(
        f"ratios: with the shortcut {total['fixed-n'] / total['shortcut']:.3f}, oracle floor "
        f"{total['fixed-n'] / total['floor']:.3f}"
    )
    print(f"forward-pass ratio: {total['fixed-n'] / total['sequential']:.3f}")


if __name__ == "__main__":
    main()
