"""Benchmark: the certification callback's cost as a fraction of a training epoch.

The default Fashion-MNIST setup (``configs/fashion_mnist.yaml``: LeNet, batch 256, IDRS
evaluation at r = 0.01). What is compared, in every round:

* one training epoch (``trainer.fit``, one epoch, no validation), always from the same initial
  weights and seed, so every round trains the same model on the same batches;
* the callback as ``configs/with_certification.yaml`` configures it (sequential CERTIFY, at
  most 10,000 samples per input) certifying its subset once
  (``CertificationCallback.certify``), always on the same trained weights (those after a first,
  warm-up epoch);
* the floor: the bare forward passes of exactly the noisy rows the callback feeds the model
  (recorded from its own call: same rows, same batch shapes), which it cannot beat.

To pair them under a changing machine load, the callback runs in the middle of each round's
epoch (after its middle batch, with the trained weights swapped in and out; its time is
taken out of the epoch's), and the floor's passes run between the callback's own forward
passes (``_common.Interleaved``). The kNN precompute is not part of an epoch and runs before.
Subnormals are flushed; every ratio is per round, with median, min-max and spread.
Usage: ``python bench/callback_cost.py [--root data] [--rounds 3] [--quick]`` (``--quick``:
scikit-learn's digits instead of Fashion-MNIST and 10 inputs, for a smoke test).
"""

from __future__ import annotations

import argparse
import copy
import logging
import time
from collections.abc import Callable
from pathlib import Path

import lightning.pytorch as pl
import torch
import yaml
from _common import (
    Interleaved,
    flush_subnormals,
    print_floor_check,
    print_ratio,
    ratios,
    spread,
)

from callbacks.certification import CertificationCallback
from idrs_lightning.data.datamodule import SmoothingDataModule
from idrs_lightning.settings import CertificationSettings
from idrs_lightning.training.module import BaseClassifierModule

BATCH = 256


class _AfterBatch(pl.Callback):
    """Calls ``run(trainer)`` once per epoch, after training batch ``at``."""

    def __init__(self, at: int, run: Callable[[pl.Trainer], None]) -> None:
        self.at, self.run = at, run

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx == self.at:
            self.run(trainer)


CALLBACK_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "with_certification.yaml"


def _configured_callback(num_examples: int | None) -> CertificationCallback:
    """The callback as the repository's certification config builds it."""
    (entry,) = yaml.safe_load(CALLBACK_CONFIG.read_text())["trainer"]["callbacks"]
    arguments = dict(entry["init_args"])
    settings = CertificationSettings(**arguments.pop("settings"))
    if num_examples is not None:
        arguments["num_examples"] = num_examples
    return CertificationCallback(settings, **arguments)


def _trainer(callbacks: list[pl.Callback] | None = None) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=callbacks,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="data")
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--num-examples", type=int, help="default: the callback's")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--quick", action="store_true", help="smoke-test size (seconds)")
    args = parser.parse_args()
    if args.quick:
        args.dataset, args.rounds, args.num_examples = "digits", 2, 10
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no banners per fit
    flush_subnormals()
    pl.seed_everything(0, verbose=False)
    datamodule = SmoothingDataModule(
        args.dataset, root=args.root, sigma_b=0.25, r=0.01, k=20, batch_size=BATCH
    )
    datamodule.setup("fit")  # kNN precompute is not part of an epoch
    module = BaseClassifierModule(
        "lenet",
        lr=0.05,
        num_classes=datamodule.num_classes,
        sample_shape=tuple(datamodule.sample_shape),
    )
    initial = copy.deepcopy(module.state_dict())
    callback = _configured_callback(args.num_examples)
    batches_per_epoch = -(-len(datamodule.datasets["train"]) // BATCH)

    def epoch(callbacks: list[pl.Callback] | None = None) -> tuple[pl.Trainer, float]:
        module.load_state_dict(initial)
        pl.seed_everything(0, verbose=False)
        trainer = _trainer(callbacks)
        start = time.perf_counter()
        trainer.fit(module, datamodule)
        return trainer, time.perf_counter() - start

    trainer, _ = epoch()  # warm-up; its weights are the ones every certification uses
    trained = copy.deepcopy(module.state_dict())
    module.load_state_dict(trained)
    batches: list[torch.Tensor] = []
    hook = module.classifier.register_forward_pre_hook(lambda _, a: batches.append(a[0].clone()))
    try:
        summary = callback.certify(trainer, module).summary  # warm-up and recording
    finally:
        hook.remove()
    rows = sum(len(b) for b in batches)

    interleaved = Interleaved(module.classifier, {"floor": lambda j: module.classifier(batches[j])})
    times: dict[str, list[float]] = {"epoch": [], "callback": [], "floor": []}
    certify_wall: list[float] = []

    def certify(trainer: pl.Trainer) -> None:
        training_state = copy.deepcopy(module.state_dict())
        module.load_state_dict(trained)
        interleaved.start_round(len(times["epoch"]))
        start = time.perf_counter()
        callback.certify(trainer, module)
        certify_wall.append(time.perf_counter() - start)
        interleaved.stop()
        module.load_state_dict(training_state)

    for _ in range(args.rounds):
        certify_wall.clear()
        _, wall = epoch([_AfterBatch(batches_per_epoch // 2, certify)])
        assert len(certify_wall) == 1 and interleaved.batch == len(batches) - 1
        times["epoch"].append(wall - certify_wall[0])
        times["callback"].append(certify_wall[0] - interleaved.inside)
        times["floor"].append(interleaved.times["floor"])
    interleaved.remove()

    s, inputs = callback.certification.settings, callback.certification.num_examples
    print(
        f"LeNet on {args.dataset}, batch {BATCH} ({batches_per_epoch} batches an epoch), "
        f"{torch.get_num_threads()} threads; callback: {inputs} inputs, "
        f"n0 = {s.n0}, n = {s.n}, batch {s.batch_size}: {rows} rows in {len(batches)} passes"
    )
    print(f"  epoch                   s {spread(times['epoch'])}")
    print(f"  callback                s {spread(times['callback'])}")
    print(f"  floor (its bare passes) s {spread(times['floor'])}")
    share = [100 * t for t in ratios(times["callback"], times["epoch"])]
    print(f"  callback / epoch: {spread(share, '%')}")
    over_floor = ratios(times["callback"], times["floor"])
    print_ratio("time callback / floor", over_floor, width=24)
    print_floor_check("callback", over_floor)
    print(
        f"  clean accuracy {summary.clean_accuracy:.3f}, "
        f"ACR {summary.average_certified_radius:.3f} (trained weights)"
    )


if __name__ == "__main__":
    main()
