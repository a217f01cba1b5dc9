"""Raw data sources as numpy arrays, in the space where the smoothing noise is added.

Every source returns an :class:`ArraySplit`: features, labels, the number of classes and an
``identity`` string that determines the data exactly (used as a cache key, e.g. for the kNN
distances behind sigma(x) of the IDRS paper, Eq. 1).

Images are unnormalised pixels scaled to ``[0, 1]``, shape ``(n, C, H, W)``: normalisation is the
model's first layer, so that noise and certified radii live in pixel space (Cohen et al. 2019).
The synthetic data sets of the paper's Appendix A.1 and A.5 are points in ``R^d``, shape
``(n, d)``; the ``[0, 1]`` range does not apply to them.

======================  =========================  ==========================  ===========
name                    source                     shape of ``x``              classes
======================  =========================  ==========================  ===========
``"mnist"``             torchvision ``MNIST``      (60000 | 10000, 1, 28, 28)  10
``"fashion_mnist"``     Debian files or            (60000 | 10000, 1, 28, 28)  10
                        torchvision
``"cifar10"``           torchvision ``CIFAR10``    (50000 | 10000, 3, 32, 32)  10
``"digits"``            scikit-learn               (1297 | 500, 1, 8, 8)       10
``"disc"``              Appendix A.1 (2-D)         (2 * per_class, 2)          2
``"cone"``              Appendix A.5 (N-D)         (2 * per_class, dim)        2
======================  =========================  ==========================  ===========

References
----------
P. Sukenik, A. Kuvshinov, S. Guennemann, "Intriguing properties of input-dependent randomized
smoothing", ICML 2022 (Appendix A.1, toy example; Appendix A.5, high-dimensional toy data set).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .subsets import stratified_subset

logger = logging.getLogger(__name__)

DATASETS: tuple[str, ...] = ("mnist", "fashion_mnist", "cifar10", "digits", "disc", "cone")
SPLITS: tuple[str, ...] = ("train", "test")

#: Where the Debian package ``dataset-fashion-mnist`` installs the original gzipped IDX files.
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")

#: The digits split: a class-stratified test set of this size, drawn with this seed.
DIGITS_TEST_SIZE = 500
DIGITS_SPLIT_SEED = 0

#: Admissible dimensions of the cone data set (the paper evaluates N = 2, 6, 18, 60, 180, 400).
CONE_DIM_RANGE = (2, 400)

_TORCHVISION_NAMES = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10"}
_STREAM_TAGS = {"disc": 1, "cone": 2}


@dataclass(frozen=True, eq=False)
class ArraySplit:
    """One split of a data set as arrays.

    Attributes
    ----------
    x : ndarray of float32
        Images ``(n, C, H, W)`` with unnormalised pixel values in ``[0, 1]``, or synthetic points
        ``(n, d)`` (any real values).
    y : ndarray of int64, shape (n,)
        Labels in ``0 .. num_classes - 1``.
    num_classes : int
    identity : str
        ``"<name>:<split>:n=<n>[:<options>]:blake2b=<digest>"``; the digest covers the pixel
        bytes (or the float32 points) and the labels, so equal identities mean equal data,
        wherever the files came from. Do not modify ``x`` or ``y`` in place.
    """

    x: NDArray[np.float32] = field(repr=False)
    y: NDArray[np.int64] = field(repr=False)
    num_classes: int
    identity: str

    def __post_init__(self) -> None:
        if self.x.dtype != np.float32 or self.y.dtype != np.int64 or self.y.ndim != 1:
            raise ValueError(
                f"x must be float32 and y one-dimensional int64, got {self.x.dtype} and "
                f"{self.y.dtype} with shape {self.y.shape}"
            )
        if self.x.shape[0] != self.y.shape[0]:
            raise ValueError(f"x has {self.x.shape[0]} rows but y has {self.y.shape[0]}")


def load_split(
    name: str,
    split: str,
    root: str | os.PathLike[str],
    *,
    download: bool = False,
    **options: Any,
) -> ArraySplit:
    """Load one split of a data set.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`.
    split : {"train", "test"}
    root : str or path
        Directory of the torchvision data sets (``<root>/MNIST/raw``, ``<root>/FashionMNIST/raw``,
        ``<root>/cifar-10-batches-py``). Unused by ``digits``, ``disc`` and ``cone``.
    download : bool
        Let torchvision download MNIST, Fashion-MNIST or CIFAR-10 into ``root`` when absent.
    **options
        Per data set (defaults in brackets):

        - ``fashion_mnist``: ``system_dir`` [:data:`FASHION_MNIST_SYSTEM_DIR`], or ``None`` to
          use only ``root``.
        - ``disc`` (Appendix A.1): ``per_class_train`` [500], ``per_class_test`` [100],
          ``sector_angle_deg`` [5.0], ``radial_df`` [2.0], ``seed`` [0].
        - ``cone`` (Appendix A.5): ``dim`` [60], ``half_angle_deg`` [5.0],
          ``per_class_train`` [500], ``per_class_test`` [100], ``radial_df`` [2.0], ``seed`` [0].

    Returns
    -------
    ArraySplit

    Raises
    ------
    ValueError
        Unknown name, split or option, or an option out of range.
    FileNotFoundError
        Vision files absent (and not downloadable); the message says which files go where.
    RuntimeError
        Vision files present but failing torchvision's checksum.

    Notes
    -----
    ``digits`` is scikit-learn's ``load_digits()`` (1,797 8x8 images, values 0..16 divided by
    16). Its test split is ``stratified_subset(labels, 500, seed=0)`` and its train split the
    other 1,297 images, both in the original order.

    ``disc`` and ``cone`` are deterministic functions of their options; train and test come
    from independent streams (``numpy.random.default_rng([seed, dataset tag, split index])``).
    See :func:`_generate_disc` and :func:`_generate_cone` for the distributions.
    """
    _check_choice("name", name, DATASETS)
    _check_choice("split", split, SPLITS)
    settings = _resolve_options(name, options)
    if name == "disc":
        return _generate_disc(split, **settings)
    if name == "cone":
        return _generate_cone(split, **settings)
    if name == "digits":
        return _load_digits(split)
    if name == "fashion_mnist":
        _stage_fashion_mnist(Path(root), settings["system_dir"])
    return _load_torchvision(name, _torchvision_class(name), split, Path(root), download)


# --------------------------------------------------------------------------------------------
# Options


def _default_options(name: str) -> dict[str, Any]:
    synthetic = {"per_class_train": 500, "per_class_test": 100, "radial_df": 2.0, "seed": 0}
    return {
        "mnist": {},
        "fashion_mnist": {"system_dir": FASHION_MNIST_SYSTEM_DIR},
        "cifar10": {},
        "digits": {},
        "disc": {**synthetic, "sector_angle_deg": 5.0},
        "cone": {**synthetic, "dim": 60, "half_angle_deg": 5.0},
    }[name]


def _check_choice(what: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")


def _resolve_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    defaults = _default_options(name)
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        allowed = ", ".join(sorted(defaults)) or "none"
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for {name!r}; allowed: {allowed}")
    return {**defaults, **options}


def _check_int(what: str, value: object, low: int, high: int | None = None) -> int:
    """An integer in ``[low, high]`` (``high = None``: no upper bound); bools are refused."""
    upper = np.inf if high is None else high
    is_int = isinstance(value, int | np.integer) and not isinstance(value, bool)
    if not is_int or not low <= value <= upper:  # type: ignore[operator]
        shown = "inf)" if high is None else f"{high}]"
        raise ValueError(f"{what} must be an integer in [{low}, {shown}, got {value!r}")
    return int(value)  # type: ignore[arg-type]


def _check_float(what: str, value: object, low: float, high: float) -> float:
    """A real number in the open interval ``(low, high)``; bools and strings are refused."""
    is_real = isinstance(value, int | float | np.integer | np.floating)
    if isinstance(value, bool) or not is_real or not low < value < high:  # type: ignore[operator]
        raise ValueError(f"{what} must be a number in ({low}, {high}), got {value!r}")
    return float(value)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Identity


def _digest(*arrays: np.ndarray) -> str:
    """blake2b (128 bit) of the shapes, dtypes and bytes of the arrays."""
    hasher = hashlib.blake2b(digest_size=16)
    for array in arrays:
        contiguous = np.ascontiguousarray(array)
        hasher.update(f"{contiguous.dtype.str}{contiguous.shape};".encode())
        hasher.update(memoryview(contiguous).cast("B"))
    return hasher.hexdigest()


def _identity(name: str, split: str, digest: str, n: int, params: str = "") -> str:
    middle = f":{params}" if params else ""
    return f"{name}:{split}:n={n}{middle}:blake2b={digest}"


# --------------------------------------------------------------------------------------------
# Vision data sets through torchvision


def _torchvision_class(name: str) -> type:
    import torchvision.datasets  # deferred: not needed by the synthetic and digits sources

    return getattr(torchvision.datasets, _TORCHVISION_NAMES[name])


def _load_torchvision(
    name: str, dataset_cls: type, split: str, root: Path, download: bool
) -> ArraySplit:
    """Build ``dataset_cls(root, train=..., download=...)`` and convert it to an ArraySplit.

    ``dataset_cls`` is torchvision's ``MNIST``, ``FashionMNIST`` or ``CIFAR10`` (or a subclass
    with its own file table, as ``CIFAR100`` is of ``CIFAR10``).
    """
    try:
        dataset = dataset_cls(root=str(root), train=split == "train", download=download)
    except (RuntimeError, OSError) as error:  # torchvision: absent, corrupted, or offline
        problem = _file_problem(name, dataset_cls, split, root, download)
        if problem is None:
            raise
        raise problem from error
    pixels, labels = _pixels_and_labels(dataset)
    x = pixels.astype(np.float32)
    x /= np.float32(255.0)
    identity = _identity(name, split, _digest(pixels, labels), len(labels))
    return ArraySplit(x=x, y=labels, num_classes=len(dataset.classes), identity=identity)


def _pixels_and_labels(dataset: Any) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """uint8 pixels ``(n, C, H, W)`` (a view where possible) and int64 labels."""
    data = dataset.data
    if isinstance(data, np.ndarray):  # CIFAR10 keeps (n, H, W, C), a view of (n, C, H, W)
        pixels = data.transpose(0, 3, 1, 2)
    else:  # MNIST family: a torch uint8 tensor (n, H, W)
        pixels = data.numpy()[:, None, :, :]
    labels = np.asarray(dataset.targets, dtype=np.int64)
    return pixels, labels


def _required_files(dataset_cls: type, root: Path) -> list[tuple[Path, str | None]]:
    """The files ``dataset_cls`` needs under ``root`` and the MD5 it checks (None: presence)."""
    if hasattr(dataset_cls, "resources"):  # MNIST family: uncompressed IDX in <Class>/raw
        raw = root / dataset_cls.__name__ / "raw"
        return [(raw / file.removesuffix(".gz"), None) for file, _ in dataset_cls.resources]
    folder = root / dataset_cls.base_folder  # CIFAR10 family
    listed = [*dataset_cls.train_list, *dataset_cls.test_list]
    listed.append([dataset_cls.meta["filename"], dataset_cls.meta["md5"]])
    return [(folder / file, md5) for file, md5 in listed]


def _file_problem(
    name: str, dataset_cls: type, split: str, root: Path, download: bool
) -> Exception | None:
    """The clear error for absent or corrupted files, or None if the files look fine."""
    from torchvision.datasets.utils import check_integrity

    required = _required_files(dataset_cls, root)
    missing = [path for path, _ in required if not path.is_file()]
    if missing:
        return FileNotFoundError(_absent_message(name, dataset_cls, split, root, missing, download))
    corrupted = [path for path, md5 in required if not check_integrity(str(path), md5)]
    if corrupted:
        listing = ", ".join(str(path) for path in corrupted)
        return RuntimeError(
            f"{name} files fail torchvision's MD5 check (corrupted, or not the official release): "
            f"{listing}. Delete them and put the original files there, or pass download=True."
        )
    return None


def _absent_message(
    name: str, dataset_cls: type, split: str, root: Path, missing: list[Path], download: bool
) -> str:
    folder = missing[0].parent
    copy = folder.parent if folder.name == "raw" else folder  # <root>/MNIST or the CIFAR folder
    if hasattr(dataset_cls, "resources"):
        source = f"the gunzipped .gz files from {dataset_cls.mirrors[0]}"
    else:
        source = f"the files extracted from {dataset_cls.url}"
    message = (
        f"{name} ({split} split) not found: "
        + ("download failed (no internet access?); " if download else "")
        + f"missing {', '.join(path.name for path in missing)} in {folder}. "
        f"Put {source} there, or run load_split({name!r}, {split!r}, root, download=True) on a "
        f"machine with internet access and copy its {copy.name} folder into {root}."
    )
    if name == "fashion_mnist":
        message += (
            " On Debian/Ubuntu, `apt-get install dataset-fashion-mnist` provides the files in "
            f"{FASHION_MNIST_SYSTEM_DIR}, which are then used automatically."
        )
    return message


def _stage_fashion_mnist(root: Path, system_dir: str | os.PathLike[str] | None) -> None:
    """Decompress the Debian package's Fashion-MNIST files into torchvision's layout.

    torchvision's ``FashionMNIST`` reads uncompressed IDX files from
    ``<root>/FashionMNIST/raw/``; the package ships the original gzipped IDX files. Files
    already in ``raw/`` are kept, so this runs once per ``root``; each file is written to a
    temporary name and renamed, so concurrent processes never read a partial file.
    """
    if system_dir is None:
        return
    from torchvision.datasets import FashionMNIST

    system = Path(system_dir)
    sources = [system / file for file, _ in FashionMNIST.resources]
    if not all(path.is_file() for path in sources):
        return
    raw = root / "FashionMNIST" / "raw"
    for source in sources:
        target = raw / source.name.removesuffix(".gz")
        if not target.is_file():
            _gunzip_atomically(source, target)


def _gunzip_atomically(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    logger.info("decompressing %s into %s", source, target)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with gzip.open(source, "rb") as compressed, os.fdopen(handle, "wb") as plain:
            shutil.copyfileobj(compressed, plain, length=1 << 20)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------------------
# scikit-learn digits


def _load_digits(split: str) -> ArraySplit:
    from sklearn.datasets import load_digits  # deferred: scikit-learn is slow to import

    bunch = load_digits()
    pixels = bunch.images.astype(np.uint8)  # integers 0..16
    labels = bunch.target.astype(np.int64)
    test = np.zeros(len(labels), dtype=bool)
    test[stratified_subset(labels, DIGITS_TEST_SIZE, DIGITS_SPLIT_SEED)] = True
    keep = test if split == "test" else ~test
    pixels, labels = pixels[keep][:, None, :, :], labels[keep]
    x = pixels.astype(np.float32) / np.float32(16.0)
    identity = _identity("digits", split, _digest(pixels, labels), len(labels))
    return ArraySplit(x=x, y=labels, num_classes=10, identity=identity)


# --------------------------------------------------------------------------------------------
# Synthetic data sets of Appendix A.1 and A.5


def _split_rng(name: str, split: str, seed: int) -> np.random.Generator:
    """Independent streams per data set and split, all derived from one seed."""
    return np.random.default_rng([seed, _STREAM_TAGS[name], SPLITS.index(split)])


def _check_synthetic(options: dict[str, Any], split: str) -> tuple[int, float, int]:
    """Validated (samples per class of this split, radial_df, seed)."""
    train = _check_int("per_class_train", options["per_class_train"], 1)
    test = _check_int("per_class_test", options["per_class_test"], 1)
    radial_df = _check_float("radial_df", options["radial_df"], 0.0, float("inf"))
    seed = _check_int("seed", options["seed"], 0)
    return (train if split == "train" else test), radial_df, seed


def _synthetic_split(
    name: str, split: str, points: NDArray[np.float64], labels: NDArray[np.int64], params: str
) -> ArraySplit:
    x = points.astype(np.float32)
    identity = _identity(name, split, _digest(x, labels), len(labels), params)
    return ArraySplit(x=x, y=labels, num_classes=2, identity=identity)


def _shuffled(
    rng: np.random.Generator, points: NDArray[np.float64], per_class: int
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Rows ``[class 0 ..., class 1 ...]`` with labels, in a seeded random order."""
    labels = np.repeat(np.arange(2, dtype=np.int64), per_class)
    order = rng.permutation(len(labels))
    return points[order], labels[order]


def _generate_disc(split: str, **options: Any) -> ArraySplit:
    """The 2-D toy data set of Appendix A.1 (Figures 1 and 5).

    Polar coordinates: the distance from the origin is ``sqrt(chi2(radial_df))``; with the
    default ``radial_df = 2`` this is the distance of a standard bivariate normal, so each class
    is a standard normal distribution restricted to its sector. The angle is uniform within the
    class's sector: class 1 in the narrow sector ``|angle| <= sector_angle_deg / 2`` around the
    positive first axis, class 0 in the complementary sector. ``per_class_train`` (500) and
    ``per_class_test`` (100) points per class, as in the paper; rows are shuffled.
    """
    per_class, radial_df, seed = _check_synthetic(options, split)
    sector = _check_float("sector_angle_deg", options["sector_angle_deg"], 0.0, 180.0)
    rng = _split_rng("disc", split, seed)
    half = np.deg2rad(sector) / 2
    angle = np.concatenate(
        [rng.uniform(half, 2 * np.pi - half, per_class), rng.uniform(-half, half, per_class)]
    )
    distance = np.sqrt(rng.chisquare(radial_df, 2 * per_class))
    points = distance[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    points, labels = _shuffled(rng, points, per_class)
    params = (
        f"per_class={per_class},radial_df={radial_df!r},sector_angle_deg={sector!r},seed={seed}"
    )
    return _synthetic_split("disc", split, points, labels, params)


def _generate_cone(split: str, **options: Any) -> ArraySplit:
    """The N-dimensional toy data set of Appendix A.5 (Figure 10, Table 5).

    Class 1 lies in the cone of half-angle ``half_angle_deg`` around the first coordinate axis,
    apex at the origin: its direction is uniform over the cone's spherical cap and its distance
    from the apex is ``sqrt(chi2(radial_df))``, so the density peaks at the apex. Class 0 has a
    uniform direction and the same distance law, with points that fall in the cone rejected.
    In ``dim`` dimensions its density is proportional to ``|x|^(radial_df - dim)
    exp(-|x|^2 / 2)``: more peaked at the centre than a Gaussian (the Gaussian is
    ``radial_df = dim``), as the paper asks. For ``dim = 2`` this is the disc data set with
    sector angle ``2 * half_angle_deg``. In high dimension a uniform direction in the cap lies
    close to the cone's boundary, as most of the cap's area does.
    """
    per_class, radial_df, seed = _check_synthetic(options, split)
    low, high = CONE_DIM_RANGE
    dim = _check_int("dim", options["dim"], low, high)
    half_angle = _check_float("half_angle_deg", options["half_angle_deg"], 0.0, 90.0)
    rng = _split_rng("cone", split, seed)
    theta = np.deg2rad(half_angle)
    directions = np.concatenate(
        [
            _directions_outside_cone(rng, per_class, dim, theta),
            _directions_in_cone(rng, per_class, dim, theta),
        ]
    )
    distance = np.sqrt(rng.chisquare(radial_df, 2 * per_class))
    points, labels = _shuffled(rng, distance[:, None] * directions, per_class)
    params = (
        f"dim={dim},half_angle_deg={half_angle!r},per_class={per_class},"
        f"radial_df={radial_df!r},seed={seed}"
    )
    return _synthetic_split("cone", split, points, labels, params)


def _uniform_directions(rng: np.random.Generator, n: int, dim: int) -> NDArray[np.float64]:
    gaussian = rng.standard_normal((n, dim))
    return gaussian / np.linalg.norm(gaussian, axis=1, keepdims=True)


def _directions_outside_cone(
    rng: np.random.Generator, n: int, dim: int, theta: float
) -> NDArray[np.float64]:
    """Uniform unit vectors at an angle of at least ``theta`` from the first axis (rejection)."""
    kept: list[NDArray[np.float64]] = []
    count = 0
    while count < n:
        batch = _uniform_directions(rng, 2 * (n - count) + 16, dim)
        batch = batch[batch[:, 0] < np.cos(theta)]
        kept.append(batch[: n - count])
        count += len(kept[-1])
    return np.concatenate(kept)


def _directions_in_cone(
    rng: np.random.Generator, n: int, dim: int, theta: float
) -> NDArray[np.float64]:
    """Unit vectors uniform over the cap of half-angle ``theta < pi/2`` around the first axis.

    For a uniform direction, ``s = sin^2(angle to the axis)`` has the Beta((dim-1)/2, 1/2)
    density ``s^(a-1) (1-s)^(-1/2)``, ``a = (dim-1)/2``. On the cap, ``s <= S = sin^2(theta)``:
    propose ``s = S U^(1/a)`` (density ``s^(a-1)``) and accept with probability
    ``sqrt((1-S) / (1-s))``, at least ``cos(theta)``. The component orthogonal to the axis has a
    uniform direction in the remaining ``dim - 1`` coordinates.
    """
    a = (dim - 1) / 2
    cap = np.sin(theta) ** 2
    accepted: list[NDArray[np.float64]] = []
    count = 0
    while count < n:
        proposal = cap * rng.uniform(size=2 * (n - count) + 16) ** (1 / a)
        keep = rng.uniform(size=proposal.size) < np.sqrt((1 - cap) / (1 - proposal))
        accepted.append(proposal[keep][: n - count])
        count += len(accepted[-1])
    s = np.concatenate(accepted)
    across = _uniform_directions(rng, n, dim - 1)
    return np.concatenate([np.sqrt(1 - s)[:, None], np.sqrt(s)[:, None] * across], axis=1)
