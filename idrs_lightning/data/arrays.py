"""The array form every data source returns: :class:`ArraySplit` and its identity string."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

SPLITS: tuple[str, ...] = ("train", "test")


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

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return len(self.y)

    def rows(self, indices: Sequence[int] | NDArray[np.int64]) -> NDArray[np.float32]:
        """The samples ``indices`` (a copy; a memory-mapped ``x`` reads only those rows)."""
        return np.asarray(self.x[np.asarray(indices, dtype=np.int64)], dtype=np.float32)

    def subset(self, indices: NDArray[np.int64]) -> ArraySplit:
        """The split restricted to ``indices`` (same identity: rows of the same data)."""
        rows = np.asarray(indices, dtype=np.int64)
        return ArraySplit(self.x[rows], self.y[rows], self.num_classes, self.identity)


def split_identity(
    name: str, split: str, data: np.ndarray, labels: np.ndarray, params: str = ""
) -> str:
    """:attr:`ArraySplit.identity` of the stored ``data`` (pixels or points) and ``labels``."""
    middle = f":{params}" if params else ""
    return f"{name}:{split}:n={len(labels)}{middle}:blake2b={_digest(data, labels)}"


def _digest(*arrays: np.ndarray) -> str:
    """blake2b (128 bit) of the shapes, dtypes and bytes of the arrays."""
    hasher = hashlib.blake2b(digest_size=16)
    for array in arrays:
        contiguous = np.ascontiguousarray(array)
        hasher.update(f"{contiguous.dtype.str}{contiguous.shape};".encode())
        hasher.update(memoryview(contiguous).cast("B"))
    return hasher.hexdigest()
