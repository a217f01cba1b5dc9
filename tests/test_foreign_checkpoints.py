"""Checkpoints not written by train.py: Cohen et al.'s format, plain state_dicts, TorchScript.

The checkpoints are built here in the exact layout of Cohen et al.'s code
(:mod:`tests.foreign_layouts`, an independent re-typing of ``locuslab/smoothing``), with every
weight and BatchNorm statistic randomised so that a wrong key mapping changes the logits.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from idrs_lightning.certify_job.checkpoints import (
    CohenCheckpoint,
    TargetData,
    TorchScriptCheckpoint,
    open_checkpoint,
)
from idrs_lightning.certify_job.config import CertifyConfig
from idrs_lightning.certify_job.results import read_rows
from idrs_lightning.certify_job.run import run_certification
from idrs_lightning.normalization import COHEN_CIFAR10_MEAN, COHEN_CIFAR10_STD
from idrs_lightning.settings import CertificationSettings
from idrs_lightning.training.module import BaseClassifierModule
from tests.commands import Commands
from tests.foreign_layouts import (
    cohen_model,
    save_cohen_checkpoint,
    save_plain_state_dict,
    save_torchscript,
)
from tests.image_tree import make_image_tree

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = {"resize": 32, "crop": 32}
DATA = {"dataset": "imagefolder", "dataset_options": OPTIONS, "eval_subset_size": 6}


def _randomised(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter and BatchNorm buffer random (variances positive), in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                values = torch.randn(tensor.shape, generator=generator) * 0.2
                tensor.copy_(values.abs() + 0.5 if name.endswith("running_var") else values)
    return model.eval()


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return make_image_tree(tmp_path_factory.mktemp("tree"))


@pytest.fixture(scope="module")
def cohen20(tmp_path_factory) -> tuple[torch.nn.Module, Path]:
    model = _randomised(cohen_model("cifar_resnet20", num_classes=3))
    path = tmp_path_factory.mktemp("cohen") / "checkpoint.pth.tar"
    save_cohen_checkpoint(path, model, "cifar_resnet20", with_momentum=True)
    return model, path


def _load(path: Path, arch: str | None = None, classes: int = 3, shape=(3, 32, 32), stats=None):
    checkpoint = open_checkpoint(str(path))
    data = TargetData(classes, shape, stats or ((0.5,) * 3, (0.25,) * 3))
    return checkpoint.network(arch, data).eval()


def test_cohen_cifar_checkpoint_gives_the_source_logits(cohen20) -> None:
    model, path = cohen20
    assert isinstance(open_checkpoint(str(path)), CohenCheckpoint)
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(_load(path)(x), model(x), rtol=1e-5, atol=1e-5)


def test_cohen_resnet50_through_data_parallel_gives_the_source_logits(tmp_path) -> None:
    model = _randomised(cohen_model("resnet50", num_classes=5))
    assert next(iter(model.state_dict())).startswith("1.module.")
    save_cohen_checkpoint(tmp_path / "r50.pth.tar", model, "resnet50")
    x = torch.rand(2, 3, 64, 64)
    loaded = _load(tmp_path / "r50.pth.tar", classes=5, shape=(3, 64, 64))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=1e-5, atol=1e-5)


def test_plain_state_dict_and_torchscript_give_the_source_logits(cohen20, tmp_path) -> None:
    model, _ = cohen20
    save_plain_state_dict(tmp_path / "plain.pt", model[1])
    save_torchscript(tmp_path / "model.ts", model)
    assert isinstance(open_checkpoint(str(tmp_path / "model.ts")), TorchScriptCheckpoint)
    x = torch.rand(3, 3, 32, 32)
    cohen_stats = (COHEN_CIFAR10_MEAN, COHEN_CIFAR10_STD)
    with torch.no_grad():
        expected = model(x)
        for loaded in (
            _load(tmp_path / "plain.pt", "cifar_resnet20"),  # their statistics, by arch
            _load(tmp_path / "plain.pt", "resnet20", stats=cohen_stats),  # the data's
            _load(tmp_path / "model.ts"),
        ):
            torch.testing.assert_close(loaded(x), expected, rtol=1e-5, atol=1e-5)


def test_class_path_state_dict(tmp_path) -> None:
    import torchvision

    network = _randomised(torchvision.models.resnet18(num_classes=3))
    torch.save({f"module.{k}": v for k, v in network.state_dict().items()}, tmp_path / "r18.pt")
    arch = "{class_path: torchvision.models.resnet18, init_args: {num_classes: 3}}"
    stats = ((0.4, 0.4, 0.4), (0.2, 0.3, 0.4))
    loaded = _load(tmp_path / "r18.pt", arch, stats=stats)
    x = torch.rand(2, 3, 32, 32)
    mean, std = (torch.tensor(s).view(1, 3, 1, 1) for s in stats)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), network((x - mean) / std), rtol=1e-5, atol=1e-5)


def _native_checkpoint(model: torch.nn.Module, path: Path, root: Path) -> Path:
    """The same weights as a train.py checkpoint of the built-in resnet20."""
    module = BaseClassifierModule("resnet20", num_classes=3, sample_shape=(3, 32, 32))
    module.classifier[0].mean.copy_(torch.tensor(COHEN_CIFAR10_MEAN))
    module.classifier[0].std.copy_(torch.tensor(COHEN_CIFAR10_STD))
    module.classifier[1].load_state_dict(model[1].state_dict())
    torch.save(
        {
            "hyper_parameters": dict(module.hparams),
            "state_dict": module.state_dict(),
            "datamodule_hyper_parameters": {**DATA, "root": str(root)},
        },
        path,
    )
    return path


def _rows(out: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "time"} for row in read_rows(out / "results.tsv")]


def test_certify_gives_the_rows_of_the_native_model(cohen20, tree, tmp_path, offline_wandb) -> None:
    model, cohen = cohen20
    native = _native_checkpoint(model, tmp_path / "native.ckpt", tree)
    settings = CertificationSettings(n0=16, n=200, batch_size=200)
    data = {**DATA, "root": str(tree), "r": 0.01, "k": 5, "m": 2.0}
    for name, checkpoint in (("native", native), ("cohen", cohen)):
        config = CertifyConfig(str(checkpoint), str(tmp_path / name), settings, data=data)
        run_certification(config)
    rows = _rows(tmp_path / "cohen")
    assert len(rows) == 6 and rows == _rows(tmp_path / "native")
    assert len({row["predict"] for row in rows}) > 1 or len({row["radius"] for row in rows}) > 1


@pytest.mark.parametrize(
    ("make", "arguments", "message"),
    [
        ("plain", [], r"--arch is needed: .* is a plain state_dict"),
        ("cohen", ["--arch", "cifar_resnet110"], r"--arch 'cifar_resnet110' contradicts"),
        ("cohen", ["--arch", "vgg16"], r"--arch must be one of cifar_resnet20"),
        ("plain", ["--arch", "resnet110"], r"its weights do not fit the network of resnet110"),
        ("cohen10", [], r"gives outputs of shape \(2, 10\) .* the data has 3 classes"),
        ("other", [], r"is of no known format"),
    ],
)
def test_bad_foreign_checkpoints_are_one_line(
    make, arguments, message, cohen20, tree, tmp_path, commands: Commands
) -> None:
    path = tmp_path / "file.pt"
    if make == "plain":
        save_plain_state_dict(path, cohen20[0][1])
    elif make == "cohen":
        path = cohen20[1]
    elif make == "cohen10":
        save_cohen_checkpoint(path, cohen_model("cifar_resnet20"), "cifar_resnet20")
    else:
        torch.save({"weights": [1, 2, 3]}, path)
    command = [sys.executable, str(ROOT / "certify.py"), str(path), str(tmp_path / "out")]
    data = ["--dataset", "imagefolder", "--root", str(tree), "--dataset-options", "{crop: 32}"]
    done = commands.run([*command, *data, *arguments, "--N", "100"], tmp_path, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert __import__("re").search(message, lines[0]), lines[0]
    assert not (tmp_path / "out" / "results.tsv").exists()


def test_a_foreign_checkpoint_needs_its_data_named(tmp_path, cohen20, commands: Commands) -> None:
    torch.save(cohen20[0][1].state_dict(), tmp_path / "plain.pt")
    command = [sys.executable, str(ROOT / "certify.py"), str(tmp_path / "plain.pt")]
    done = commands.run([*command, str(tmp_path / "o")], tmp_path, timeout=120)
    assert done.returncode == 2
    assert "--dataset is needed: " in done.stderr and "holds no data settings" in done.stderr
