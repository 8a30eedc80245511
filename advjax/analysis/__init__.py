"""The paper's analysis (SPEC §7) from run records: curves over training, their mean
over seeds, and the popularity grouping of items. Pure NumPy; the figures that plot
them live in experiments/figures/."""

from advjax.analysis.curves import adversarial_epochs, curve, mean_over_seeds
from advjax.analysis.popularity import mean_by_group, popularity_groups

__all__ = [
    "adversarial_epochs",
    "curve",
    "mean_by_group",
    "mean_over_seeds",
    "popularity_groups",
]
