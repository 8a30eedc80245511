"""The figures of experiments.analyze, one module each (experiments/figures/base.py
describes what a figure is)."""

from experiments.figures import (
    adv_epochs,
    align_uniform,
    case_study,
    cost,
    fn_identification,
    hardness_popularity,
    n_neg,
    strategies,
)
from experiments.figures.base import Context, Figure

FIGURES: dict[str, Figure] = {
    module.FIGURE.name: module.FIGURE
    for module in (
        strategies,
        cost,
        n_neg,
        adv_epochs,
        fn_identification,
        align_uniform,
        hardness_popularity,
        case_study,
    )
}

__all__ = ["FIGURES", "Context", "Figure"]
