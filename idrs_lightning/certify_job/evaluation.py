"""How the base classifier is evaluated during sampling: precision and memory format.

A certificate holds for the classifier as evaluated, so reduced precision is sound, only
different from full precision; channels-last batches speed up convolutions on recent GPUs.
"""

from __future__ import annotations

import torch
from torch import nn

from idrs_lightning.validation import check_choice

#: ``--precision`` values and the autocast dtype of each (``None``: full precision).
PRECISIONS: dict[str, torch.dtype | None] = {
    "32": None,
    "bf16": torch.bfloat16,
    "16": torch.float16,
}


def check_precision(precision: str) -> None:
    """Raise :class:`~idrs_lightning.validation.InvalidSetting` unless ``precision`` is a key
    of :data:`PRECISIONS`."""
    check_choice("precision", precision, tuple(PRECISIONS))


class EvaluatedClassifier(nn.Module):
    """Runs ``classifier`` under ``torch.autocast`` at ``precision`` and, with
    ``channels_last``, on channels-last image batches.

    With ``channels_last`` the classifier's own weights are converted to channels-last here
    (``classifier.to(memory_format=torch.channels_last)``, in place), once.

    Raises:
        InvalidSetting: for a precision not in :data:`PRECISIONS`.
    """

    def __init__(
        self, classifier: nn.Module, precision: str = "32", channels_last: bool = False
    ) -> None:
        super().__init__()
        check_precision(precision)
        self.classifier = classifier
        self.dtype = PRECISIONS[precision]
        self.channels_last = channels_last
        if channels_last:
            classifier.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=self.dtype, enabled=self.dtype is not None):
            return self.classifier(x)
