"""Image folders read per batch: layout, evaluation view, identity, batches and the DataModule."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from idrs_lightning.data.datamodule import SmoothingDataModule
from idrs_lightning.data.folders import load_folder_split
from idrs_lightning.validation import InvalidSetting
from tests.image_tree import CLASSES, make_image_tree

SMALL = {"resize": 32, "crop": 32}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return make_image_tree(tmp_path_factory.mktemp("tree"))


def _copy(tree: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(tree, copy)  # copy2: sizes and modification times kept
    return copy


def test_layout_classes_labels_and_sizes(tree) -> None:
    train = load_folder_split(tree, "train", **SMALL)
    test = load_folder_split(tree, "test", **SMALL)
    assert train.classes == test.classes == CLASSES
    assert (len(train), len(test)) == (60, 18)
    assert np.bincount(train.y).tolist() == [20, 20, 20]
    assert train.files[0] == "circle/000.png" and train.files[-1] == "stripes/019.png"
    images = train.rows(np.arange(len(train)))  # 32 x 32 and 64 x 64 files alike
    assert images.shape == (60, 3, 32, 32) and images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert not hasattr(train, "x")  # file names and labels only: no pixels held


def test_evaluation_view_is_resize_then_center_crop(tree) -> None:
    split = load_folder_split(tree, "train", resize=40, crop=24)
    file = tree / "train" / split.files[1]  # a 64 x 64 image
    pixels = np.asarray(Image.open(file).convert("RGB"), dtype=np.float64) / 255
    expected = torch.nn.functional.interpolate(
        torch.from_numpy(pixels).permute(2, 0, 1)[None],
        size=(40, 40),
        mode="bilinear",
        antialias=True,
        align_corners=False,
    )[0, :, 8:32, 8:32]
    np.testing.assert_allclose(split.rows([1])[0], expected.numpy(), atol=2e-6)
    same_size = load_folder_split(tree, "train", **SMALL)  # 32 x 32 files: untouched
    original = np.asarray(Image.open(tree / "train" / same_size.files[0]).convert("RGB"))
    np.testing.assert_allclose(same_size.rows([0])[0], original.transpose(2, 0, 1) / 255, atol=1e-7)


def test_identity_follows_files_not_location(tree, tmp_path) -> None:
    base = load_folder_split(tree, "train", **SMALL).identity
    copy = _copy(tree, tmp_path)
    assert load_folder_split(copy, "train", **SMALL).identity == base
    assert load_folder_split(copy, "train", resize=40, crop=32).identity != base
    image = copy / "train" / "square" / "003.png"
    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8)).save(image)
    edited = load_folder_split(copy, "train", **SMALL).identity
    assert edited != base
    os.remove(image)
    assert load_folder_split(copy, "train", **SMALL).identity not in (base, edited)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda root: shutil.rmtree(root / "val"), r"val does not exist"),
        (lambda root: (root / "val" / "triangle").mkdir(), r"class folder 'triangle'"),
        (lambda root: shutil.rmtree(root / "train"), r"train does not exist: an image folder"),
    ],
)
def test_bad_layouts_are_named(tree, tmp_path, change, message) -> None:
    copy = _copy(tree, tmp_path)
    change(copy)
    with pytest.raises(FileNotFoundError, match=message):
        load_folder_split(copy, "test", **SMALL)


def _source_rows(found: np.ndarray, source: np.ndarray, mirrored: bool = False) -> list[int]:
    """For each row of ``found``, the one row of ``source`` it is (or, ``mirrored``, the one
    it is or mirrors left to right)."""
    rows = []
    for row in found:
        same = np.all(source == row, axis=(1, 2, 3))
        if mirrored:
            same |= np.all(source == row[..., ::-1], axis=(1, 2, 3))
        (index,) = np.flatnonzero(same)
        rows.append(int(index))
    return rows


def test_datamodule_batches_and_certification_inputs(tree, tmp_path) -> None:
    datamodule = SmoothingDataModule(
        "imagefolder",
        root=str(tree),
        cache_dir=str(tmp_path / "cache"),
        dataset_options={**SMALL, "train_crop": "padded"},
        r=0.01,
        trr=0.01,
        k=5,
        batch_size=8,
        eval_subset_size=9,
    )
    datamodule.setup("fit")
    with pytest.raises(InvalidSetting, match="read per batch, not held"):
        datamodule.split_arrays("train")
    assert datamodule.sample_shape == (3, 32, 32) and datamodule.num_classes == 3
    assert datamodule.class_names == CLASSES
    x, y, sigma = next(iter(datamodule.train_dataloader()))
    assert x.shape == (8, 3, 32, 32) and y.shape == (8,) and sigma.shape == (8,)
    assert float(sigma.min()) > 0
    subset = datamodule.evaluation_subset()
    assert np.bincount(datamodule.labels("test")[subset]).tolist() == [3, 3, 3]
    inputs = datamodule.certification_inputs(subset.tolist())
    test = load_folder_split(tree, "test", **SMALL)  # val/ in the evaluation view
    np.testing.assert_array_equal(inputs.x.numpy(), test.rows(subset))
    batches = list(datamodule.test_dataloader())
    np.testing.assert_array_equal(
        torch.cat([b[0] for b in batches]).numpy(), test.rows(np.arange(18))
    )
    assert inputs.sigma.dtype == np.float64 and inputs.r == 0.01
    # validation is carved from train/ and served in the evaluation view
    source = load_folder_split(tree, "train", **SMALL)
    everything = source.rows(np.arange(len(source)))
    validation = torch.cat([b[0] for b in datamodule.val_dataloader()]).numpy()
    assert len(validation) == datamodule.split_size("val") > 0
    carved = _source_rows(validation, everything)
    np.testing.assert_array_equal(validation, everything[carved])
    served = datamodule.certification_inputs(range(len(validation)), split="val").x.numpy()
    np.testing.assert_array_equal(served, validation)
    # ... and the training split is the rest of train/ (centre crops, possibly mirrored)
    centred = SmoothingDataModule(
        "imagefolder", root=str(tree), dataset_options={**SMALL, "train_crop": "center"}
    )
    centred.setup("fit")
    again = torch.cat([b[0] for b in centred.val_dataloader()]).numpy()
    np.testing.assert_array_equal(again, validation)  # the same carve
    training = torch.cat([b[0] for b in centred.train_dataloader()]).numpy()
    assert len(training) == centred.split_size("train") == len(source) - len(validation)
    rest = _source_rows(training, everything, mirrored=True)
    assert sorted(carved + rest) == list(range(len(source))), "each file of train/ once"


def test_normalization_options(tree) -> None:
    options = {**SMALL, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
    datamodule = SmoothingDataModule("imagefolder", root=str(tree), dataset_options=options)
    assert datamodule.normalization == ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    with pytest.raises(ValueError, match="train_crop must be one of random_resized"):
        datamodule = SmoothingDataModule(
            "imagefolder", root=str(tree), dataset_options={"train_crop": "zoom"}
        )
        datamodule.setup("fit")


@pytest.mark.parametrize("damage", ["truncated", "not an image", "empty"])
def test_an_unreadable_image_is_named(tree, tmp_path, damage: str) -> None:
    copy = _copy(tree, tmp_path)
    file = copy / "train" / "circle" / "001.png"
    content = {"truncated": file.read_bytes()[:200], "not an image": b"<html>", "empty": b""}
    file.write_bytes(content[damage])
    split = load_folder_split(copy, "train", **SMALL)
    with pytest.raises(OSError, match=rf"cannot read the image {file}"):
        split.rows(np.arange(4))
