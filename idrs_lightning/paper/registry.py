"""Every reproduction, by ID, in the paper's order. Experiment modules are imported only
when one of their IDs runs, so that the theory IDs start in a second."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

from idrs_lightning.paper.core import Context, Outcome, Reproduction


def _lazy(module: str, function: str) -> Callable[[Context], Outcome]:
    def run(context: Context) -> Outcome:
        return getattr(import_module(f"{__package__}.{module}"), function)(context)

    return run


REPRODUCTIONS: dict[str, Reproduction] = {
    item.id: item
    for item in (
        Reproduction(
            "table1", "Theorem 4's thresholds (Table 1)", "theory", _lazy("theory", "table1")
        ),
        Reproduction(
            "fig3",
            "Theoretical and practical thresholds vs dimension (Figure 3)",
            "theory",
            _lazy("theory", "fig3"),
        ),
        Reproduction(
            "fig6-7",
            "Under-certification by lower confidence bounds (Figures 6, 7)",
            "theory",
            _lazy("theory", "fig6_7"),
        ),
        Reproduction(
            "fig11",
            "Renyi (Theorem 14) vs Neyman-Pearson radius vs dimension (Figure 11)",
            "theory",
            _lazy("theory", "fig11"),
        ),
        Reproduction(
            "fig12", "xi_> and xi_< curves (Figure 12)", "theory", _lazy("theory", "fig12")
        ),
        Reproduction(
            "fig13",
            "Radius vs distance, constant vs input-dependent (Figure 13)",
            "theory",
            _lazy("theory", "fig13"),
        ),
        Reproduction(
            "table4",
            "Accuracy, abstention, misclassification vs sigma (Table 4)",
            "experiment",
            _lazy("vision", "table4"),
            scales=("tiny", "quick", "paper"),
            needs="Fashion-MNIST",
        ),
        Reproduction(
            "disc",
            "The 2-D toy example (Figures 1, 5, 8, 9)",
            "experiment",
            _lazy("toy", "disc"),
            scales=("tiny", "quick", "paper"),
        ),
        Reproduction(
            "cone",
            "The N-dimensional cone (Table 5, Figure 10)",
            "experiment",
            _lazy("toy", "cone"),
            scales=("tiny", "quick", "paper"),
        ),
        Reproduction(
            "fmnist",
            "Section 4's protocol on Fashion-MNIST (Figure 4, Tables 2, 3)",
            "experiment",
            _lazy("vision", "fmnist"),
            needs="Fashion-MNIST",
        ),
        Reproduction(
            "mnist",
            "Section 4's protocol on MNIST (Figure 4, Tables 2, 3)",
            "experiment",
            _lazy("vision", "mnist"),
            scales=("paper",),
            needs="MNIST (torchvision layout)",
        ),
        Reproduction(
            "cifar10",
            "Section 4's protocol on CIFAR-10 (Figure 4, Tables 2, 3)",
            "experiment",
            _lazy("vision", "cifar10"),
            scales=("paper",),
            needs="CIFAR-10, GPUs",
        ),
        Reproduction(
            "dual",
            "Dual randomized smoothing beside IDRS and constant sigma (Sun et al., ICLR 2026)",
            "experiment",
            _lazy("dual", "dual_comparison"),
            scales=("tiny", "quick", "study"),
            needs="Fashion-MNIST",
        ),
    )
}
