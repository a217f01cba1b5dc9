"""Image folders read from disk per batch: ``root/{train,val}/<class>/<image>`` (ImageNet's layout).

A :class:`FolderSplit` holds file names and labels, never the pixels: :meth:`FolderSplit.rows`
decodes the requested images with the evaluation transform (resize the shorter side to
``resize``, center crop ``crop``, pixels in ``[0, 1]``, RGB), which is also the space of the kNN
distances behind sigma(x) (Eq. 1). :meth:`FolderSplit.dataset` serves training batches with the
usual augmentation ("random_resized": ``RandomResizedCrop(crop)`` + horizontal flip, ImageNet;
"padded": 4-pixel padded random crop + flip, CIFAR; "center": the evaluation transform).
Each sample keeps the sigma of its evaluation view. Class names are the sorted folder names of
the training split (torchvision's ``ImageFolder`` convention); "test" reads ``val/``.

The split's ``identity`` covers each file's relative path, byte size, modification time and
label, and the transform: an edited, added or removed image changes it (so cached kNN distances
are recomputed), a copy that keeps modification times does not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from torch.utils.data import Dataset

#: File endings read as images (as torchvision's ``IMG_EXTENSIONS``, lower case).
IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".jpg",
    ".jpeg",
    ".png",
    ".ppm",
    ".bmp",
    ".pgm",
    ".tif",
    ".tiff",
    ".webp",
)
#: Training augmentations of :meth:`FolderSplit.dataset`.
TRAIN_CROPS: tuple[str, ...] = ("random_resized", "padded", "center")
#: The folder each split reads.
SPLIT_FOLDERS: dict[str, str] = {"train": "train", "test": "val"}


def _images(folder: Path) -> list[Path]:
    return sorted(
        path
        for path in folder.rglob("*")
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()
    )


def class_names(root: Path) -> tuple[str, ...]:
    """The sorted class folders of ``root/train``.

    Raises:
        FileNotFoundError: when ``root/train`` is absent or holds no class folder.
    """
    train = root / SPLIT_FOLDERS["train"]
    if not train.is_dir():
        raise FileNotFoundError(
            f"{train} does not exist: an image folder needs root/train/<class>/<image> and "
            "root/val/<class>/<image>"
        )
    names = tuple(sorted(entry.name for entry in train.iterdir() if entry.is_dir()))
    if len(names) < 2:
        raise FileNotFoundError(f"{train} needs at least two class folders, found {len(names)}")
    return names


@dataclass(frozen=True, eq=False)
class FolderSplit:
    """One split of an image folder: files, labels and the evaluation transform.

    Attributes:
        root: the split's folder (``root/train`` or ``root/val``).
        files: image paths relative to ``root``, sorted by class then name.
        y: int64 labels, indices into ``classes``.
        classes: class names (folder names).
        resize: the shorter side after resizing; crop: the side of the square center crop.
        identity: see the module docstring.
    """

    root: Path
    files: tuple[str, ...] = field(repr=False)
    y: NDArray[np.int64] = field(repr=False)
    classes: tuple[str, ...]
    resize: int
    crop: int
    identity: str

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (3, self.crop, self.crop)

    def __len__(self) -> int:
        return len(self.files)

    def image(self, row: int) -> torch.Tensor:
        """Image ``row`` under the evaluation transform, float32 ``(3, crop, crop)``."""
        return evaluation_view(self._decode(row), self.resize, self.crop)

    def rows(self, indices: Sequence[int] | NDArray[np.int64]) -> NDArray[np.float32]:
        """Images ``indices`` under the evaluation transform, ``(len, 3, crop, crop)``."""
        shape = (len(indices), *self.sample_shape)
        out = np.empty(shape, dtype=np.float32)
        for position, row in enumerate(indices):
            out[position] = self.image(int(row)).numpy()
        return out

    def subset(self, indices: NDArray[np.int64]) -> FolderSplit:
        """The split restricted to ``indices`` (same identity: rows of the same data)."""
        chosen = [int(i) for i in indices]
        return FolderSplit(
            self.root,
            tuple(self.files[i] for i in chosen),
            self.y[chosen],
            self.classes,
            self.resize,
            self.crop,
            self.identity,
        )

    def dataset(self, sigma: torch.Tensor, train_crop: str | None) -> FolderDataset:
        """Items ``(x, y, sigma)`` decoded per item: with ``train_crop`` one of
        :data:`TRAIN_CROPS` (training) or ``None`` (the evaluation transform)."""
        return FolderDataset(self, sigma, train_crop)

    def _decode(self, row: int) -> torch.Tensor:
        from PIL import Image
        from torchvision.transforms.v2 import functional as F

        path = self.root / self.files[row]
        try:
            with Image.open(path) as image:
                pixels = F.pil_to_tensor(image.convert("RGB"))
        except (OSError, SyntaxError, ValueError) as error:  # PIL's errors for bad files
            raise OSError(f"cannot read the image {path}: {error}") from None
        return F.to_dtype(pixels, torch.float32, scale=True)


def evaluation_view(image: torch.Tensor, resize: int, crop: int) -> torch.Tensor:
    """Shorter side to ``resize`` (bilinear, antialiased), then the center ``crop``."""
    from torchvision.transforms.v2 import functional as F

    if min(image.shape[-2:]) != resize:
        image = F.resize(image, [resize], antialias=True)
    return F.center_crop(image, [crop, crop]).clamp_(0.0, 1.0).contiguous()


def _training_view(image: torch.Tensor, split: FolderSplit, train_crop: str) -> torch.Tensor:
    from torchvision.transforms import v2

    if train_crop == "center":
        return evaluation_view(image, split.resize, split.crop)
    if train_crop == "random_resized":
        image = v2.RandomResizedCrop(split.crop, antialias=True)(image)
    else:
        padded = v2.RandomCrop(split.crop, padding=4)
        image = padded(evaluation_view(image, split.resize, split.crop))
    return v2.RandomHorizontalFlip()(image).clamp_(0.0, 1.0).contiguous()


class FolderDataset(Dataset):
    """``(x, y, sigma)`` items of a :class:`FolderSplit`, each image read when asked for."""

    def __init__(self, split: FolderSplit, sigma: torch.Tensor, train_crop: str | None) -> None:
        if len(sigma) != len(split):
            raise ValueError(f"lengths differ: {len(split)} images, {len(sigma)} sigmas")
        self.split, self.sigma, self.train_crop = split, sigma, train_crop

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.train_crop is None:
            x = self.split.image(index)
        else:
            x = _training_view(self.split._decode(index), self.split, self.train_crop)
        return x, torch.tensor(self.split.y[index]), self.sigma[index]


def load_folder_split(
    root: str | Path, split: str, resize: int = 256, crop: int = 224
) -> FolderSplit:
    """The file list of ``root/train`` or (for "test") ``root/val``.

    Raises:
        FileNotFoundError: for a missing folder, fewer than two classes, a class of the
            validation split unknown to the training split, or a split without images.
        ValueError: for ``crop > resize`` or sizes below 1.
    """
    if not (1 <= crop <= resize):
        raise ValueError(f"image sizes need 1 <= crop <= resize, got crop={crop}, resize={resize}")
    base = Path(root)
    classes = class_names(base)
    folder = base / SPLIT_FOLDERS[split]
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist (the {split} split of {base})")
    unknown = sorted({e.name for e in folder.iterdir() if e.is_dir()} - set(classes))
    if unknown:
        raise FileNotFoundError(
            f"{folder} has class folder {unknown[0]!r}, which {base / 'train'} lacks"
        )
    files: list[str] = []
    labels: list[int] = []
    hasher = hashlib.blake2b(digest_size=16)
    for label, name in enumerate(classes):
        for path in _images(folder / name):
            relative = path.relative_to(folder).as_posix()
            stat = path.stat()
            hasher.update(f"{relative}\0{stat.st_size}\0{stat.st_mtime_ns}\0{label}\n".encode())
            files.append(relative)
            labels.append(label)
    if not files:
        raise FileNotFoundError(f"{folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    identity = (
        f"imagefolder:{split}:n={len(files)}:classes={len(classes)}:resize={resize}:crop={crop}"
        f":blake2b={hasher.hexdigest()}"
    )
    return FolderSplit(
        folder, tuple(files), np.asarray(labels, dtype=np.int64), classes, resize, crop, identity
    )
