"""idrs-lightning: train and certify classifiers with randomized smoothing, constant or
input-dependent (IDRS: sigma(x) from each input's k nearest training neighbours).

The package's wings, each a folder over the ground-floor modules (``validation``, ``errors``,
``settings``, ``noise``, ``normalization``, ``atomic_files``, ``directory_lock``):

- ``certification``: the certificates' mathematics (numpy/scipy only);
- ``smoothing``: :class:`Smooth`, Cohen et al.'s PREDICT and CERTIFY over a base classifier;
- ``sigma``: the kNN search, its cache and sharded precomputation, and sigma(x) (Eq. 1);
- ``data`` and ``models``: the LightningDataModule and the base classifiers, side by side;
- ``training``: the LightningModule, the training command, resumes and sweeps;
- ``certify_job``: the certification job (checkpoint formats, results, sharding, resume);
- ``reporting``: tables, plots, metrics, W&B and run comparison;
- ``paper``: the paper's experiments, reproduced.

The names below are the ones a user imports; each is loaded on first use, so that importing
one wing (e.g. the certification mathematics) does not import the others.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BaseClassifierModule": "idrs_lightning.training.module",
    "CertificationSettings": "idrs_lightning.settings",
    "CertifyConfig": "idrs_lightning.certify_job.config",
    "InvalidSetting": "idrs_lightning.validation",
    "KnnSigma": "idrs_lightning.sigma.levels",
    "Smooth": "idrs_lightning.smoothing",
    "SmoothingDataModule": "idrs_lightning.data.datamodule",
    "build_model": "idrs_lightning.models",
    "certification_summary": "idrs_lightning.reporting.metrics",
    "load_checkpoint": "idrs_lightning.certify_job.checkpoints",
    "open_checkpoint": "idrs_lightning.certify_job.checkpoints",
    "run_certification": "idrs_lightning.certify_job.run",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'idrs_lightning' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
