"""scikit-learn's 8x8 digits, split into a fixed class-stratified test set and the rest."""

from __future__ import annotations

import numpy as np

from idrs_lightning.data.arrays import ArraySplit, split_identity
from idrs_lightning.data.subsets import stratified_subset

#: The digits split: a class-stratified test set of this size, drawn with this seed.
DIGITS_TEST_SIZE = 500
DIGITS_SPLIT_SEED = 0


def load_digits(split: str) -> ArraySplit:
    """``load_digits()`` (values 0..16 divided by 16) as ``(n, 1, 8, 8)``, in the original order.

    The test split is ``stratified_subset(labels, 500, seed=0)``, the train split the other
    1,297 images.
    """
    import sklearn.datasets  # deferred: scikit-learn is slow to import

    bunch = sklearn.datasets.load_digits()
    pixels = bunch.images.astype(np.uint8)  # integers 0..16
    labels = bunch.target.astype(np.int64)
    test = np.zeros(len(labels), dtype=bool)
    test[stratified_subset(labels, DIGITS_TEST_SIZE, DIGITS_SPLIT_SEED)] = True
    keep = test if split == "test" else ~test
    pixels, labels = pixels[keep][:, None, :, :], labels[keep]
    x = pixels.astype(np.float32) / np.float32(16.0)
    identity = split_identity("digits", split, pixels, labels)
    return ArraySplit(x=x, y=labels, num_classes=10, identity=identity)
