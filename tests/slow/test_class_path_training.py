"""A network a user brings by class_path (torchvision's ResNet-18 on an image folder), trained
one step by train.py and certified by certify.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.image_tree import CLASSES, make_image_tree

pytestmark = pytest.mark.slow  # a train.py and a certify.py process

ROOT = Path(__file__).resolve().parents[2]


def test_train_a_class_path_model_one_step_and_certify_it(tmp_path, offline_env, commands) -> None:
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
    done = commands.run(train, ROOT, env)
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
    done = commands.run(certify, ROOT, env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "(n = 6)" in done.stdout
    rows = (tmp_path / "out" / "results.tsv").read_text().splitlines()
    assert len(rows) == 7
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["settings"]["class_names"] == list(CLASSES)
    hparams = yaml.safe_load((tmp_path / "runs" / "r18" / "csv" / "hparams.yaml").read_text())
    assert hparams["class_names"] == list(CLASSES)
