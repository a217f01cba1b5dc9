"""A LightningDataModule that attaches a noise level sigma(x) to every sample.

Batches are ``(x, y, sigma)``. Training samples carry ``sigma`` at the train rate ``trr``,
evaluation samples at the test rate ``r`` (paper Eq. 1; rate 0 is constant ``sigma_b``, i.e.
Cohen et al.'s smoothing). The kNN statistic is computed against the unaugmented training
split, in the space where noise is added (flattened ``[0, 1]`` pixels), only when a rate is
positive, and cached on disk; ``sigma_b``, the rates, ``m`` and the clamp are re-applied to
the cached distances. Training points leave themselves out of their own neighbourhood, so
that their sigma is distributed like that of unseen inputs; validation and test points use
exactly Eq. 1 over the training split ("train" below).

Three splits: a validation split of ``val_fraction`` of the source's training split is carved
off (class-stratified, seeded by ``val_seed``); "train" is the rest. sigma(x) of every split is
computed against "train" only, so no validation or test input ever shapes training, sigma(x),
checkpoint choice or early stopping. Validation batches and the certification callback read
"val"; the test split is read only by ``trainer.test`` and certification (``certify.py``, the
reproductions' final evaluation). ``val_fraction = 0`` trains on the whole split, with no
validation and no model selection (checkpoints written before validation splits existed were
trained so, and load with ``val_fraction = 0``).

Certification reads the data through :meth:`SmoothingDataModule.evaluation_subset` (the one
fixed, class-stratified subset of a split) and :meth:`SmoothingDataModule.certification_inputs`
(inputs, labels, sigmas and the r to certify with, input-dependent or constant).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from idrs_lightning.data.folders import FolderSplit
from idrs_lightning.data.sources import DATASETS, ArraySplit, Split, load_split
from idrs_lightning.data.subsets import stratified_subset
from idrs_lightning.normalization import normalization, value_range
from idrs_lightning.settings import CertificationSettings, radius_grid
from idrs_lightning.sigma.knn import check_exact_backend, mean_knn_distance
from idrs_lightning.sigma.knn_cache import (
    cached_mean_knn_distance,
    cached_streamed_mean_knn_distance,
)
from idrs_lightning.sigma.knn_streamed import streamed_mean_knn_distance
from idrs_lightning.sigma.levels import KnnSigma, MChoice
from idrs_lightning.smoothing import Smooth
from idrs_lightning.validation import InvalidSetting, check_choice, check_float, check_int

log = logging.getLogger(__name__)

#: The share of the training split held out for validation unless told otherwise.
DEFAULT_VAL_FRACTION = 0.1
#: The splits a SmoothingDataModule serves: "train" and "val" carved from the source's
#: training split, "test" the source's test split.
SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")


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


@dataclass(frozen=True)
class CertificationInputs:
    """Inputs to certify (test or validation): ``x`` ``[k x ...]``, labels ``y``, noise levels
    ``sigma`` (one per input, float64: Eq. 1 as evaluated, never rounded to float32, so that
    the noise level sampled is an r-semi-elastic function up to float64 rounding) and the
    semi-elasticity ``r`` that produced them (0: constant sigma)."""

    indices: list[int]
    x: torch.Tensor
    y: np.ndarray
    sigma: np.ndarray
    r: float


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
            taken over this many training points (seeded; leave-one-out against the training
            split) instead of all of them; ``None``: all. Training at a rate ``trr > 0``
            needs every training distance anyway, and then all are used.
        batch_size, num_workers: data loading.
        val_fraction, val_seed: the share of the source's training split carved off as the
            validation split (class-stratified, chosen by ``val_seed``); 0: none.
        eval_subset_size, eval_seed: the class-stratified subset to certify.
        cache_dir: kNN distance cache (default ``root/knn-cache``).
        download: allow downloading MNIST / CIFAR-10 / Fashion-MNIST.
        dataset_options: extra options of the data set (e.g. ``{"dim": 60}`` for "cone").
        knn_backend: "auto", "faiss" or "torch" (exact searches; approximate indexes are
            refused: sigma(x) would not be r-semi-elastic, which Theorem 8 needs).
        knn_query_chunk, knn_database_chunk: rows held at once by the streamed kNN search of
            data not held in memory (``imagefolder``), sharded over the ``torch.distributed``
            ranks when there are several (:mod:`~idrs_lightning.sigma.knn_streamed`).

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
        val_fraction: float = DEFAULT_VAL_FRACTION,
        val_seed: int = 0,
        eval_subset_size: int = 500,
        eval_seed: int = 0,
        cache_dir: str | None = None,
        download: bool = False,
        dataset_options: dict | None = None,
        knn_backend: str = "auto",
        knn_query_chunk: int = 1024,
        knn_database_chunk: int = 4096,
    ) -> None:
        super().__init__()
        check_choice("dataset", dataset, DATASETS)
        check_exact_backend(knn_backend)
        check_int("knn_query_chunk", knn_query_chunk, 1)
        check_int("knn_database_chunk", knn_database_chunk, 1)
        check_int("batch_size", batch_size, 1)
        if m_sample_size is not None:
            check_int("m_sample_size", m_sample_size, 1)
        if val_fraction != 0:
            check_float("val_fraction", val_fraction, 0.0, 1.0)
        check_int("val_seed", val_seed, 0)
        check_int("eval_subset_size", eval_subset_size, 1)
        check_int("eval_seed", eval_seed, 0)
        self.save_hyperparameters()
        # Validate the designs now: KnnSigma rejects bad sigma_b, rates, k, m and clamps.
        self.test_sigma = KnnSigma(sigma_b, r, k, m, sigma_min, sigma_max)
        try:
            self.train_sigma = KnnSigma(
                sigma_b if train_sigma_b is None else train_sigma_b, trr, k, m, sigma_min, sigma_max
            )
        except InvalidSetting as error:  # name the training option, not the design's field
            setting = {"r": "trr", "sigma_b": "train_sigma_b"}.get(error.setting, error.setting)
            raise InvalidSetting(setting, error.problem) from None
        self.cache_dir = Path(cache_dir) if cache_dir is not None else Path(root) / "knn-cache"
        self.datasets: dict[str, SigmaDataset] = {}
        self.distances: dict[str, np.ndarray] = {}
        self._splits: dict[str, Split] = {}
        self.sample_shape: tuple[int, ...] = ()
        self.num_classes = 0

    @property
    def r(self) -> float:
        """The test-time semi-elasticity that certification must use."""
        return self.test_sigma.r

    @property
    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel ``(mean, std)`` of the data set, for the model's first layer."""
        return normalization(self.hparams.dataset, self.hparams.dataset_options)

    @property
    def value_range(self) -> tuple[float, float] | None:
        """Range of the input values (``[0, 1]`` pixels), ``None`` for points in R^d."""
        return value_range(self.hparams.dataset)

    @property
    def resolved_m(self) -> float | None:
        """``m`` of Eq. 1 as used (chosen from the training distances for "min"/"mean"), or
        ``None`` while it is still to be chosen."""
        return None if isinstance(self.test_sigma.m, str) else float(self.test_sigma.m)

    def state_dict(self) -> dict[str, float]:
        """Saved with checkpoints: the chosen ``m``, so that certification reuses it."""
        chosen = isinstance(self.hparams.m, str) and self.resolved_m is not None
        return {"m": self.resolved_m} if chosen else {}

    def load_state_dict(self, state_dict: dict[str, float]) -> None:
        """Restore the checkpoint's ``m``; sigmas built with another one are rebuilt."""
        if "m" in state_dict and state_dict["m"] != self.resolved_m:
            self._use_m(float(state_dict["m"]))
            self.datasets.clear()

    def prepare_data(self) -> None:
        if self.hparams.download:
            for split in ("train", "test"):
                self._split(split)

    def setup(self, stage: str | None = None) -> None:
        """Load what ``stage`` needs: for "fit" (or ``None``) the training and validation
        splits with their sigma, for "validate" the validation split, otherwise the test split
        (and the training split only for a kNN sigma)."""
        training = stage in ("fit", None)
        first = self._split("test" if stage in ("test", "predict") else "train")
        self.sample_shape = tuple(first.sample_shape)
        self.num_classes = first.num_classes
        if self.test_sigma.r > 0 or (training and self.train_sigma.r > 0):
            k, size = self.hparams.k, len(self._split("train"))
            if k >= size:
                raise InvalidSetting("k", f"({k}) must be smaller than the training set ({size})")
        if training:
            self._dataset("train")
            if self.test_sigma.r > 0:
                self._choose_m()  # saved with checkpoints (state_dict), whatever the splits
        if stage in ("fit", "validate", None) and self.has_validation:
            self._dataset("val")

    def prepare_sigma(self) -> None:
        """Compute (or read from the cache) sigma(x) of every split that has one to compute:
        training points at a positive train rate, validation and test points at a positive
        test rate."""
        for split in SPLIT_NAMES:
            rate = (self.train_sigma if split == "train" else self.test_sigma).r
            if rate > 0 and (split != "val" or self.has_validation):
                self._sigma(split)

    def training_sigma(self) -> np.ndarray:
        """sigma(x) of the test design (rate ``r``, the same ``m``) at every training point,
        each leaving itself out of its neighbourhood (so distributed like an unseen input's),
        in float64: e.g. the mean noise level of IDRS over the training data."""
        if self.test_sigma.r == 0:
            return np.full(len(self._split("train")), float(self.test_sigma.sigma_b))
        self._choose_m()
        return np.asarray(self.test_sigma(self._mean_distances("train")), dtype=np.float64)

    @property
    def has_validation(self) -> bool:
        """Whether a validation split is carved off (``val_fraction > 0``)."""
        return self.hparams.val_fraction > 0

    @property
    def test_size(self) -> int:
        """Number of inputs in the test split."""
        return len(self._split("test").y)

    def split_size(self, split: str) -> int:
        """Number of inputs in ``split`` ("train", "val" or "test")."""
        return len(self._split(check_choice("split", split, SPLIT_NAMES)).y)

    @property
    def reference_identity(self) -> str:
        """The identity of the training points sigma(x) is computed against: the source's
        training split less the validation split."""
        return self._split("train").identity

    @property
    def class_names(self) -> tuple[str, ...] | None:
        """The class names of an image folder (its class folders), else ``None``."""
        test = self._split("test")
        return test.classes if isinstance(test, FolderSplit) else None

    @property
    def test_identity(self) -> str:
        """The test split's identity (its name, options and content digest)."""
        return self._split("test").identity

    def labels(self, split: str = "test") -> np.ndarray:
        """The labels of ``split`` ("test" or "val"), by index."""
        return self._evaluated(split).y

    def evaluation_subset(self, size: int | None = None, split: str = "test") -> np.ndarray:
        """The fixed, class-stratified evaluation subset of ``split`` ("test" for certification,
        "val" for the callback): ``size`` inputs (default ``eval_subset_size``) chosen by
        ``eval_seed``.

        Raises:
            InvalidSetting: when the split has fewer than ``size`` inputs.
        """
        labels = self._evaluated(split).y
        wanted = self.hparams.eval_subset_size if size is None else size
        if wanted > len(labels):
            raise InvalidSetting(
                "eval_subset_size", f"({wanted}) exceeds the {split} split ({len(labels)} inputs)"
            )
        return stratified_subset(labels, wanted, self.hparams.eval_seed)

    def radius_grid(self, radii: list[float] | None = None) -> list[float]:
        """``radii``, or the default grid of this data's ``sigma_b``
        (:func:`~idrs_lightning.settings.radius_grid`)."""
        return radius_grid(radii, float(self.hparams.sigma_b))

    def smooth(
        self,
        classifier: nn.Module,
        num_classes: int,
        settings: CertificationSettings,
        radii: list[float] | None = None,
        constant: bool = False,
    ) -> Smooth:
        """The smoothed ``classifier`` for this data: the rate r of its test-time sigma(x)
        (0 with ``constant``), its range of values and the radius grid (where sequential
        CERTIFY settles each input); the certification job and the callback both use it."""
        r = 0.0 if constant else self.r
        grid = self.radius_grid(radii)
        return Smooth(classifier, num_classes, r, settings, self.value_range, grid)

    def certification_inputs(
        self, indices: Sequence[int], constant: bool = False, split: str = "test"
    ) -> CertificationInputs:
        """Inputs ``indices`` of ``split`` ("test" or "val") with their sigma(x) at the test
        rate ``r``, or with ``constant`` every sigma ``sigma_b`` and ``r = 0`` (Cohen et al.'s
        smoothing)."""
        chosen = list(indices)
        data = self._evaluated(split)
        size = len(data.y)
        outside = [i for i in chosen if not 0 <= i < size]
        if outside:
            raise InvalidSetting(
                "indices", f"must lie in [0, {size}) (the {split} split), got {outside[0]}"
            )
        rows = np.asarray(chosen, dtype=np.int64)
        x, y = torch.from_numpy(data.rows(rows)), np.asarray(data.y, dtype=np.int64)[rows]
        if constant:
            sigma = np.full(len(chosen), float(self.hparams.sigma_b), dtype=np.float64)
            return CertificationInputs(chosen, x, y, sigma, 0.0)
        return CertificationInputs(chosen, x, y, self._sigma(split)[rows], self.r)

    def _evaluated(self, split: str) -> Split:
        """The split certification reads: "test", or "val" where one is carved off."""
        return self._split(check_choice("split", split, ("val", "test")))

    def split_arrays(self, split: str) -> ArraySplit:
        """The inputs and labels of ``split`` ("train", "val" or "test") as loaded (no sigma).

        Raises:
            InvalidSetting: for an image folder, which is not held in memory.
        """
        data = self._split(check_choice("split", split, SPLIT_NAMES))
        if not isinstance(data, ArraySplit):
            raise InvalidSetting("dataset", f"{self.hparams.dataset} is read per batch, not held")
        return data

    def sigma_at(self, x: np.ndarray) -> np.ndarray:
        """sigma(x) of the test design (Eq. 1 at rate ``r``, the same ``m``) at arbitrary
        inputs ``x`` (rows of the sample shape, e.g. a plotting grid), in float64."""
        if self.test_sigma.r == 0:
            return np.full(len(x), float(self.test_sigma.sigma_b))
        self._choose_m()
        train = self._split("train")
        points = np.asarray(x, dtype=np.float32)
        if isinstance(train, ArraySplit):
            distances = mean_knn_distance(
                points, train.x, self.hparams.k, backend=self.hparams.knn_backend
            )
        else:
            queries = ArraySplit(points, np.zeros(len(points), dtype=np.int64), 1, "points")
            distances = streamed_mean_knn_distance(queries, train, self.hparams.k, **self._chunks)
        return np.asarray(self.test_sigma(distances), dtype=np.float64)

    @property
    def _chunks(self) -> dict[str, int]:
        return {
            "query_chunk": self.hparams.knn_query_chunk,
            "database_chunk": self.hparams.knn_database_chunk,
        }

    def _split(self, split: str) -> Split:
        """ "test" as loaded; "train" and "val" carved from the source's training split."""
        if split == "val" and not self.has_validation:
            raise InvalidSetting(
                "val_fraction",
                "is 0, so there is no validation split: set --data.val_fraction "
                f"(e.g. {DEFAULT_VAL_FRACTION})",
            )
        if split not in self._splits:
            if split == "test" or not self.has_validation:
                self._splits[split] = self._source("test" if split == "test" else "train")
            else:
                source = self._source("train")
                val_rows, fit_rows = self._holdout(source)
                tag = f"holdout={self.hparams.val_fraction}:seed={self.hparams.val_seed}"
                self._splits["val"] = _part(source, val_rows, f"{tag}:val")
                self._splits["train"] = _part(source, fit_rows, f"{tag}:train")
        return self._splits[split]

    def _source(self, split: str) -> Split:
        return load_split(
            self.hparams.dataset,
            split,
            self.hparams.root,
            download=self.hparams.download,
            **(self.hparams.dataset_options or {}),
        )

    def _holdout(self, source: Split) -> tuple[np.ndarray, np.ndarray]:
        """Rows of the validation split and of the rest (class-stratified, seeded).

        Raises:
            InvalidSetting: naming ``val_fraction`` when it leaves either part empty.
        """
        size = len(source.y)
        count = round(self.hparams.val_fraction * size)
        if not 0 < count < size:
            raise InvalidSetting(
                "val_fraction",
                f"({self.hparams.val_fraction}) of {size} training inputs leaves "
                f"{count} for validation: choose a share that holds at least one input, or 0",
            )
        val_rows = stratified_subset(source.y, count, self.hparams.val_seed)
        keep = np.ones(size, dtype=bool)
        keep[val_rows] = False
        return val_rows, np.flatnonzero(keep)

    def _dataset(self, split: str) -> SigmaDataset:
        """The split with its sigma in float32 (for training and validation batches)."""
        if split not in self.datasets:
            data = self._split(split)
            sigma = torch.from_numpy(self._sigma(split).astype(np.float32))
            if isinstance(data, FolderSplit):
                options = self.hparams.dataset_options or {}
                crop = options.get("train_crop", "random_resized") if split == "train" else None
                self.datasets[split] = data.dataset(sigma, crop)
            else:
                x, y = torch.from_numpy(data.x), torch.from_numpy(data.y)
                self.datasets[split] = SigmaDataset(x, y, sigma)
        return self.datasets[split]

    def _sigma(self, split: str) -> np.ndarray:
        """sigma(x) of every sample in float64: Eq. 1 at the split's rate, or constant at 0."""
        design = self.train_sigma if split == "train" else self.test_sigma
        if design.r == 0:
            return np.full(len(self._split(split)), float(design.sigma_b))
        self._choose_m()
        design = self.train_sigma if split == "train" else self.test_sigma
        return np.asarray(design(self._mean_distances(split)), dtype=np.float64)

    def _mean_distances(self, split: str) -> np.ndarray:
        """Mean kNN distances of the split against the training split (leave-one-out for
        the training split itself), cached on disk."""
        if split not in self.distances:
            queries = self._split(split)
            self.distances[split] = self._knn(queries, exclude_self=split == "train")
        return self.distances[split]

    def _knn(self, queries: Split, **leave_out: object) -> np.ndarray:
        """Against the training split: in memory for arrays, else streamed in chunks and
        sharded over the distributed ranks (the same distances, the same cache entry)."""
        train = self._split("train")
        if isinstance(queries, ArraySplit) and isinstance(train, ArraySplit):
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
        return cached_streamed_mean_knn_distance(
            self.cache_dir,
            queries,
            queries.identity,
            train,
            train.identity,
            self.hparams.k,
            **leave_out,
            **self._chunks,
        )

    def _choose_m(self) -> None:
        """Resolve m = min / mean of training kNN distances (leave-one-out), App. E.1: over
        every training point when training at a positive rate (those distances are needed
        anyway) or without ``m_sample_size``, else over a seeded sample of that size."""
        if self.resolved_m is not None:
            return
        train = self._split("train")
        sample = self.hparams.m_sample_size
        if self.train_sigma.r > 0 or sample is None or sample >= len(train):
            reference, used = self._mean_distances("train"), len(train)
        else:
            rows = np.sort(np.random.default_rng(0).choice(len(train), sample, replace=False))
            reference, used = self._knn(train.subset(rows), self_index=rows), sample
        self._use_m(self.test_sigma.with_m_from(reference).m)
        log.info(
            "kNN sigma: k=%d, m=%s over %d training points -> %.6g",
            self.hparams.k,
            self.hparams.m,
            used,
            self.resolved_m,
        )

    def _use_m(self, m: float) -> None:
        self.test_sigma = replace(self.test_sigma, m=m)
        self.train_sigma = replace(self.train_sigma, m=m)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self._dataset(split),
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            num_workers=self.hparams.num_workers,
            persistent_workers=self.hparams.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        """The validation split; none (no validation loop) where ``val_fraction`` is 0."""
        return self._loader("val", shuffle=False) if self.has_validation else []

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


def _part(split: Split, rows: np.ndarray, name: str) -> Split:
    """Rows ``rows`` of ``split`` as a split of its own: its identity names the part, so that
    cached kNN distances of the part and of the whole never mix."""
    return replace(split.subset(rows), identity=f"{split.identity}:{name}")
