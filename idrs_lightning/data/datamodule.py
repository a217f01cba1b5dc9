"""A LightningDataModule that attaches a noise level sigma(x) to every sample.

Batches are ``(x, y, sigma)``. Training samples carry ``sigma`` at the train rate ``trr``,
evaluation samples at the test rate ``r`` (paper Eq. 1; rate 0 is constant ``sigma_b``, i.e.
Cohen et al.'s smoothing). The kNN statistic is computed once per split against the
unaugmented training split, in the space where noise is added (flattened ``[0, 1]`` pixels),
and cached on disk; ``sigma_b``, the rates, ``m`` and the clamp are re-applied to the cached
distances. Training points leave themselves out of their own neighbourhood, so that their
sigma is distributed like that of unseen inputs; evaluation points use exactly Eq. 1 over
the whole training set. Validation and test both use the test split (as Cohen et al. and
the paper do); :meth:`certification_subset` is the fixed, class-stratified subset to certify.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from ..knn_cache import cached_mean_knn_distance
from ..sigma import KnnSigma, MChoice
from .sources import DATASETS, ArraySplit, load_split
from .subsets import stratified_subset

log = logging.getLogger(__name__)


class SigmaDataset(Dataset):
    """In-memory samples with their noise level: items are ``(x, y, sigma)``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, sigma: torch.Tensor) -> None:
        if not len(x) == len(y) == len(sigma):
            raise ValueError(f"lengths differ: x {len(x)}, y {len(y)}, sigma {len(sigma)}")
        self.x, self.y, self.sigma = x, y, sigma

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.x[index], self.y[index], self.sigma[index]

    def batch(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Several items at once, stacked: ``(x, y, sigma)``."""
        rows = torch.as_tensor(indices, dtype=torch.long)
        return self.x[rows], self.y[rows], self.sigma[rows]


class SmoothingDataModule(pl.LightningDataModule):
    """Data with per-sample sigma for training and certifying smoothed classifiers.

    Args:
        dataset: one of :data:`~idrs_lightning.data.sources.DATASETS`.
        root: where data sets live (and are downloaded to when ``download``).
        sigma_b: base noise level (``sigma`` of constant smoothing).
        r: test-time semi-elasticity (0: constant ``sigma_b``); certification must use it.
        trr: train-time rate of the Gaussian augmentation (0: constant).
        train_sigma_b: base level for training (default ``sigma_b``; the paper trains IDRS
            models with a slightly increased constant level, e.g. 0.126 for 0.12).
        k, m, sigma_min, sigma_max: the kNN design of Eq. 1 (``m`` a number, "min" or "mean"
            of the training set's kNN mean distances, Appendix E.1).
        m_sample_size: when ``m`` is "min"/"mean" and training uses constant noise, ``m`` is
            taken over this many training points (seeded; leave-one-out against the whole
            training set) instead of all of them; ``None``: all. Training at a rate ``trr > 0``
            needs every training distance anyway, and then all are used.
        batch_size, num_workers: data loading.
        eval_subset_size, eval_seed: the class-stratified subset to certify.
        cache_dir: kNN distance cache (default ``root/knn-cache``).
        download: allow downloading MNIST / CIFAR-10 / Fashion-MNIST.
        dataset_options: extra options of the data set (e.g. ``{"dim": 60}`` for "cone").
        knn_backend: "auto", "faiss" or "torch".

    Raises:
        ValueError: for an unknown data set or invalid sigma settings (at construction), and
            for ``k`` not smaller than the training set (at :meth:`setup`, before any kNN).
    """

    def __init__(
        self,
        dataset: str = "fashion_mnist",
        root: str = "data",
        sigma_b: float = 0.25,
        r: float = 0.0,
        trr: float = 0.0,
        train_sigma_b: float | None = None,
        k: int = 20,
        m: MChoice = "mean",
        sigma_min: float | None = None,
        sigma_max: float | None = None,
        m_sample_size: int | None = 5000,
        batch_size: int = 128,
        num_workers: int = 0,
        eval_subset_size: int = 500,
        eval_seed: int = 0,
        cache_dir: str | None = None,
        download: bool = False,
        dataset_options: dict | None = None,
        knn_backend: str = "auto",
    ) -> None:
        super().__init__()
        if dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if m_sample_size is not None and m_sample_size < 1:
            raise ValueError(f"m_sample_size must be at least 1 or None, got {m_sample_size}")
        if eval_subset_size < 1:
            raise ValueError(f"eval_subset_size must be at least 1, got {eval_subset_size}")
        self.save_hyperparameters()
        # Validate the designs now: KnnSigma rejects bad sigma_b, rates, k, m and clamps.
        self.test_sigma = KnnSigma(sigma_b, r, k, m, sigma_min, sigma_max)
        self.train_sigma = KnnSigma(
            sigma_b if train_sigma_b is None else train_sigma_b, trr, k, m, sigma_min, sigma_max
        )
        self.cache_dir = Path(cache_dir) if cache_dir is not None else Path(root) / "knn-cache"
        self.datasets: dict[str, SigmaDataset] = {}
        self.labels: dict[str, np.ndarray] = {}
        self.distances: dict[str, np.ndarray] = {}
        self.sample_shape: tuple[int, ...] = ()
        self.num_classes = 0

    @property
    def rate(self) -> float:
        """The test-time semi-elasticity that certification must use."""
        return self.test_sigma.rate

    def prepare_data(self) -> None:
        if self.hparams.download:
            for split in ("train", "test"):
                self._load(split)

    def _load(self, split: str) -> ArraySplit:
        return load_split(
            self.hparams.dataset,
            split,
            self.hparams.root,
            download=self.hparams.download,
            **(self.hparams.dataset_options or {}),
        )

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        train = self._load("train")
        test = self._load("test")
        self.sample_shape = tuple(train.x.shape[1:])
        self.num_classes = train.num_classes
        if self.train_sigma.rate > 0 or self.test_sigma.rate > 0:
            k = self.hparams.k
            if k >= len(train.y):
                raise ValueError(f"k ({k}) must be smaller than the training set ({len(train.y)})")
            self._compute_distances(train, test)
        self.datasets["train"] = self._with_sigma(train, "train", self.train_sigma)
        self.datasets["test"] = self._with_sigma(test, "test", self.test_sigma)
        self.labels = {"train": train.y, "test": test.y}

    def _compute_distances(self, train: ArraySplit, test: ArraySplit) -> None:
        def distances(queries: ArraySplit, **leave_out: object) -> np.ndarray:
            return cached_mean_knn_distance(
                self.cache_dir,
                queries.x,
                queries.identity,
                train.x,
                train.identity,
                self.hparams.k,
                backend=self.hparams.knn_backend,
                **leave_out,
            )

        if self.test_sigma.rate > 0:
            self.distances["test"] = distances(test)
        if self.train_sigma.rate > 0:
            self.distances["train"] = distances(train, exclude_self=True)
        if isinstance(self.test_sigma.m, str):
            self._choose_m(train, distances)

    def _choose_m(self, train: ArraySplit, distances: Callable[..., np.ndarray]) -> None:
        """Resolve m = min / mean of training kNN distances (leave-one-out), App. E.1."""
        sample = self.hparams.m_sample_size
        if "train" in self.distances or sample is None or sample >= len(train.y):
            reference = self.distances.get("train")
            if reference is None:
                reference = distances(train, exclude_self=True)
            used = len(train.y)
        else:
            rows = np.sort(np.random.default_rng(0).choice(len(train.y), sample, replace=False))
            subset = ArraySplit(train.x[rows], train.y[rows], train.num_classes, train.identity)
            reference = distances(subset, self_index=rows)
            used = sample
        self.test_sigma = self.test_sigma.with_m_from(reference)
        self.train_sigma = self.train_sigma.with_m_from(reference)
        self.hparams["m_resolved"] = self.test_sigma.m
        if self.trainer is not None:  # record the chosen value with the run
            for logger in self.trainer.loggers:
                logger.log_hyperparams({"m_resolved": self.test_sigma.m})
        log.info(
            "kNN sigma: k=%d, m=%s over %d training points -> %.6g",
            self.hparams.k,
            self.hparams.m,
            used,
            self.test_sigma.m,
        )

    def _with_sigma(self, data: ArraySplit, split: str, design: KnnSigma) -> SigmaDataset:
        if design.rate > 0:
            sigma = design(self.distances[split])
        else:
            sigma = np.full(len(data.y), design.sigma_b)
        return SigmaDataset(
            torch.from_numpy(data.x),
            torch.from_numpy(data.y),
            torch.from_numpy(np.asarray(sigma, dtype=np.float32)),
        )

    def certification_subset(self) -> Subset:
        """The fixed, seeded, class-stratified evaluation subset of the test split."""
        indices = stratified_subset(
            self.labels["test"], self.hparams.eval_subset_size, self.hparams.eval_seed
        )
        return Subset(self.datasets["test"], indices.tolist())

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.datasets[split],
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            num_workers=self.hparams.num_workers,
            persistent_workers=self.hparams.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
