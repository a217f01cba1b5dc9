"""Sequential CERTIFY in Smooth and certify.py: sound against a classifier with known radii,
its samples a prefix of fixed-n CERTIFY's, and its sample counts on disk."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from idrs_lightning.certification.sequential import look_schedule
from idrs_lightning.certify_job.results import read_results
from idrs_lightning.noise import NOISE_BLOCK
from idrs_lightning.settings import CertificationSettings, InvalidSetting
from idrs_lightning.smoothing import ABSTAIN, Smooth

ROOT = Path(__file__).resolve().parents[1]
SIGMA = 0.25
GRID = [round(SIGMA * k / 4, 4) for k in range(13)]  # 0 .. 3 sigma, as radius_grid


class HalfSpace(nn.Module):
    """f(x) = 1 if x_0 > 0 else 0: the smoothed classifier is constant exactly within distance
    x_0 of x (Cohen et al.'s radius at the true p_A = Phi(x_0 / sigma) is x_0)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = x.reshape(len(x), -1)[:, 0]
        return torch.stack([-first, first], dim=1)


def _smooth(sequential: bool, n: int, alpha: float = 0.001) -> Smooth:
    settings = CertificationSettings(
        n0=64, n=n, alpha=alpha, batch_size=1000, sequential=sequential
    )
    return Smooth(HalfSpace().eval(), 2, 0.0, settings, radii=GRID if sequential else None)


def _points(margins: np.ndarray, dim: int = 2) -> torch.Tensor:
    x = torch.zeros((len(margins), dim))
    x[:, 0] = torch.as_tensor(margins, dtype=torch.float32)
    return x


def test_sequential_samples_are_a_prefix_of_fixed_n() -> None:
    margins = np.array([0.02, 0.2, 0.5, 1.0])
    sequential = _smooth(True, 20_000).certify_many(_points(margins), [SIGMA] * 4, [3, 4, 5, 6])
    for margin, index, cert in zip(margins, [3, 4, 5, 6], sequential, strict=True):
        fixed = _smooth(False, cert.samples).certify(_points(np.array([margin]))[0], SIGMA, index)
        assert np.array_equal(cert.counts, fixed.counts)
        assert cert.counts.sum() == cert.samples


def test_far_inputs_stop_early_and_near_ones_sample_more() -> None:
    margins = np.array([2.0, 0.0625])  # 0.0625: p_A at the threshold of radius 0.0625
    far, near = _smooth(True, 100_000).certify_many(_points(margins), [SIGMA] * 2, [1, 2])
    assert far.prediction == 1 and far.samples <= 16_000
    assert far.radius >= GRID[-1]  # settled as certified at every grid radius
    assert near.samples > far.samples


def test_sequential_radii_are_sound_at_the_alpha_rate() -> None:
    """True radius = margin; a radius above it is a wrong certificate, allowed at rate alpha."""
    rng = np.random.default_rng(0)
    count, alpha = 300, 0.05
    margins = rng.uniform(0.0, 1.0, count)
    smooth = _smooth(True, 20_000, alpha=alpha)
    certs = smooth.certify_many(_points(margins), [SIGMA] * count, list(range(count)))
    radius = np.array([c.radius for c in certs])
    wrong = int(np.sum(radius > margins))
    assert wrong <= stats.binom.ppf(1 - 1e-6, count, alpha)
    claimed = np.array([[c.radius >= g for g in GRID] for c in certs])
    true = margins[:, None] >= np.array(GRID)[None, :]
    assert int(np.sum(claimed & ~true)) <= stats.binom.ppf(1 - 1e-6, count, alpha) * len(GRID)
    assert all(c.prediction in (1, ABSTAIN) for c in certs)
    mean_samples = np.mean([c.samples for c in certs])
    assert mean_samples < 20_000  # some inputs settle before n_max


@pytest.mark.parametrize("sequential", [False, True])
def test_the_evaluation_shortcut_skips_only_misclassified_inputs(sequential: bool) -> None:
    # margins near 0 make the n0 selection pick either class; label 1 everywhere, so the inputs
    # that select class 0 are the misclassified ones
    margins = np.array([1.0, -1.0, 0.01, -0.01, 0.0, 0.3, -0.3, 0.002])
    indices = list(range(10, 10 + len(margins)))
    labels = [1] * len(margins)
    smooth = _smooth(sequential, 5000)
    full = smooth.certify_many(_points(margins), [SIGMA] * len(margins), indices)
    short = smooth.certify_many(_points(margins), [SIGMA] * len(margins), indices, labels)
    selected = [int(c.counts.argmax()) if c.prediction == ABSTAIN else c.prediction for c in full]
    skipped = [c.skipped for c in short]
    assert any(skipped) and not all(skipped)
    for f, s, label in zip(full, short, labels, strict=True):
        if s.skipped:
            assert s.prediction != label and s.radius == 0.0 and np.isnan(s.p_a_lower)
            assert s.counts.sum() == 0 and f.prediction != label  # full CERTIFY: wrong too
        else:
            assert np.array_equal(s.counts, f.counts) and s.samples == f.samples
            assert (s.prediction, s.radius, s.p_a_lower) == (f.prediction, f.radius, f.p_a_lower)
    # certified accuracy at every radius is the same
    for radius in GRID:
        exact = [
            f.prediction == y and f.radius >= radius for f, y in zip(full, labels, strict=True)
        ]
        quick = [
            s.prediction == y and s.radius >= radius for s, y in zip(short, labels, strict=True)
        ]
        assert exact == quick
    assert sum(c.samples for c in short) < sum(c.samples for c in full)
    assert selected[1] == 0 and short[1].skipped and not short[0].skipped
    with pytest.raises(ValueError, match="labels"):
        smooth.certify_many(_points(margins), [SIGMA] * len(margins), indices, labels[:2])


def test_sequential_needs_a_grid_and_no_separate_runner_up() -> None:
    with pytest.raises(InvalidSetting, match="separate_pb"):
        CertificationSettings(sequential=True, separate_pb=True)
    settings = CertificationSettings(sequential=True)
    with pytest.raises(ValueError, match="radius grid"):
        Smooth(HalfSpace().eval(), 2, 0.0, settings)


@pytest.mark.slow  # a certify subprocess
def test_certify_py_sequential_writes_samples_and_forward_passes(
    tmp_path: Path, offline_env: dict
) -> None:
    checkpoint = ROOT / "tests" / "data" / "regression" / "digits_lenet.ckpt"
    out = tmp_path / "seq"
    command = [
        sys.executable,
        str(ROOT / "certify.py"),
        str(checkpoint),
        str(out),
        "--sequential",
        "--n-max",
        "3000",
        "--N0",
        "16",
        "--indices",
        "0:6",
        "--skip-misclassified",
    ]
    done = subprocess.run(command, env=offline_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    results = read_results(out / "results.tsv")
    estimated = results["samples"] > 0
    used = results["samples"][estimated]
    assert used.size and np.all(np.isin(used, look_schedule(3000, step=NOISE_BLOCK)))  # a look
    assert np.all(results["correct"][~estimated] == 0)  # skipped: the selection is wrong
    summary = json.loads((out / "summary.json").read_text())
    assert summary["forward_passes_total"] == float(np.sum(16 + results["samples"]))
    assert summary["estimation_skipped"] == int(np.sum(~estimated))
    assert summary["settings"]["sequential"] is True
    assert "forward passes:" in done.stdout
