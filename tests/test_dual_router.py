"""The router of dual randomized smoothing: its soft targets against radii computed by hand
(scipy's beta and normal quantiles) for experts whose votes are known, and its training command
end to end on digits: a router checkpoint that opens as a train.py checkpoint over the levels,
records its experts, and was taught on training inputs only."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from scipy import stats
from torch import nn

from idrs_lightning.certify_job.checkpoints import TrainedCheckpoint, file_digest, open_checkpoint
from idrs_lightning.certify_job.dual_model import DualRecord
from idrs_lightning.certify_job.results import DUAL_COLUMNS, read_rows
from idrs_lightning.data.datamodule import SmoothingDataModule
from idrs_lightning.dual.command import parse
from idrs_lightning.dual.run import train_router
from idrs_lightning.dual.settings import RouterSettings, read_config
from idrs_lightning.dual.targets import level_radii, level_weights, soft_targets
from idrs_lightning.settings import CertificationSettings
from idrs_lightning.smoothing import ABSTAIN
from idrs_lightning.smoothing.dual import DualSmooth
from idrs_lightning.validation import InvalidSetting
from tests.bad_input import assert_refused
from tests.certify_resume import without_time
from tests.dual_models import SIGMAS, certify_dual, run_command

ROOT = Path(__file__).resolve().parents[1]
SAMPLES, ALPHA = 100, 0.001
#: Far beyond any noise drawn at these levels: the hand-built experts vote the same on every
#: noisy copy.
FAR = 100.0


def by_hand(votes: int, sigma: float, n: int = SAMPLES, alpha: float = ALPHA) -> float:
    """Cohen's radius from the label's votes: the Clopper-Pearson lower bound as a beta
    quantile, then sigma Phi^{-1}(p); 0 where p <= 1/2."""
    p = stats.beta.ppf(alpha, votes, n - votes + 1) if votes > 0 else 0.0
    return sigma * stats.norm.ppf(p) if p > 0.5 else 0.0


class Votes(nn.Module):
    """Two classes. Each input is ``(FAR or -FAR: class 1 or 0, FAR or -FAR: a flag)``; the
    expert votes the class of the first feature where ``right(flag)``, the other one elsewhere,
    whatever the noise."""

    def __init__(self, right: str) -> None:
        super().__init__()
        self.right = right  # "always", "never" or "flagged"

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        label = (z[:, 0] > 0).long()
        correct = {
            "always": torch.ones_like(label, dtype=torch.bool),
            "never": torch.zeros_like(label, dtype=torch.bool),
            "flagged": z[:, 1] > 0,
        }[self.right]
        vote = torch.where(correct, label, 1 - label)
        return nn.functional.one_hot(vote, 2).double()


class FirstRows(nn.Module):
    """Votes class 0 (the label below) on the first ``right`` rows of every forward pass and
    class 1 on the others: with one input's ``SAMPLES`` copies per pass, exactly ``right``
    votes for the label."""

    def __init__(self, right: int) -> None:
        super().__init__()
        self.right = right

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        vote = (torch.arange(len(z)) >= self.right).long()
        return nn.functional.one_hot(vote, 2).double()


def flagged_inputs() -> tuple[torch.Tensor, np.ndarray]:
    """Four inputs: both classes, flag on and off."""
    x = torch.tensor([[FAR, FAR], [-FAR, FAR], [FAR, -FAR], [-FAR, -FAR]], dtype=torch.float64)
    return x, np.array([1, 0, 1, 0])


def targets_of(experts: list[nn.Module], x: torch.Tensor, y: np.ndarray) -> tuple:
    experts = [e.eval() for e in experts]
    radii = level_radii(experts, SIGMAS, x, y, range(len(x)), SAMPLES, ALPHA, num_classes=2)
    return soft_targets(radii)


def test_the_target_favours_the_level_whose_expert_is_right() -> None:
    """An expert always right at 0.25 and one always wrong at 0.5: every input keeps, with the
    softmax of (R, 0), R from all 100 votes."""
    x, y = flagged_inputs()
    targets, kept = targets_of([Votes("always"), Votes("never")], x, y)
    radius = by_hand(SAMPLES, SIGMAS[0])
    expected = np.exp([radius, 0.0]) / np.exp([radius, 0.0]).sum()
    assert kept.all()
    np.testing.assert_allclose(targets.numpy(), np.tile(expected, (4, 1)), rtol=1e-6)
    # the other way round: the higher level is right, with twice the radius (sigma 0.5)
    targets, kept = targets_of([Votes("never"), Votes("always")], x, y)
    assert kept.all() and (targets.argmax(dim=1) == 1).all()
    np.testing.assert_allclose(targets[:, 1].numpy(), 1 / (1 + np.exp(-2 * radius)), rtol=1e-6)


def test_inputs_no_expert_gets_right_are_dropped() -> None:
    x, y = flagged_inputs()
    targets, kept = targets_of([Votes("never"), Votes("flagged")], x, y)
    assert kept.tolist() == [True, True, False, False]
    radius = by_hand(SAMPLES, SIGMAS[1])
    np.testing.assert_allclose(targets[:2, 1].numpy(), np.exp(radius) / (1 + np.exp(radius)))
    # right at both levels: the softmax of both radii; right at the higher level only: (0, R)
    targets, kept = targets_of([Votes("flagged"), Votes("always")], x, y)
    assert kept.all()
    both = np.array([by_hand(SAMPLES, s) for s in SIGMAS])
    np.testing.assert_allclose(targets[0].numpy(), np.exp(both) / np.exp(both).sum(), rtol=1e-6)
    np.testing.assert_allclose(targets[2, 1].numpy(), 1 / (1 + np.exp(-both[1])), rtol=1e-6)


@pytest.mark.parametrize("right", [(70, 90), (50, 100), (65, 66)])
def test_radii_are_cohens_from_the_labels_votes(right: tuple[int, int]) -> None:
    """Votes short of unanimity: the radius from the beta quantile of the label's count, 0 at
    a bound of at most 1/2 (50 votes; 65 are short of it at alpha = 0.001, 66 not)."""
    x = torch.zeros((3, 4), dtype=torch.float64)
    experts = [FirstRows(right[0]).eval(), FirstRows(right[1]).eval()]
    radii = level_radii(
        experts, SIGMAS, x, [0, 0, 0], [5, 6, 7], SAMPLES, ALPHA, num_classes=2, batch_size=SAMPLES
    )
    expected = [by_hand(r, s) for r, s in zip(right, SIGMAS, strict=True)]
    # the library rounds its bound down (by 1e-10 relative): never above, a hair below
    assert (radii <= np.tile(expected, (3, 1))).all()
    np.testing.assert_allclose(radii, np.tile(expected, (3, 1)), rtol=1e-8, atol=1e-9)
    assert by_hand(50, 0.25) == 0.0 and by_hand(65, 0.25) == 0.0 < by_hand(66, 0.25)


def test_targets_refuse_levels_that_do_not_fit_the_experts() -> None:
    x, y = flagged_inputs()
    experts = [Votes("always").eval(), Votes("never").eval()]
    with pytest.raises(InvalidSetting, match="sigmas"):
        level_radii(experts, [0.5, 0.25], x, y, range(4), num_classes=2)
    with pytest.raises(InvalidSetting, match="sigmas"):
        level_radii(experts, [0.25, 0.5, 1.0], x, y, range(4), num_classes=2)
    with pytest.raises(InvalidSetting, match="y must be classes"):
        level_radii(experts, SIGMAS, x, [0, 1, 2, 0], range(4), num_classes=2)


# ---- the command, end to end on digits ------------------------------------------------------


def test_the_router_checkpoint_opens_over_the_levels_and_names_its_experts(
    router: Path, experts: list[Path]
) -> None:
    checkpoint = open_checkpoint(str(router / "checkpoints" / "last.ckpt"))
    assert isinstance(checkpoint, TrainedCheckpoint)
    module = checkpoint.module()
    assert module.hparams.num_classes == len(SIGMAS)
    assert module.classifier(torch.rand(3, 1, 8, 8)).shape == (3, len(SIGMAS))
    record = DualRecord.from_checkpoint(checkpoint.path, checkpoint.file.content)
    assert record.experts == tuple(str(e.resolve()) for e in experts)
    assert record.expert_digests == tuple(file_digest(str(e)) for e in experts)
    assert record.sigmas == tuple(SIGMAS) and record.router_sigma == 0.5
    record.check_experts([str(e) for e in experts])
    data = checkpoint.data_settings()  # the experts' data, at the router's constant noise
    assert (data["dataset"], data["val_fraction"], data["sigma_b"], data["r"]) == (
        "digits",
        0.1,
        0.5,
        0.0,
    )
    # the pieces certify together: a router's choice, then the chosen expert's certificate
    classifiers = [open_checkpoint(str(e)).module().classifier.eval() for e in experts]
    dual = DualSmooth(
        module.classifier.eval(), classifiers, SIGMAS, 0.5, 10, CertificationSettings(10, 100)
    )
    test = SmoothingDataModule(**data).certification_inputs(range(4), constant=True)
    certificates = dual.certify_many(test.x, test.indices)
    assert any(c.choice != ABSTAIN for c in certificates)  # the router certifies choices
    for certificate in certificates:
        assert certificate.choice == ABSTAIN or certificate.sigma == SIGMAS[certificate.choice]


def test_targets_come_from_the_train_part_only(router: Path, experts: list[Path]) -> None:
    """The certified inputs are rows of the train part (their radii recomputed from those rows
    agree), none of them a validation or test input."""
    saved = np.load(router / "targets.npz")
    indices, radii = saved["indices"], saved["radii"]
    assert len(indices) == 200 and radii.shape == (200, len(SIGMAS))
    assert saved["kept"].tolist() == (radii > 0).any(axis=1).tolist()
    checkpoint = open_checkpoint(str(router / "checkpoints" / "last.ckpt"))
    data = SmoothingDataModule(**checkpoint.data_settings())
    train = data.split_arrays("train")
    assert 0 <= indices.min() and indices.max() < len(train.y)
    rows = {row.tobytes() for row in train.x[indices]}
    for split in ("val", "test"):
        assert not rows & {row.tobytes() for row in data.split_arrays(split).x}, split
    first = indices[:20]
    # the command's device: noise streams are drawn on it (the CPU's and CUDA's differ)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    experts_there = [open_checkpoint(str(e)).module().classifier.eval().to(device) for e in experts]
    again = level_radii(
        experts_there,
        SIGMAS,
        torch.from_numpy(train.x[first]),
        train.y[first],
        first.tolist(),
        num_classes=10,
        input_range=(0.0, 1.0),
    )
    np.testing.assert_array_equal(again, radii[:20])


def test_bad_input_is_one_line_and_exit_status_2(
    commands, experts: list[Path], router: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    cases = [
        (["--sigmas", "0.5", "0.25"], "--sigmas must be two or more increasing levels"),
        (["--sigmas", "0.25", "0.5", "1.0"], "--sigmas must be two or more increasing levels"),
        (["--router-sigma", "0"], "--router-sigma must be a number in (0.0, inf)"),
    ]
    for options, message in cases:
        assert_refused(run_command(commands, experts, out, *options), message)
    missing = run_command(commands, [experts[0], tmp_path / "missing.ckpt"], out)
    assert_refused(missing, "--experts")
    assert "missing.ckpt does not exist" in missing.stderr
    taken = run_command(commands, experts, router)
    assert_refused(taken, "--out")
    assert "holds another run's checkpoint" in taken.stderr
    assert not out.exists(), "a refused run leaves no directory"


def test_experts_of_different_splits_are_refused(experts: list[Path], tmp_path: Path) -> None:
    other = tmp_path / "other.ckpt"
    content = torch.load(experts[1], weights_only=True)
    content["datamodule_hyper_parameters"]["val_fraction"] = 0.2
    torch.save(content, other)
    settings = RouterSettings((str(experts[0]), str(other)), tuple(SIGMAS), 0.5, str(tmp_path))
    with pytest.raises(InvalidSetting, match=r"val_fraction = 0.2 .* share their data"):
        train_router(settings)


def test_a_config_file_gives_values_the_command_line_overrides(tmp_path: Path) -> None:
    config = tmp_path / "router.yaml"
    config.write_text(yaml.safe_dump({"sigmas": [0.25, 0.5, 1.0], "epochs": 7, "lr": 0.01}))
    given = ["--epochs", "3", "--experts", "a", "b", "c", "--out", "o", "--router-sigma", "1"]
    settings = parse(["--config", str(config), *given])
    assert settings.sigmas == (0.25, 0.5, 1.0) and settings.epochs == 3 and settings.lr == 0.01
    config.write_text("sigmas: [0.25, 0.5]\nlearning_rate: 0.1\n")
    with pytest.raises(SystemExit) as refused:
        parse(["--config", str(config)])
    assert refused.value.code == 2


@pytest.mark.parametrize("name", ["dual_fashion_mnist", "dual_cifar10"])
def test_the_repository_configs_hold_valid_settings(name: str) -> None:
    values = read_config(str(ROOT / "configs" / f"{name}.yaml"))
    settings = RouterSettings(**values)
    assert settings.sigmas == (0.25, 0.5, 1.0) and settings.router_sigma == 1.0
    assert len(settings.experts) == 3 and settings.samples == 100


def test_certify_py_certifies_the_dual_model_and_resumes(
    commands, router: Path, tmp_path: Path
) -> None:
    """Rows of both stages that the run's rules accept, a summary that counts both stages'
    forward passes, and a resumed run that ends with the uninterrupted run's rows."""
    out = tmp_path / "dual"
    done = certify_dual(commands, router, out)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "dual" in done.stdout
    rows = read_rows(out / "results.tsv")
    assert tuple(rows[0]) == DUAL_COLUMNS and len(rows) == 12
    levels = [int(row["level"]) for row in rows]
    for row, level in zip(rows, levels, strict=True):
        radius = float(row["radius"])
        assert radius == min(float(row["router_radius"]), float(row["classifier_radius"]))
        assert level == ABSTAIN or float(row["sigma"]) == SIGMAS[level]
    summary = json.loads((out / "summary.json").read_text())
    routed = sum(level >= 0 for level in levels)
    assert summary["forward_passes_total"] == 12 * 332 + routed * 332
    assert summary["settings"]["alpha_router"] == summary["settings"]["alpha_classifier"]
    reference = without_time(out / "results.tsv")
    lines = (out / "results.tsv").read_text().splitlines(keepends=True)
    (out / "results.tsv").write_text("".join(lines[:5]) + lines[5][:20])  # killed mid-row
    done = certify_dual(commands, router, out)
    assert done.returncode == 0, done.stderr[-3000:]
    assert without_time(out / "results.tsv") == reference


def test_certify_py_refuses_an_expert_the_router_was_not_trained_with(
    commands, router: Path, experts: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "dual"
    done = certify_dual(commands, router, out, "--experts", str(experts[1]), str(experts[1]))
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "--experts" in done.stderr and "not the sigma = 0.25 expert" in done.stderr
    assert not out.exists()


def test_the_callback_certifies_the_dual_model_on_the_validation_split(
    commands, experts: list[Path], tmp_path: Path
) -> None:
    """With --certify-every the router's training certifies the router with its experts on
    validation inputs each epoch (the callback reads the validation split only): the epoch's
    record holds the dual model's summary over the data's classes."""
    out = tmp_path / "run"
    options = ("--certify-every", "1", "--certify-examples", "10", "--certify-n", "200")
    done = run_command(commands, experts, out, *options)
    assert done.returncode == 0, done.stderr[-3000:]
    epoch = json.loads((out / "csv" / "certification" / "epoch_0.json").read_text())
    assert epoch["count"] == 10 and len(epoch["per_class_accuracy"]) == 10  # the data's classes
    assert epoch["radii"][-1] == 1.5  # the grid of the router's data: 3 x sigma_v
    assert epoch["settings"]["certify_callback"]["n"] == 200
    assert epoch["clean_accuracy"] > 0.2  # the experts' classes, not the router's levels


def test_rebalancing_weighs_each_input_by_its_levels_rarity() -> None:
    """Three inputs favour level 0 and one favours level 1: weights 1 / (2 x 3/4) and
    1 / (2 x 1/4), which average 1, so each level carries half of the loss."""
    targets = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.3, 0.7]])
    weights = level_weights(targets)
    assert weights.tolist() == pytest.approx([2 / 3, 2 / 3, 2 / 3, 2.0])
    assert float(weights.mean()) == pytest.approx(1.0)
