"""MNIST, Fashion-MNIST and CIFAR-10 through torchvision, as pixels in ``[0, 1]``.

Fashion-MNIST is first staged from the Debian package ``dataset-fashion-mnist`` when installed.
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from idrs_lightning.data.arrays import ArraySplit, split_identity

logger = logging.getLogger(__name__)

#: Where the Debian package ``dataset-fashion-mnist`` installs the original gzipped IDX files.
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")

_TORCHVISION_NAMES = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10"}


def load_vision(
    name: str,
    split: str,
    root: Path,
    download: bool,
    system_dir: str | os.PathLike[str] | None = None,
) -> ArraySplit:
    """One split of ``"mnist"``, ``"fashion_mnist"`` or ``"cifar10"`` from ``root``.

    For Fashion-MNIST, the gzipped files in ``system_dir`` (if all present) are first
    decompressed into ``root``; ``None`` uses only ``root``.
    """
    if name == "fashion_mnist":
        _stage_fashion_mnist(root, system_dir)
    return _load_torchvision(name, _torchvision_class(name), split, root, download)


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
    identity = split_identity(name, split, pixels, labels)
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
