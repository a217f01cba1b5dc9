"""A tiny image folder in ImageNet's layout, generated: ``root/{train,val}/<class>/<n>.png``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("circle", "square", "stripes")


def _image(label: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """An RGB uint8 image whose colour and pattern depend on the class, plus noise."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    pattern = [
        ((xx - 0.5) ** 2 + (yy - 0.5) ** 2 < 0.1).astype(float),
        ((abs(xx - 0.5) < 0.3) & (abs(yy - 0.5) < 0.3)).astype(float),
        (np.sin(12 * xx) > 0).astype(float),
    ][label]
    colour = np.eye(3)[label]
    pixels = 0.2 + 0.6 * pattern[..., None] * colour + 0.15 * rng.random((size, size, 3))
    return (np.clip(pixels, 0, 1) * 255).astype(np.uint8)


def make_image_tree(
    root: Path, train_per_class: int = 20, val_per_class: int = 6, seed: int = 0
) -> Path:
    """Write the tree (sizes alternate 32 x 32 and 64 x 64) and return ``root``."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for label, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                size = 32 if index % 2 == 0 else 64
                Image.fromarray(_image(label, size, rng)).save(folder / f"{index:03d}.png")
    return root
