"""Benchmark: the certification callback's cost as a fraction of a training epoch.

The default Fashion-MNIST setup (``configs/fashion_mnist.yaml``: LeNet, batch 256, IDRS
evaluation at r = 0.01) trains one epoch; the callback with its default settings then
certifies its subset once. Prints both times and the ratio.
Usage: ``python bench/callback_cost.py [--root data]``.
"""

from __future__ import annotations

import argparse
import time

import lightning.pytorch as pl

from callbacks.certification import CertificationCallback
from idrs_lightning.data.datamodule import SmoothingDataModule
from idrs_lightning.training import BaseClassifierModule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="data")
    args = parser.parse_args()
    pl.seed_everything(0)
    datamodule = SmoothingDataModule(
        "fashion_mnist", root=args.root, sigma_b=0.25, r=0.01, k=20, batch_size=256
    )
    module = BaseClassifierModule("lenet", lr=0.05)
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        limit_val_batches=0,
    )
    datamodule.setup("fit")  # kNN precompute is not part of an epoch
    start = time.perf_counter()
    trainer.fit(module, datamodule)
    epoch = time.perf_counter() - start

    callback = CertificationCallback()
    start = time.perf_counter()
    summary = callback.certify(trainer, module)
    cost = time.perf_counter() - start
    print(
        f"epoch {epoch:.1f} s; callback ({callback.num_examples} inputs, n = {callback.n}) "
        f"{cost:.1f} s = {100 * cost / epoch:.1f}% of an epoch "
        f"(clean accuracy {summary['clean_accuracy']:.3f}, ACR "
        f"{summary['average_certified_radius']:.3f})"
    )


if __name__ == "__main__":
    main()
