"""The figures of experiments.analyze, one module each (experiments/figures/base.py
describes what a figure is)."""

from experiments.figures import cost, n_neg, strategies
from experiments.figures.base import Context, Figure

FIGURES: dict[str, Figure] = {
    module.FIGURE.name: module.FIGURE for module in (strategies, cost, n_neg)
}

__all__ = ["FIGURES", "Context", "Figure"]
