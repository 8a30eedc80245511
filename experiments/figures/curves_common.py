"""What the curve figures (strategies, adv_epochs, fn_identification, align_uniform) share: a
seed-averaged curve of one cell, a mean line with its ±SE band, and 2-D panel grids."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt

from advjax.analysis import curve, mean_over_seeds
from experiments.figures.base import DPI, Context
from experiments.tables import Cell


def seed_records(ctx: Context, cell: Cell) -> list[list[dict]]:
    """The per-epoch records of the cell's run at each of ctx.seeds, in that order."""
    return [ctx.records(cell, seed) for seed in ctx.seeds]


def mean_curve(records: list[list[dict]], key: str) -> list[dict]:
    """`key` over training, mean and standard error over the seeds' records
    (advjax.analysis.mean_over_seeds): [{"epoch", "mean", "se", "seeds"}], epochs
    ascending."""
    stats = mean_over_seeds([curve(r, key) for r in records])
    return [
        {"epoch": epoch, "mean": float(stats["mean"][k]), "se": float(stats["se"][k]),
         "seeds": int(stats["n"][k])}
        for k, epoch in enumerate(stats["epoch"].tolist())
    ]  # fmt: skip


def _se_or_zero(se) -> float:
    """A row's SE as a band half-width: 0 where it is NaN (a single seed) or was read
    back from a CSV as an empty string."""
    if se in ("", None):
        return 0.0
    se = float(se)
    return 0.0 if math.isnan(se) else se


def draw_band(ax, points: list[dict], colour: str | None, label: str, **line_kw) -> None:
    """The points' mean over epochs as a line, with a ±SE band in the same colour."""
    epochs = [float(p["epoch"]) for p in points]
    mean = [float(p["mean"]) for p in points]
    se = [_se_or_zero(p["se"]) for p in points]
    ax.plot(epochs, mean, label=label, color=colour, linewidth=1.5, **line_kw)
    ax.fill_between(
        epochs,
        [m - s for m, s in zip(mean, se, strict=True)],
        [m + s for m, s in zip(mean, se, strict=True)],
        color=colour, alpha=0.2, linewidth=0,
    )  # fmt: skip


def new_grid(width: float, height: float, nrows: int, ncols: int):
    """(figure, axes [nrows][ncols]) at DPI in a constrained layout (base.new_figure
    draws a single row)."""
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width, height), dpi=DPI, layout="constrained", squeeze=False
    )
    return fig, axes.tolist()
