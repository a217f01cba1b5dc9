"""Networks a user brings by class_path: built behind the data's normalisation, checked against
the data, stored in checkpoints as plain data (weights_only), trained and certified end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from idrs_lightning.certify_job.checkpoints import TrainedCheckpoint
from idrs_lightning.models import Normalize, build_classifier, instantiate_network
from idrs_lightning.training.checkpoint_file import read_checkpoint
from idrs_lightning.training.module import BaseClassifierModule
from idrs_lightning.validation import InvalidSetting
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
