"""Networks a user brings by class_path: built behind the data's normalisation, checked against
the data, stored in checkpoints as plain data (weights_only), trained and certified end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from idrs_lightning.certify_job.checkpoints import TrainedCheckpoint
from idrs_lightning.models import Normalize, build_classifier, instantiate_network
from idrs_lightning.training.checkpoint_file import read_checkpoint
from idrs_lightning.training.module import BaseClassifierModule
from idrs_lightning.validation import InvalidSetting
from tests.image_tree import CLASSES, make_image_tree
from tests.user_models import TinyConvNet

ROOT = Path(__file__).resolve().parents[1]
SPEC = {"class_path": "tests.user_models.TinyConvNet", "init_args": {"num_classes": 3}}


def test_class_path_networks_get_the_normalisation_in_front() -> None:
    classifier = build_classifier(SPEC, 3, (3, 16, 16), mean=(0.5,) * 3, std=(0.2,) * 3)
    assert isinstance(classifier[0], Normalize) and isinstance(classifier[1], TinyConvNet)
    x = torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(classifier(x), classifier[1]((x - 0.5) / 0.2))
    resnet = build_classifier(
        {"class_path": "torchvision.models.resnet18", "init_args": {"num_classes": 4}},
        4,
        (3, 32, 32),
    )
    assert resnet.eval()(torch.rand(1, 3, 32, 32)).shape == (1, 4)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"class_path": "tests.user_models.not_a_network"}, "neither a torch.nn.Module class"),
        ({"class_path": "os.system"}, "neither a torch.nn.Module class"),
        ({"class_path": "no_such_package.Net"}, "cannot be imported"),
        ({"class_path": "tests.user_models.Missing"}, "names nothing importable"),
        ({**SPEC, "init_args": {"depth": 3}}, "does not take init_args"),
        ({"init_args": {}}, "must hold 'class_path'"),
    ],
)
def test_bad_class_paths_are_named(spec, message) -> None:
    with pytest.raises(InvalidSetting, match=message):
        instantiate_network(spec)


def test_wrong_outputs_or_inputs_fail_before_training() -> None:
    with pytest.raises(InvalidSetting, match=r"outputs of shape \(2, 10\) .* the data has 3"):
        build_classifier({"class_path": "tests.user_models.TinyConvNet"}, 3, (3, 8, 8))
    with pytest.raises(InvalidSetting, match=r"cannot take samples of shape \(1, 8, 8\)"):
        build_classifier(SPEC, 3, (1, 8, 8))
    with pytest.raises(InvalidSetting, match=r"or a class_path with init_args; got 'torchvision"):
        build_classifier("torchvision.models.ResNet", 3, (3, 8, 8))


def test_a_network_object_is_stored_by_its_class(tmp_path) -> None:
    module = BaseClassifierModule(TinyConvNet(num_classes=3), num_classes=3, sample_shape=(3, 8, 8))
    assert module.hparams.network == {"class_path": "tests.user_models.TinyConvNet"}
    torch.save(
        {"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()},
        tmp_path / "object.ckpt",
    )  # TinyConvNet() builds with its defaults (10 classes), which the data refuses
    with pytest.raises(InvalidSetting, match=r"TinyConvNet gives outputs of shape \(2, 10\)"):
        TrainedCheckpoint(read_checkpoint(str(tmp_path / "object.ckpt"))).module()


@pytest.mark.slow
def test_train_a_class_path_model_one_step_and_certify_it(tmp_path, offline_env) -> None:
    tree = make_image_tree(tmp_path / "tree")
    env = {**offline_env, "PYTHONPATH": str(ROOT)}
    train = [
        sys.executable,
        str(ROOT / "train.py"),
        "fit",
        "--config=configs/imagefolder.yaml",
        f"--runs_dir={tmp_path / 'runs'}",
        "--run_name=r18",
        f"--data.root={tree}",
        "--data.dataset_options={resize: 32, crop: 32, train_crop: padded}",
        "--data.k=5",
        "--data.batch_size=16",
        "--data.num_workers=0",
        "--data.eval_subset_size=6",
        "--model.network=torchvision.models.resnet18",
        "--model.network.init_args.num_classes=3",
        "--trainer.max_steps=1",
        "--trainer.limit_val_batches=1",
        "--trainer.accelerator=cpu",
        "--trainer.devices=1",
        "--trainer.precision=32",
        "--trainer.enable_progress_bar=false",
    ]
    done = subprocess.run(train, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    checkpoint = tmp_path / "runs" / "r18" / "checkpoints" / "last.ckpt"
    state = torch.load(checkpoint, weights_only=True)
    assert state["hyper_parameters"]["network"] == {
        "class_path": "torchvision.models.resnet18",
        "init_args": state["hyper_parameters"]["network"]["init_args"],
    }
    assert state["hyper_parameters"]["network"]["init_args"]["num_classes"] == 3
    certify = [
        sys.executable,
        str(ROOT / "certify.py"),
        str(checkpoint),
        str(tmp_path / "out"),
        "--N0",
        "8",
        "--N",
        "100",
        "--batch-size",
        "100",
    ]
    done = subprocess.run(certify, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "(n = 6)" in done.stdout
    rows = (tmp_path / "out" / "results.tsv").read_text().splitlines()
    assert len(rows) == 7
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["settings"]["class_names"] == list(CLASSES)
    hparams = yaml.safe_load((tmp_path / "runs" / "r18" / "csv" / "hparams.yaml").read_text())
    assert hparams["class_names"] == list(CLASSES)
