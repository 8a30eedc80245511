"""align_uniform (Fig. 2c/4c): each hardness strategy's trajectory in the (uniformity,
alignment) plane after the warm-up.

  python -m experiments.analyze --figure=align_uniform --dataset=coat --seeds=5

Alignment and uniformity (SPEC §7; "repr/align", "repr/uniform" of the run's fixed
diagnostic sample, lower is better for both) are averaged over seeds at each validation
epoch from the first adversarial epoch of the AdvInfoNCE runs on (the earliest over
its seeds): one epoch cut for all four strategies, so every trajectory starts after
the same warm-up. The cells are the strategies figure's (shared runs).

CSV columns: strategy, epoch, uniform_mean, uniform_se, align_mean, align_se, seeds
(the runs behind both means): one row per strategy and validation epoch.
"""

from __future__ import annotations

import math

from matplotlib.lines import Line2D

from advjax.analysis import adversarial_epochs
from advjax.errors import WorkdirError
from experiments.figures.base import COLOURS, Context, Figure, group_rows, new_figure, save_png
from experiments.figures.curves_common import mean_curve, seed_records
from experiments.figures.strategies import strategy_cells

# At most this many arrows per trajectory: consecutive validations are often closer
# together than an arrow head is long.
MAX_ARROWS = 12


def first_adversarial_epoch(ctx: Context) -> int:
    """The earliest epoch over the AdvInfoNCE runs whose CF pass followed an
    adversarial pass: where the warm-up ends.

    Raises:
      WorkdirError: no AdvInfoNCE run had an adversarial epoch.
    """
    cell = strategy_cells(ctx)[3]
    firsts = [epochs[0] for epochs in map(adversarial_epochs, seed_records(ctx, cell)) if epochs]
    if not firsts:
        raise WorkdirError(
            f"{ctx.workdir(cell, ctx.seeds[0])}: no adversarial epoch in any AdvInfoNCE run "
            f"(seeds {', '.join(map(str, ctx.seeds))}); the warm-up never ended"
        )
    return min(firsts)


def _rows(ctx: Context) -> list[dict]:
    cut = first_adversarial_epoch(ctx)
    rows = []
    for cell in strategy_cells(ctx):
        records = seed_records(ctx, cell)
        uniform = {p["epoch"]: p for p in mean_curve(records, "repr/uniform")}
        align = {p["epoch"]: p for p in mean_curve(records, "repr/align")}
        for epoch in sorted(e for e in uniform.keys() & align.keys() if e >= cut):
            u, a = uniform[epoch], align[epoch]
            rows.append({
                "strategy": cell.method, "epoch": epoch,
                "uniform_mean": u["mean"], "uniform_se": u["se"],
                "align_mean": a["mean"], "align_se": a["se"],
                "seeds": min(u["seeds"], a["seeds"]),
            })  # fmt: skip
    return rows


def _plot(rows: list[dict], ctx: Context, path: str) -> None:
    cut = first_adversarial_epoch(ctx)
    fig, (ax,) = new_figure(6.4, 5.0)
    for (strategy,), points in group_rows(rows, "strategy").items():
        colour = COLOURS.get(strategy)
        x = [p["uniform_mean"] for p in points]
        y = [p["align_mean"] for p in points]
        # The line also sets the axes' limits, which annotations do not.
        ax.plot(x, y, color=colour, linewidth=0.8, marker=".", markersize=3, label=strategy)
        step = max(1, math.ceil((len(points) - 1) / MAX_ARROWS))
        for k in range(0, len(points) - 1, step):
            ax.annotate(
                "", xy=(x[k + 1], y[k + 1]), xytext=(x[k], y[k]),
                arrowprops={"arrowstyle": "-|>", "color": colour, "linewidth": 1.2,
                            "shrinkA": 0, "shrinkB": 0, "mutation_scale": 11},
            )  # fmt: skip
        ax.plot(x[0], y[0], marker="o", markersize=8, color=colour,
                markeredgecolor="black", linestyle="none", zorder=3)  # fmt: skip
    handles, _ = ax.get_legend_handles_labels()
    handles.append(
        Line2D([], [], marker="o", markersize=8, color="0.6", markeredgecolor="black",
               linestyle="none", label=f"start: first validation at or after epoch {cut}")
    )  # fmt: skip
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=8)
    ax.set_xlabel("uniformity (repr/uniform; lower is better)")
    ax.set_ylabel("alignment (repr/align; lower is better)")
    ax.grid(alpha=0.3)
    fig.suptitle(
        f"{ctx.dataset} {ctx.backbone}: alignment vs uniformity after the warm-up\n"
        f"(mean over {len(ctx.seeds)} seeds per validation; arrows: direction of training)",
        fontsize=10,
    )
    save_png(fig, path)


FIGURE = Figure(
    name="align_uniform",
    title="Fig. 2c/4c: alignment and uniformity over training per hardness strategy",
    paper=(
        "Fig. 2c/4c: how InfoNCE, InfoNCE-Rand, AdvInfoNCE-Reverse and AdvInfoNCE "
        "move in the (uniformity, alignment) plane of Wang & Isola (2020) over "
        "training, lower being better on both axes: where the hardness strategy takes "
        "the representations once adversarial training has started."
    ),
    cells=strategy_cells,
    rows=_rows,
    plot=_plot,
)
